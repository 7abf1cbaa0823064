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
// loopback port (Config.Env overrides) and expects both named, with the
// variable and the advice, while PostgreSQL (running here) is not.
func TestPreflightNamesWhatIsMissing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	env := map[string]string{"REDIS_ADDR": closed, "RABBITMQ_URL": "amqp://guest:guest@" + closed + "/"}
	err = faaslocal.Preflight(context.Background(), runtimetest.Root(t), env)
	if err == nil {
		t.Fatal("preflight passed with Redis and RabbitMQ unreachable")
	}
	msg := err.Error()
	for _, want := range []string{"Redis is not answering at " + closed + " (REDIS_ADDR)", "RabbitMQ is not answering at " + closed + " (RABBITMQ_URL)", "make services", "env/development.yml"} {
		if !strings.Contains(msg, want) {
			t.Errorf("preflight error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "PostgreSQL") {
		t.Errorf("PostgreSQL is up but preflight says %q", msg)
	}
}

// TestPreflightIgnoresTheHostEnvironment: a host REDIS_ADDR or RABBITMQ_URL
// pointing at a dead port changes nothing, since the functions, connectors
// and seed never inherit it; the addresses are env/development.yml's, where
// Redis and RabbitMQ (running here) answer.
func TestPreflightIgnoresTheHostEnvironment(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	t.Setenv("REDIS_ADDR", closed)
	t.Setenv("RABBITMQ_URL", "amqp://guest:guest@"+closed+"/")
	t.Setenv("ORDERS_DATABASE_URL", "postgres://postgres@"+closed+"/shop_orders")
	if err := faaslocal.Preflight(context.Background(), runtimetest.Root(t), nil); err != nil {
		t.Errorf("preflight read the host environment the processes never see: %v", err)
	}
}
