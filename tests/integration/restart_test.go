//go:build brokerrestart

package integration

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/broker"
)

// TestEventsSurviveRabbitMQRestart is the burst of orders of
// TestEventsSurviveBrokerOutageAndRelayCrash with the real broker restarted
// (rabbitmqctl stop_app, then start_app) in the middle of it, and the relay
// SIGKILLed. It stops the machine's RabbitMQ for everyone, so it is built only
// with -tags brokerrestart and `make test` runs it on its own, after the
// parallel suites (make broker-restart-test).
func TestEventsSurviveRabbitMQRestart(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatalf("rabbitmqctl is required to restart the broker: %v", err)
	}
	restarted := false
	burstThroughOutage(t, broker.DefaultURL, func() error {
		if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
			return fmt.Errorf("rabbitmqctl stop_app: %v\n%s", err, out)
		}
		time.Sleep(2 * time.Second)
		if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
			return fmt.Errorf("rabbitmqctl start_app: %v\n%s", err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			if conn, err := broker.Dial(ctx, broker.DefaultURL); err == nil {
				_ = conn.Close()
				restarted = true
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return errors.New("RabbitMQ did not come back within 60 s")
	})
	if !restarted {
		t.Fatal("the broker was not restarted: the test did not test anything")
	}
}
