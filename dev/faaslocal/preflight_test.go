package faaslocal_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// TestPreflightNamesWhatIsMissing points Redis and RabbitMQ at a closed
// loopback port and expects both named, with the variable and the advice,
// while PostgreSQL (running here) is not.
func TestPreflightNamesWhatIsMissing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	env := map[string]string{"REDIS_ADDR": closed, "RABBITMQ_URL": "amqp://guest:guest@" + closed + "/"}
	err = faaslocal.Preflight(context.Background(), runtimetest.Root(t), func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("preflight passed with Redis and RabbitMQ unreachable")
	}
	msg := err.Error()
	for _, want := range []string{"Redis is not answering at " + closed + " (REDIS_ADDR)", "RabbitMQ is not answering at " + closed + " (RABBITMQ_URL)", "make services"} {
		if !strings.Contains(msg, want) {
			t.Errorf("preflight error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "PostgreSQL") {
		t.Errorf("PostgreSQL is up but preflight says %q", msg)
	}
}
