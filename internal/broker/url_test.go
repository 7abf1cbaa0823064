package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

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

// A RABBITMQ_URL whose password holds a reserved character (a `/` from
// `openssl rand -base64`) does not parse; the error says so without quoting
// the URL. net/url's error quoted it whole, password included, and the
// connector logged it at every reconnect (as did deadletters and the relay).
func TestAnUnparsableURLIsNotQuoted(t *testing.T) {
	for _, raw := range []string{
		"amqp://shop:Zx9/q+SECRET@127.0.0.1:5672/",
		"amqp://shop:Zx9%zzSECRET@127.0.0.1:5672/",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := broker.Dial(ctx, raw, "test")
		cancel()
		if err == nil {
			_ = conn.Close()
			t.Errorf("Dial(%q) connected", raw)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "RABBITMQ_URL") {
			t.Errorf("Dial(%q): %q, want an error naming RABBITMQ_URL and not the password", raw, err)
		}
		if _, err := broker.URL(raw, "new-password"); err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("URL(%q, …): %v, want an error without the password", raw, err)
		}
	}
}
