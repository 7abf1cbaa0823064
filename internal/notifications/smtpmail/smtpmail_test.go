package smtpmail_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/notifications/smtpmail"
	"github.com/shopfaas/shop/internal/notifications/smtpmail/smtptest"
)

func TestSend(t *testing.T) {
	sink := smtptest.New(t)
	s, err := smtpmail.New(smtpmail.Config{Addr: sink.Addr, From: "shop@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Subject: hi\r\n\r\nhello\r\n.leading dot\r\n")
	if err := s.Send(context.Background(), "bob@example.com", msg); err != nil {
		t.Fatal(err)
	}
	got := sink.Messages()
	if len(got) != 1 || got[0].From != "shop@example.com" || got[0].To[0] != "bob@example.com" ||
		!strings.Contains(got[0].Data, "\r\n.leading dot\r\n") {
		t.Fatalf("sink got %+v", got)
	}
	sink.FailNext(true)
	if err := s.Send(context.Background(), "bob@example.com", msg); err == nil {
		t.Error("a refused recipient was reported as sent")
	}
	if err := s.Send(context.Background(), "not an address", msg); err == nil {
		t.Error("malformed recipient accepted")
	}
	if _, err := smtpmail.New(smtpmail.Config{Addr: "nohost"}); err == nil {
		t.Error("address without port accepted")
	}
}
