// Package smtpmail sends the shop's notification emails over SMTP (net/smtp),
// upgrading to TLS when the server offers STARTTLS, with a deadline on the
// whole conversation so a stuck server never holds an event delivery.
package smtpmail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"time"
)

// Config configures the sender.
type Config struct {
	// Addr is the SMTP server, host:port (SMTP_ADDR).
	Addr string
	// From is the sender address (SMTP_FROM), default no-reply@shop.invalid.
	From string
	// Timeout bounds one send, default 10s.
	Timeout time.Duration
}

// Sender sends emails.
type Sender struct {
	cfg Config
}

// New validates cfg and returns a sender; it does not contact the server.
func New(cfg Config) (*Sender, error) {
	if cfg.From == "" {
		cfg.From = "no-reply@shop.invalid"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("SMTP_ADDR must be host:port: %w", err)
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("SMTP_FROM is not an email address: %w", err)
	}
	return &Sender{cfg: cfg}, nil
}

// From is the sender address.
func (s *Sender) From() string { return s.cfg.From }

// Send delivers msg (a complete RFC 5322 message) to the address to. A
// malformed recipient is an error before any connection is made.
func (s *Sender) Send(ctx context.Context, to string, msg []byte) (err error) {
	if _, err := mail.ParseAddress(to); err != nil {
		return errors.New("smtp: invalid recipient address")
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn, err := (&net.Dialer{Deadline: deadline}).DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp: dial: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	host, _, _ := net.SplitHostPort(s.cfg.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp: greeting: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("smtp: starttls: %w", err)
		}
	}
	if err := c.Mail(s.cfg.From); err != nil {
		return fmt.Errorf("smtp: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("smtp: RCPT TO refused")
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp: write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: end of data: %w", err)
	}
	return c.Quit()
}
