package smtptest_test

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"testing"

	"github.com/shopfaas/shop/internal/notifications/smtpmail/smtptest"
)

// A refusal goes out as the test wrote it: the code, the enhanced status
// code when there is one (as written, leading zeros and all, so a test can
// send what RFC 3463 forbids), and the text, or the default text that
// echoes the address. A reply whose text opens without an enhanced code
// ("550 No such user", as a server without ENHANCEDSTATUSCODES words it)
// is such a reply; until 2026-12-06 it panicked.
func TestARecipientRefusalGoesOutAsWritten(t *testing.T) {
	srv := smtptest.New(t, smtptest.Plain)
	for _, tt := range []struct {
		reply string
		code  int
		msg   string // net/textproto's Error.Msg: the reply after its code
	}{
		{"550 No such user", 550, "No such user"},
		{"551 User not local; please try <bob@example.org>", 551, "User not local; please try <bob@example.org>"},
		{"450 Mailbox busy", 450, "Mailbox busy"},
		{"550", 550, "<bob@example.com>: mailbox unavailable"},
		{"451", 451, "<bob@example.com>: try again later"},
		{"550 5.1.1", 550, "5.1.1 <bob@example.com>: mailbox unavailable"},
		{"451 4.3.0", 451, "4.3.0 <bob@example.com>: try again later"},
		{"550 5.4.1 Recipient address rejected: Access denied", 550, "5.4.1 Recipient address rejected: Access denied"},
		{"550 5.04.001", 550, "5.04.001 <bob@example.com>: mailbox unavailable"},
		{"553 5.01.1 Mailbox name not allowed", 553, "5.01.1 Mailbox name not allowed"},
		// A text that opens with a number is no enhanced code.
		{"452 4 recipients max", 452, "4 recipients max"},
		{"550 5 attempts exceeded", 550, "5 attempts exceeded"},
	} {
		t.Run(tt.reply, func(t *testing.T) {
			srv.RefuseRecipientsWith(tt.reply)
			c, err := smtp.Dial(srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Auth(smtp.PlainAuth("", smtptest.Username, smtptest.Password, "127.0.0.1")); err != nil {
				t.Fatal(err)
			}
			if err := c.Mail("shop@example.com"); err != nil {
				t.Fatal(err)
			}
			err = c.Rcpt("bob@example.com")
			var te *textproto.Error
			if !errors.As(err, &te) || te.Code != tt.code || te.Msg != tt.msg {
				t.Fatalf("RCPT TO answered %v; want %d %s", err, tt.code, tt.msg)
			}
		})
	}
}

// A reply that cannot be one is a test's typo: it panics at once rather
// than sending something else.
func TestAMalformedReplyPanics(t *testing.T) {
	srv := smtptest.New(t, smtptest.Plain)
	for _, reply := range []string{"250", "55", "5x0 No", "550 5.1", "550 5.1.x", "550 5..1 text"} {
		t.Run(reply, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("RefuseRecipientsWith(%q) did not panic", reply)
				}
			}()
			srv.RefuseRecipientsWith(reply)
		})
	}
}
