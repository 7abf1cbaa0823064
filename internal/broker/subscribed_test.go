package broker_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/broker"
)

// A broker that does not answer yet is asked again until the context ends:
// make run and the tests start RabbitMQ's connector beside a broker that may
// still be starting, and a first refused connection is not the answer.
func TestWaitSubscribedRetriesAnUnreachableBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = broker.WaitSubscribed(ctx, "amqp://guest:guest@"+addr+"/", broker.Names{}, []string{"f"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSubscribed = %v after %s, want it to try until the deadline", err, time.Since(start))
	}
}
