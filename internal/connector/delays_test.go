package connector

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
)

// Every retry delay is positive and within MaxRetryDelay, also when
// RetryDelay doubled MaxAttempts-2 times passes the largest Duration (about
// 292 years: a RetryDelay of 10 h and MAX_ATTEMPTS=20). Until 2026-12-07 the
// doubling went on past the cap and overflowed to a negative delay, whose
// retry queue (x-message-ttl below 0) the broker refused to declare: every
// refresh failed and no function was consumed.
func TestRetryDelaysStayWithinTheCap(t *testing.T) {
	for _, cfg := range []Config{
		{RetryDelay: 10 * time.Hour, MaxRetryDelay: 24 * time.Hour, MaxAttempts: 20},
		{RetryDelay: 10 * time.Hour, MaxAttempts: 20},
		{RetryDelay: time.Second, MaxRetryDelay: time.Hour, MaxAttempts: 20},
	} {
		delays := cfg.Delays()
		if len(delays) != cfg.MaxAttempts-1 {
			t.Errorf("RetryDelay %s: %d delays, want %d", cfg.RetryDelay, len(delays), cfg.MaxAttempts-1)
		}
		cfg.setDefaults()
		for i, d := range delays {
			if d <= 0 || d > cfg.MaxRetryDelay {
				t.Errorf("RetryDelay %s, MaxRetryDelay %s: delay %d is %s", cfg.RetryDelay, cfg.MaxRetryDelay, i, d)
			}
		}
	}
}

// A retry delay RabbitMQ refuses as a queue's x-message-ttl (above 10 years:
// {value_too_large}, PRECONDITION_FAILED) is refused by Validate: until
// 2026-12-07 the connector started with it and every refresh failed on the
// retry queue's declaration, so no function was consumed. The longest delay
// the broker takes passes, and its retry queue is declared.
func TestARetryDelayTheBrokerRefusesIsInvalid(t *testing.T) {
	valid := Config{GatewayURL: "http://gateway", RetryDelay: time.Second, MaxRetryDelay: maxRetryDelay, MaxAttempts: 20}
	for _, cfg := range []Config{
		{GatewayURL: "http://gateway", RetryDelay: maxRetryDelay + time.Millisecond, MaxRetryDelay: 2 * maxRetryDelay, MaxAttempts: 2},
		{GatewayURL: "http://gateway", RetryDelay: time.Hour, MaxRetryDelay: 200 * 365 * 24 * time.Hour, MaxAttempts: 20},
	} {
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "MAX_RETRY_DELAY") {
			t.Errorf("RetryDelay %s, MaxRetryDelay %s: Validate says %v, want the delay refused", cfg.RetryDelay, cfg.MaxRetryDelay, err)
		}
	}
	// Never used, a longer cap is harmless: one retry, after a second.
	if err := (Config{GatewayURL: "http://gateway", RetryDelay: time.Second, MaxRetryDelay: 2 * maxRetryDelay, MaxAttempts: 2}).Validate(); err != nil {
		t.Errorf("a cap no delay reaches is refused: %v", err)
	}
	if err := valid.Validate(); err != nil {
		t.Fatalf("the longest delay is refused: %v", err)
	}
	if err := (Config{GatewayURL: "http://gateway", RetryDelay: maxRetryDelay, MaxRetryDelay: maxRetryDelay, MaxAttempts: 2}).Validate(); err != nil {
		t.Fatalf("a retry delay of exactly the broker's longest is refused: %v", err)
	}
	if testing.Short() {
		return
	}
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatalf("RabbitMQ is required for this test (%s): %v", rabbitURL, err)
	}
	defer conn.Close()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	names := broker.Names{Prefix: "test-" + hex.EncodeToString(b) + "."}
	for _, tc := range []struct {
		delay time.Duration
		ok    bool
	}{{maxRetryDelay, true}, {maxRetryDelay + time.Millisecond, false}} {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		q := names.Retry("ttl", tc.delay)
		_, err = ch.QueueDeclare(q, true, false, false, false, names.RetryArgs("ttl", tc.delay))
		if (err == nil) != tc.ok {
			t.Errorf("declare a retry queue of %s: %v, want it declared: %t", tc.delay, err, tc.ok)
		}
		if err == nil {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Errorf("delete %s: %v", q, err)
			}
			_ = ch.Close()
		}
	}
}
