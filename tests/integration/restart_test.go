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
	// The machine's RabbitMQ serves every other test and the next run: one
	// this test stopped is started again however the test ends.
	stopped := false
	t.Cleanup(func() {
		if stopped {
			if err := startApp(); err != nil {
				t.Errorf("RabbitMQ left stopped: %v", err)
			}
		}
	})
	burstThroughOutage(t, broker.DefaultURL, func() error {
		if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
			return fmt.Errorf("rabbitmqctl stop_app: %v\n%s", err, out)
		}
		stopped = true
		time.Sleep(2 * time.Second)
		if err := startApp(); err != nil {
			return err
		}
		stopped = false
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			if conn, err := broker.Dial(ctx, broker.DefaultURL, "shop-test"); err == nil {
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

// startApp runs rabbitmqctl start_app, trying three times.
func startApp() error {
	var err error
	for i := range 3 {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		var out []byte
		if out, err = exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err == nil {
			return nil
		}
		err = fmt.Errorf("rabbitmqctl start_app: %v\n%s", err, out)
	}
	return err
}
