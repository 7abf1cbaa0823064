package smtpmail_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/smtpmail"
)

// bareServer is a plain SMTP server on its own listener that accepts one
// conversation up to DATA's 354. Then, if reset is set, it resets the
// connection when told to (the sender is about to write the message, the
// final dot with it) and says when it has; otherwise it reads the whole
// message and never answers. messageRead is closed once it has the final
// dot.
type bareServer struct {
	addr        string
	reset       chan chan struct{}
	messageRead chan struct{}
}

func newBareServer(t *testing.T, reset bool) *bareServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &bareServer{addr: ln.Addr().String(), messageRead: make(chan struct{})}
	if reset {
		s.reset = make(chan chan struct{})
	}
	// One cleanup, in this order: the server is told to quit and its
	// listener closed before the wait for it, so a sender that never
	// connected, or never wrote the dot, fails the test instead of hanging
	// it.
	quit, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() {
		close(quit)
		_ = ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		go func() {
			select {
			case <-quit:
				_ = c.Close() // ends a read that waits for the sender
			case <-done:
			}
		}()
		r := bufio.NewReader(c)
		say := func(line string) bool { _, err := c.Write([]byte(line + "\r\n")); return err == nil }
		if !say("220 bare ESMTP") {
			return
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
				say("250 bare")
			case strings.HasPrefix(cmd, "DATA"):
				say("354 go ahead")
				if s.reset != nil {
					var resetDone chan struct{}
					select {
					case resetDone = <-s.reset:
					case <-quit:
						return
					}
					_ = c.(*net.TCPConn).SetLinger(0) // the close sends RST
					_ = c.Close()
					close(resetDone)
					return
				}
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line == ".\r\n" {
						close(s.messageRead)
						break
					}
				}
				_, _ = r.ReadString('\n') // no answer: wait for the sender to go
				return
			default:
				say("250 ok")
			}
		}
	}()
	return s
}

// resetBeforeTheDot is a connection that, before it writes the final dot,
// has srv reset the connection.
type resetBeforeTheDot struct {
	net.Conn
	srv *bareServer
}

func (c *resetBeforeTheDot) Write(b []byte) (int, error) {
	if bytes.HasSuffix(b, []byte("\r\n.\r\n")) {
		resetDone := make(chan struct{})
		select {
		case c.srv.reset <- resetDone:
			<-resetDone
		case <-time.After(10 * time.Second): // the server is gone: write, and let the test fail
		}
	}
	return c.Conn.Write(b)
}

func bareSender(t *testing.T, srv *bareServer) *smtpmail.Sender {
	t.Helper()
	s, err := smtpmail.New(smtpmail.Config{Addr: srv.addr, From: "shop@example.com", TLS: smtpmail.TLSNone,
		Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	smtpmail.SetDial(s, func(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || srv.reset == nil {
			return c, err
		}
		return &resetBeforeTheDot{Conn: c, srv: srv}, nil
	})
	return s
}

// A short message sits whole in the DATA writer's buffer until its final
// dot: a connection reset while it is written (the flush) leaves the server
// without it, an ordinary failure (retried), not notifications.ErrUnanswered
// (recorded sent, never sent again: the email lost). Until 2026-12-08 any
// error of the final dot's Close but an answer was ErrUnanswered.
func TestAMessageCutWhileWrittenIsNotUnanswered(t *testing.T) {
	srv := newBareServer(t, true)
	err := bareSender(t, srv).Send(context.Background(), email("bob@example.com"))
	if err == nil {
		t.Fatal("a message whose connection was reset while it was written was sent")
	}
	if errors.Is(err, notifications.ErrUnanswered) || errors.Is(err, notifications.ErrUndeliverable) {
		t.Errorf("a message cut while written: %v, want an ordinary (retried) failure", err)
	}
}

// A server that read the whole message, final dot and all, and never
// answers may have sent it: notifications.ErrUnanswered.
func TestAMessageReadButNeverAnsweredIsUnanswered(t *testing.T) {
	srv := newBareServer(t, false)
	err := bareSender(t, srv).Send(context.Background(), email("bob@example.com"))
	if !errors.Is(err, notifications.ErrUnanswered) || errors.Is(err, notifications.ErrUndeliverable) {
		t.Errorf("a message read but never answered: %v, want notifications.ErrUnanswered", err)
	}
	select {
	case <-srv.messageRead:
	default:
		t.Error("the server did not get the final dot")
	}
}
