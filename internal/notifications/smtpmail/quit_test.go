package smtpmail_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/notifications/smtpmail"
)

// A server that accepts the message and then never answers QUIT does not
// hold the send past its context: the goodbye is said only within the
// send's own deadline (the wait for the message's answer alone has
// SMTP_TIMEOUT's). Until 2026-12-06 (6c5b2c2 to the day's fix) the goodbye
// waited out SMTP_TIMEOUT, and a process stopped meanwhile never recorded
// the sent email, which its redelivery then sent again.
func TestAGoodbyeNeverAnsweredDoesNotHoldTheSend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		say := func(s string) { _, _ = conn.Write([]byte(s + "\r\n")) }
		say("220 test ESMTP")
		data := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch cmd := strings.ToUpper(line); {
			case data && line == ".":
				data = false
				say("250 2.0.0 queued")
			case data:
			case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"),
				strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"):
				say("250 ok")
			case cmd == "DATA":
				data = true
				say("354 go on")
			case cmd == "QUIT":
				<-quit // never answered
				return
			default:
				say("502 not here")
			}
		}
	}()
	s, err := smtpmail.New(smtpmail.Config{Addr: ln.Addr().String(), From: "shop@example.com",
		TLS: smtpmail.TLSNone, Timeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Send(ctx, email("bob@example.com")); err != nil {
		t.Fatalf("a message the server accepted: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the send took %s with a 1 s context and a goodbye never answered, want it bounded by the context", took.Round(100*time.Millisecond))
	}
}
