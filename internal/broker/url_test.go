package broker_test

import (
	"testing"

	"github.com/shopfaas/shop/internal/broker"
)

// The rabbitmq-password secret becomes the URL's password, so that the
// connectors need no password in RABBITMQ_URL (the environment).
func TestURLTakesThePasswordSecret(t *testing.T) {
	for _, tt := range []struct{ raw, password, want string }{
		{"amqp://shop@rabbitmq:5672/", "s3cret/:@", "amqp://shop:s3cret%2F%3A%40@rabbitmq:5672/"},
		{"amqp://shop:old@rabbitmq:5672/", "new", "amqp://shop:new@rabbitmq:5672/"},
		{"amqp://rabbitmq:5672/", "p", "amqp://guest:p@rabbitmq:5672/"},
		{"amqp://guest:guest@127.0.0.1:5672/", "", "amqp://guest:guest@127.0.0.1:5672/"},
	} {
		got, err := broker.URL(tt.raw, tt.password)
		if err != nil || got != tt.want {
			t.Errorf("URL(%q, %q) = %q, %v; want %q", tt.raw, tt.password, got, err, tt.want)
		}
	}
	if _, err := broker.URL("rabbitmq:5672", "p"); err == nil {
		t.Error("a URL without the amqp scheme was accepted")
	}
}
