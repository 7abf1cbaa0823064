package smtpmail_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/notifications/smtpmail"
	"github.com/shopfaas/shop/internal/notifications/smtpmail/smtptest"
)

// authenticated is the configuration of a sender that logs in to srv and
// trusts its test certificate; change adjusts it.
func authenticated(t *testing.T, srv *smtptest.Server, change func(*smtpmail.Config)) *smtpmail.Sender {
	t.Helper()
	cfg := smtpmail.Config{Addr: srv.Addr, From: "shop@example.com", Username: smtptest.Username,
		Password: smtptest.Password, RootCAs: srv.RootCAs, Timeout: 5 * time.Second}
	if change != nil {
		change(&cfg)
	}
	s, err := smtpmail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func email(to string) notifications.Email {
	return notifications.Email{To: to, Subject: "Your order 0190 is confirmed – merci", Text: "Hello.\r\n.leading dot\r\n",
		MessageID: "0190-test@shop", Date: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
}

// With SMTP_USERNAME the sender upgrades to TLS (STARTTLS by default, or
// implicit TLS) and logs in before the server accepts the message.
func TestSendsWithAuthOverTLS(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode smtptest.Mode
		tls  smtpmail.TLSMode
	}{
		{"starttls by default", smtptest.StartTLS, ""},
		{"starttls", smtptest.StartTLS, smtpmail.TLSStartTLS},
		{"implicit tls", smtptest.ImplicitTLS, smtpmail.TLSImplicit},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.New(t, tt.mode)
			s := authenticated(t, srv, func(c *smtpmail.Config) { c.TLS = tt.tls })
			if err := s.Send(context.Background(), email("bob@example.com")); err != nil {
				t.Fatal(err)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("%d messages accepted, want 1", len(got))
			}
			if diff := cmp.Diff(smtptest.Message{From: "shop@example.com", To: []string{"bob@example.com"}, Data: got[0].Data}, got[0]); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
			for _, want := range []string{"From: <shop@example.com>\r\n", "To: <bob@example.com>\r\n", "Message-ID: <0190-test@shop>\r\n",
				"Date: Sun, 01 Mar 2026 10:00:00 +0000\r\n", "Subject: =?UTF-8?q?Your_order_0190_is_confirmed_=E2=80=93_merci?=\r\n",
				"Content-Type: text/plain; charset=UTF-8\r\n", "\r\n.leading dot\r\n"} {
				if !strings.Contains(got[0].Data, want) {
					t.Errorf("message lacks %q:\n%s", want, got[0].Data)
				}
			}
		})
	}
}

// A wrong password is an error (the delivery answers 503 and is retried),
// the server accepted nothing, and the password is in no error text.
func TestWrongPasswordSendsNothing(t *testing.T) {
	srv := smtptest.New(t, smtptest.StartTLS)
	s := authenticated(t, srv, func(c *smtpmail.Config) { c.Password = "not-the-password" })
	err := s.Send(context.Background(), email("bob@example.com"))
	if err == nil {
		t.Fatal("a refused login was reported as sent")
	}
	if srv.AuthFailures() != 1 || len(srv.Messages()) != 0 {
		t.Errorf("%d refused logins, %d messages; want 1 and 0", srv.AuthFailures(), len(srv.Messages()))
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// The password never travels in plain text by accident: with credentials,
// a server that does not offer STARTTLS (or was stripped of it) gets no AUTH,
// and a certificate the sender does not trust ends the conversation.
func TestNoAuthWithoutTrustedTLS(t *testing.T) {
	t.Run("no STARTTLS offered", func(t *testing.T) {
		srv := smtptest.New(t, smtptest.Plain)
		s := authenticated(t, srv, nil)
		if err := s.Send(context.Background(), email("bob@example.com")); err == nil {
			t.Error("sent without TLS")
		}
		if srv.AuthFailures() != 0 || len(srv.Messages()) != 0 {
			t.Errorf("the server saw %d logins and %d messages", srv.AuthFailures(), len(srv.Messages()))
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := smtptest.New(t, smtptest.StartTLS)
		s := authenticated(t, srv, func(c *smtpmail.Config) { c.RootCAs = nil }) // the system's roots
		err := s.Send(context.Background(), email("bob@example.com"))
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("err = %v, want a certificate error", err)
		}
		if srv.AuthFailures() != 0 || len(srv.Messages()) != 0 {
			t.Errorf("the server saw %d logins and %d messages", srv.AuthFailures(), len(srv.Messages()))
		}
	})
}

// AUTH in plain text works only where explicitly allowed, to a loopback host.
func TestPlaintextAuthOnLoopbackWhenAllowed(t *testing.T) {
	srv := smtptest.New(t, smtptest.Plain)
	s := authenticated(t, srv, func(c *smtpmail.Config) { c.TLS, c.AllowPlaintextAuth = smtpmail.TLSNone, true })
	if err := s.Send(context.Background(), email("bob@example.com")); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// Without credentials nothing is sent to a server that requires AUTH, and a
// refused recipient is an error whose text masks the address (servers echo
// it; logs show only masked addresses).
func TestRefusalsAreErrorsWithMaskedAddresses(t *testing.T) {
	srv := smtptest.New(t, smtptest.StartTLS)
	anonymous := authenticated(t, srv, func(c *smtpmail.Config) { c.Username, c.Password = "", "" })
	if err := anonymous.Send(context.Background(), email("bob@example.com")); err == nil {
		t.Error("a server that requires AUTH accepted a message without it")
	}
	srv.RefuseRecipients(true)
	err := authenticated(t, srv, nil).Send(context.Background(), email("bob@example.com"))
	if err == nil {
		t.Fatal("a refused recipient was reported as sent")
	}
	if strings.Contains(err.Error(), "bob@example.com") || !strings.Contains(err.Error(), "b***@example.com") {
		t.Errorf("error text %q: want the address masked", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages accepted, want 0", n)
	}
}

// Only what sending again cannot change because of the recipient is
// notifications.ErrUndeliverable: a refusal of the recipient at RCPT TO (an
// enhanced code 5.1.x but 5.1.0, 5.1.7 and 5.1.8, 5.2.1 or 5.6.7, leading
// or qmail's trailing "(#5.x.y)"; without one, 550, 551 or 553; never a
// reply whose words name the sender or a relay refusal), an
// address that cannot be sent to, and, to a server without SMTPUTF8, an
// address with a non-ASCII local part or an invalid internationalised domain
// (refused here, before RCPT TO). The sender's own setup, the same for every
// email, is retried so that a misconfigured relay dead-letters and pages: a
// relay or policy refusal at RCPT TO (5.7.x), a protocol error (5.5.x), any
// refusal of MAIL FROM or of the message, a refused login, a 451, a server
// that is not there and an SMTP_FROM with a non-ASCII local part to a server
// without SMTPUTF8. Until 2026-12-06 any
// 5xx to RCPT TO or to the message counted as undeliverable: "554 5.7.1
// Relay access denied" marked every email refused, silently.
func TestOnlyAPermanentRefusalIsUndeliverable(t *testing.T) {
	srv := smtptest.New(t, smtptest.StartTLS)
	good := authenticated(t, srv, nil)
	for _, tt := range []struct {
		name                string
		sender              *smtpmail.Sender
		to                  string
		mail, rcpt, message string // the server's answer to MAIL FROM, RCPT TO, the message; "" accepts
		undeliverable       bool
		noRcpt              bool // refused before RCPT TO is sent
	}{
		{name: "550 5.1.1 no such mailbox", sender: good, to: "bob@example.com", rcpt: "550 5.1.1", undeliverable: true},
		{name: "553 5.6.7 non-ASCII address not allowed", sender: good, to: "bob@example.com", rcpt: "553 5.6.7", undeliverable: true},
		{name: "550 5.2.1 mailbox disabled", sender: good, to: "bob@example.com", rcpt: "550 5.2.1", undeliverable: true},
		{name: "550 without an enhanced code", sender: good, to: "bob@example.com", rcpt: "550", undeliverable: true},
		{name: "553 without an enhanced code", sender: good, to: "bob@example.com", rcpt: "553", undeliverable: true},
		{name: "554 5.7.1 relay access denied", sender: good, to: "bob@example.com", rcpt: "554 5.7.1"},
		{name: "530 5.7.0 authentication required", sender: good, to: "bob@example.com", rcpt: "530 5.7.0"},
		{name: "503 5.5.1 bad sequence of commands", sender: good, to: "bob@example.com", rcpt: "503 5.5.1"},
		{name: "552 5.3.4 at RCPT TO", sender: good, to: "bob@example.com", rcpt: "552 5.3.4"},
		{name: "554 without an enhanced code", sender: good, to: "bob@example.com", rcpt: "554"},
		{name: "451 4.3.0 try again later", sender: good, to: "bob@example.com", rcpt: "451 4.3.0"},
		// A server that sends no enhanced code words its reply at once:
		// the reply's code decides, 550, 551 and 553 for good, any other
		// retried. Until 2026-12-06 the test server could not send these.
		{name: "550 No such user", sender: good, to: "bob@example.com", rcpt: "550 No such user", undeliverable: true},
		{name: "551 User not local", sender: good, to: "bob@example.com", rcpt: "551 User not local; please try <bob@example.org>", undeliverable: true},
		{name: "553 Mailbox name not allowed", sender: good, to: "bob@example.com", rcpt: "553 Mailbox name not allowed", undeliverable: true},
		{name: "450 No such user, for now", sender: good, to: "bob@example.com", rcpt: "450 No such user"},
		{name: "451 Requested action aborted", sender: good, to: "bob@example.com", rcpt: "451 Requested action aborted: local error in processing"},
		{name: "452 Too many recipients", sender: good, to: "bob@example.com", rcpt: "452 Too many recipients"},
		{name: "554 Transaction failed", sender: good, to: "bob@example.com", rcpt: "554 Transaction failed"},
		{name: "552 Requested mail action aborted", sender: good, to: "bob@example.com", rcpt: "552 Requested mail action aborted: exceeded storage allocation"},
		// RFC 3463 (section 2) forbids leading zeros in an enhanced code's
		// numbers; a server that writes them still means the number, read
		// by value: 5.01.1 is a bad recipient, 5.07.1 and 5.01.7 the
		// sender's policy and address, retried as 5.7.1 and 5.1.7 are. For a
		// while on 2026-12-06 such text counted as no enhanced code, and the
		// reply's 550 made the sender's refusals final.
		{name: "550 5.04.001 leading zeros, 5.4.1 without Exchange's text", sender: good, to: "bob@example.com", rcpt: "550 5.04.001"},
		{name: "553 5.01.1 a leading zero", sender: good, to: "bob@example.com", rcpt: "553 5.01.1 Mailbox name not allowed", undeliverable: true},
		{name: "554 5.01.1 a leading zero in a 554", sender: good, to: "bob@example.com", rcpt: "554 5.01.1", undeliverable: true},
		{name: "550 5.07.1 the sender's policy with a leading zero", sender: good, to: "bob@example.com", rcpt: "550 5.07.1"},
		{name: "550 5.01.7 the sender's address with a leading zero", sender: good, to: "bob@example.com", rcpt: "550 5.01.7"},
		{name: "550 5.01.008 the sender's address, zeros in both", sender: good, to: "bob@example.com", rcpt: "550 5.01.008"},
		{name: "550 5.002.001 mailbox disabled with zeros", sender: good, to: "bob@example.com", rcpt: "550 5.002.001", undeliverable: true},
		{name: "450 4.01.1 a leading zero in a 4xx", sender: good, to: "bob@example.com", rcpt: "450 4.01.1"},
		{name: "550 5.0.0 a lone zero", sender: good, to: "bob@example.com", rcpt: "550 5.0.0"},
		// 5.1.0 ("other address status") names no address: Postfix's
		// reject_unlisted_sender gives it to the sender at RCPT TO.
		// Retried; until 2026-12-06 it was the recipient's.
		{name: "550 5.1.0 a lone zero detail", sender: good, to: "bob@example.com", rcpt: "550 5.1.0"},
		{name: "550 5.01.00 a lone zero detail with zeros", sender: good, to: "bob@example.com", rcpt: "550 5.01.00"},
		// Microsoft 365 (Exchange Online) refuses a recipient its directory
		// does not know with 5.4.1, which RFC 3463 gives to the network
		// ("no answer from host"): permanent with its text only, and only in
		// a 550; every other 5.4.x, and a 4.4.1, stays retried.
		{name: "550 5.4.1 Microsoft 365's unknown recipient", sender: good, to: "bob@example.com",
			rcpt: "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [AM0PR01MB1234.eurprd01.prod.exchangelabs.com]", undeliverable: true},
		{name: "550 5.4.1 its text in another case", sender: good, to: "bob@example.com", rcpt: "550 5.4.1 RECIPIENT ADDRESS REJECTED: access denied", undeliverable: true},
		{name: "550 5.4.1 without its text", sender: good, to: "bob@example.com", rcpt: "550 5.4.1"},
		{name: "550 5.4.1 no answer from host", sender: good, to: "bob@example.com", rcpt: "550 5.4.1 No answer from host"},
		{name: "554 5.4.1 its text in a 554", sender: good, to: "bob@example.com", rcpt: "554 5.4.1 Recipient address rejected: Access denied"},
		{name: "550 5.4.4 its text with another 5.4.x", sender: good, to: "bob@example.com", rcpt: "550 5.4.4 Recipient address rejected: unable to route"},
		{name: "550 5.4.0 its text with another 5.4.x", sender: good, to: "bob@example.com", rcpt: "550 5.4.0 Recipient address rejected"},
		{name: "450 4.4.1 its text in a 4xx", sender: good, to: "bob@example.com", rcpt: "450 4.4.1 Recipient address rejected: Access denied"},
		// Postfix's words for an access-map refusal, a policy (5.7.1): retried.
		{name: "554 5.7.1 its text with a policy refusal", sender: good, to: "bob@example.com", rcpt: "554 5.7.1 <bob@example.com>: Recipient address rejected: Access denied"},
		{name: "550 5.1.0 to MAIL FROM", sender: good, to: "bob@example.com", mail: "550 5.1.0"},
		// The sender's address refused at RCPT TO (Postfix's
		// smtpd_delay_reject): the same for every email, retried.
		{name: "550 5.1.8 sender's domain at RCPT TO", sender: good, to: "bob@example.com", rcpt: "550 5.1.8"},
		{name: "553 5.1.7 sender's address at RCPT TO", sender: good, to: "bob@example.com", rcpt: "553 5.1.7"},
		// The sender's or the relay's refusals in the words of real
		// servers, whatever their codes: the same for every email,
		// retried. Until 2026-12-06 each of these marked every email
		// refused for good (a 5.1.x, or a bare 550/553 whose qmail code
		// at the end was not read).
		{name: "Postfix reject_unlisted_sender at RCPT TO", sender: good, to: "bob@example.com",
			rcpt: "550 5.1.0 <shop@example.com>: Sender address rejected: User unknown in local recipient table"},
		{name: "Postfix sender refusal with a recipient's code", sender: good, to: "bob@example.com",
			rcpt: "550 5.1.1 <shop@example.com>: Sender address rejected: undeliverable address"},
		{name: "qmail rcpthosts, its code at the end", sender: good, to: "bob@example.com",
			rcpt: "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"},
		{name: "Exim relay not permitted", sender: good, to: "bob@example.com", rcpt: "550 relay not permitted"},
		{name: "Exim sender verify failed", sender: good, to: "bob@example.com", rcpt: "550 Sender verify failed"},
		{name: "sender verification failed", sender: good, to: "bob@example.com", rcpt: "550 SENDER VERIFICATION FAILED"},
		{name: "Sendmail relaying denied", sender: good, to: "bob@example.com", rcpt: "550 Relaying denied"},
		{name: "Exchange unable to relay", sender: good, to: "bob@example.com", rcpt: "550 Unable to relay for bob@example.com"},
		{name: "Postfix relay access denied with a recipient's code", sender: good, to: "bob@example.com",
			rcpt: "550 5.1.1 <bob@example.com>: Relay access denied"},
		// A recipient's refusal is still one when its words mention a relay
		// table or its code comes at the end, qmail's way.
		{name: "Postfix relay_recipient_maps unknown user", sender: good, to: "bob@example.com",
			rcpt: "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in relay recipient table", undeliverable: true},
		{name: "qmail no mailbox, its code at the end", sender: good, to: "bob@example.com",
			rcpt: "550 sorry, no mailbox here by that name. (#5.1.1)", undeliverable: true},
		{name: "qmail's code at the end, leading zeros", sender: good, to: "bob@example.com",
			rcpt: "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.07.01)"},
		{name: "qmail's 5.1.0 at the end", sender: good, to: "bob@example.com", rcpt: "550 sorry, refused (#5.1.0)"},
		{name: "553 to MAIL FROM", sender: good, to: "bob@example.com", mail: "553"},
		{name: "550 5.7.1 DMARC refusal of the message", sender: good, to: "bob@example.com", message: "550 5.7.1"},
		{name: "550 5.1.1 to the message", sender: good, to: "bob@example.com", message: "550 5.1.1"},
		{name: "554 to the message", sender: good, to: "bob@example.com", message: "554"},
		{name: "an address that cannot be sent to", sender: good, to: "bob@@example.com", undeliverable: true, noRcpt: true},
		// net/mail takes a tab within quotes (RFC 5322's FWS); RFC 5321's
		// Quoted-string has no form for it.
		{name: "a tab in a quoted local part", sender: good, to: "\"bob\tsmith\"@example.com", undeliverable: true, noRcpt: true},
		{name: "a non-ASCII address without SMTPUTF8", sender: good, to: "bób@example.com", undeliverable: true, noRcpt: true},
		// Only the domain has an ASCII form (its A-label): a non-ASCII
		// local part needs SMTPUTF8 whatever the domain, and a domain that
		// is not a valid internationalised domain name has none.
		{name: "a non-ASCII local part at an internationalised domain without SMTPUTF8", sender: good, to: "bób@bücherhalle-hamburg.de", undeliverable: true, noRcpt: true},
		{name: "an internationalised domain with a leading hyphen", sender: good, to: "info@-bücherhalle.de", undeliverable: true, noRcpt: true},
		{name: "an internationalised domain with an underscore", sender: good, to: "info@bücher_halle.de", undeliverable: true, noRcpt: true},
		{name: "an internationalised domain mixing left-to-right and right-to-left", sender: good, to: "info@a\u05d0ü.de", undeliverable: true, noRcpt: true},
		{name: "an internationalised domain with an empty label", sender: good, to: "info@bücher\u3002\u3002de", undeliverable: true, noRcpt: true},
		{name: "an internationalised domain with a trailing dot", sender: good, to: "info@bücher.de\u3002", undeliverable: true, noRcpt: true},
		{name: "an internationalised domain with a label over 63 octets", sender: good, to: "info@ü" + strings.Repeat("a", 63) + ".de", undeliverable: true, noRcpt: true},
		// SMTP_FROM with a non-ASCII local part is the configuration's
		// fault, the same for every email: retried, never undeliverable.
		{name: "a non-ASCII sender local part without SMTPUTF8", sender: authenticated(t, srv, func(c *smtpmail.Config) { c.From = "bücher@example.com" }), to: "bob@example.com", noRcpt: true},
		{name: "a refused login", sender: authenticated(t, srv, func(c *smtpmail.Config) { c.Password = "not-the-password" }), to: "bob@example.com", noRcpt: true},
		{name: "no server", sender: authenticated(t, srv, func(c *smtpmail.Config) { c.Addr = "127.0.0.1:1" }), to: "bob@example.com", noRcpt: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv.RefuseSenderWith(tt.mail)
			srv.RefuseRecipientsWith(tt.rcpt)
			srv.RefuseMessageWith(tt.message)
			rcpts, msgs := srv.Rcpts(), len(srv.Messages())
			err := tt.sender.Send(context.Background(), email(tt.to))
			if err == nil {
				t.Fatal("sent")
			}
			if got := errors.Is(err, notifications.ErrUndeliverable); got != tt.undeliverable {
				t.Errorf("%v: undeliverable %v, want %v", err, got, tt.undeliverable)
			}
			if sent := srv.Rcpts() - rcpts; tt.noRcpt && sent != 0 {
				t.Errorf("%d RCPT TO sent, want none", sent)
			}
			if n := len(srv.Messages()) - msgs; n != 0 {
				t.Errorf("%d messages accepted, want 0", n)
			}
		})
	}
}

func TestConfigRefusals(t *testing.T) {
	good := smtpmail.Config{Addr: "smtp.example.com:587", From: "shop@example.com", Username: "u", Password: "config-test-password"}
	tests := []struct {
		name   string
		change func(*smtpmail.Config)
		want   string // in the error; "" means accepted
	}{
		{"starttls with auth", nil, ""},
		{"implicit tls", func(c *smtpmail.Config) { c.Addr, c.TLS = "smtp.example.com:465", smtpmail.TLSImplicit }, ""},
		{"no auth in plain text", func(c *smtpmail.Config) { c.Username, c.Password, c.TLS = "", "", smtpmail.TLSNone }, ""},
		{"no auth, opportunistic", func(c *smtpmail.Config) { c.Username, c.Password, c.TLS = "", "", smtpmail.TLSOpportunistic }, ""},
		{"plain-text auth to a remote host", func(c *smtpmail.Config) { c.TLS = smtpmail.TLSNone }, "SMTP_TLS=none"},
		{"plain-text auth to a remote host, allowed", func(c *smtpmail.Config) { c.TLS, c.AllowPlaintextAuth = smtpmail.TLSNone, true }, "loopback"},
		{"plain-text auth to loopback, not allowed", func(c *smtpmail.Config) { c.Addr, c.TLS = "127.0.0.1:25", smtpmail.TLSNone }, "SMTP_ALLOW_PLAINTEXT_AUTH"},
		{"plain-text auth to 127.0.0.1, allowed", func(c *smtpmail.Config) { c.Addr, c.TLS, c.AllowPlaintextAuth = "127.0.0.1:25", smtpmail.TLSNone, true }, ""},
		{"plain-text auth to localhost, allowed", func(c *smtpmail.Config) { c.Addr, c.TLS, c.AllowPlaintextAuth = "localhost:25", smtpmail.TLSNone, true }, ""},
		{"plain-text auth to ::1, allowed", func(c *smtpmail.Config) { c.Addr, c.TLS, c.AllowPlaintextAuth = "[::1]:25", smtpmail.TLSNone, true }, ""},
		{"opportunistic with auth", func(c *smtpmail.Config) { c.TLS = smtpmail.TLSOpportunistic }, "SMTP_TLS=opportunistic"},
		{"username without password", func(c *smtpmail.Config) { c.Password = "" }, "smtp-password"},
		{"unknown tls mode", func(c *smtpmail.Config) { c.TLS = "ssl" }, "SMTP_TLS"},
		{"address without port", func(c *smtpmail.Config) { c.Addr = "smtp.example.com" }, "SMTP_ADDR"},
		{"port out of range", func(c *smtpmail.Config) { c.Addr = "smtp.example.com:70000" }, "SMTP_ADDR"},
		{"sender not an address", func(c *smtpmail.Config) { c.From = "shop" }, "SMTP_FROM"},
		{"sender at an internationalised domain", func(c *smtpmail.Config) { c.From = "Bücherhalle <shop@bücherhalle-hamburg.de>" }, ""},
		{"sender with a non-ASCII local part", func(c *smtpmail.Config) { c.From = "bücher@example.com" }, ""},
		{"sender at an invalid internationalised domain", func(c *smtpmail.Config) { c.From = "shop@-bücherhalle.de" }, "SMTP_FROM"},
		{"sender with a quoted local part", func(c *smtpmail.Config) { c.From = `"shop desk"@example.com` }, ""},
		{"sender with a tab in a quoted local part", func(c *smtpmail.Config) { c.From = "\"shop\tdesk\"@example.com" }, "SMTP_FROM"},
		{"timeout above the limit", func(c *smtpmail.Config) { c.Timeout = time.Minute }, "SMTP_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			if tt.change != nil {
				tt.change(&cfg)
			}
			_, err := smtpmail.New(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("accepted, want an error about %s", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not mention %s", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), cfg.Password) && cfg.Password != "" {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// ConfigFrom reads the SMTP_* variables and the smtp-password secret, which
// is required only with SMTP_USERNAME; without SMTP_ADDR nothing is needed.
func TestConfigFrom(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "smtp-password"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.New(config.Env(map[string]string{
		"SECRETS_DIR": dir, "SMTP_ADDR": "smtp.example.com:587", "SMTP_FROM": "shop@example.com",
		"SMTP_USERNAME": "apikey", "SMTP_TLS": "STARTTLS", "SMTP_TIMEOUT": "20s", "SMTP_ALLOW_PLAINTEXT_AUTH": "false",
	}))
	got := smtpmail.ConfigFrom(c)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	want := smtpmail.Config{Addr: "smtp.example.com:587", From: "shop@example.com", Username: "apikey", Password: "s3cret",
		TLS: smtpmail.TLSStartTLS, Timeout: 20 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	empty := t.TempDir()
	c = config.New(config.Env(map[string]string{"SECRETS_DIR": empty}))
	if got := smtpmail.ConfigFrom(c); got.Addr != "" || c.Err() != nil {
		t.Errorf("without SMTP_ADDR: %+v, %v", got, c.Err())
	}
	c = config.New(config.Env(map[string]string{"SECRETS_DIR": empty, "SMTP_ADDR": "smtp.example.com:587", "SMTP_USERNAME": "apikey"}))
	smtpmail.ConfigFrom(c)
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "smtp-password") {
		t.Errorf("SMTP_USERNAME without the smtp-password secret: %v", err)
	}
}

// SMTP_TIMEOUT bounds the whole send, not each step: a server whose greeting
// and EHLO answer each take 70% of it makes the send fail (a deadline
// renewed at every phase would wait for both), and nothing is delivered.
func TestTimeoutBoundsTheWholeSend(t *testing.T) {
	const timeout = time.Second
	srv := smtptest.New(t, smtptest.StartTLS)
	srv.SlowReplies(2, timeout*7/10)
	s := authenticated(t, srv, func(c *smtpmail.Config) { c.Timeout = timeout })
	err := s.Send(context.Background(), email("bob@example.com"))
	if err == nil {
		t.Fatal("a send that outlasted SMTP_TIMEOUT succeeded")
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages accepted, want 0", n)
	}
	// The same server within the timeout: the delays alone are no error.
	s = authenticated(t, srv, func(c *smtpmail.Config) { c.Timeout = 3 * timeout })
	if err := s.Send(context.Background(), email("bob@example.com")); err != nil {
		t.Fatalf("within the timeout: %v", err)
	}
}

// The sender logs in with the first of SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5,
// PLAIN and LOGIN the server offers (SMTP_USERNAME's documented order); a
// wrong password fails with each of them and nothing is sent.
func TestLogsInWithTheFirstOfferedMechanism(t *testing.T) {
	for _, tt := range []struct {
		offer []string
		want  string
	}{
		{[]string{"LOGIN"}, "LOGIN"},
		{[]string{"LOGIN", "PLAIN"}, "PLAIN"},
		{[]string{"PLAIN", "CRAM-MD5"}, "CRAM-MD5"},
		{[]string{"CRAM-MD5", "SCRAM-SHA-1"}, "SCRAM-SHA-1"},
		{[]string{"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"}, "SCRAM-SHA-256"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			srv := smtptest.New(t, smtptest.StartTLS)
			srv.Offer(tt.offer...)
			if err := authenticated(t, srv, nil).Send(context.Background(), email("bob@example.com")); err != nil {
				t.Fatal(err)
			}
			if got := srv.Used(); len(got) != 1 || got[0] != tt.want || len(srv.Messages()) != 1 {
				t.Errorf("mechanisms used %v, %d messages; want [%s] and 1", got, len(srv.Messages()), tt.want)
			}
			err := authenticated(t, srv, func(c *smtpmail.Config) { c.Password = "not-the-password" }).
				Send(context.Background(), email("bob@example.com"))
			if err == nil || srv.AuthFailures() != 1 || len(srv.Messages()) != 1 {
				t.Errorf("wrong password: err %v, %d refused logins, %d messages; want an error, 1 and 1", err, srv.AuthFailures(), len(srv.Messages()))
			}
		})
	}
}

// A SCRAM login is complete only when the server has proved it knows the
// password (its signature in the server-final message, RFC 5802): a server
// that answers 235 without it is refused and nothing is sent to it.
func TestSCRAMRefusesAServerThatNeverProvesItKnowsThePassword(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1"} {
		t.Run(mech, func(t *testing.T) {
			srv := smtptest.New(t, smtptest.StartTLS)
			srv.Offer(mech)
			srv.SkipSCRAMServerFinal(true)
			err := authenticated(t, srv, nil).Send(context.Background(), email("bob@example.com"))
			if err == nil || len(srv.Messages()) != 0 {
				t.Fatalf("a 235 without the server's signature: err %v, %d messages; want an error and none", err, len(srv.Messages()))
			}
			srv.SkipSCRAMServerFinal(false)
			if err := authenticated(t, srv, nil).Send(context.Background(), email("bob@example.com")); err != nil || len(srv.Messages()) != 1 {
				t.Fatalf("with the server's signature: err %v, %d messages; want nil and 1", err, len(srv.Messages()))
			}
		})
	}
}

// The message is what go-mail composed before (headers in the same order,
// the recipient's display name and the subject RFC 2047-encoded, the body
// quoted-printable with CRLF line ends), a leading dot arrives intact, and
// the sender introduces itself with the host name, as go-mail did.
func TestMessageBytes(t *testing.T) {
	srv := smtptest.New(t, smtptest.StartTLS)
	s := authenticated(t, srv, nil)
	long := notifications.Email{To: "Zoë <zoe@example.com>", Subject: "plain ascii subject",
		Text:      "Dear customer, this line is deliberately long so that quoted-printable has to wrap it somewhere after seventy-six characters; ünïcödé too = sign.\r\nSecond line\nbare LF\r\n",
		MessageID: "x@y", Date: time.Date(2026, 3, 1, 10, 0, 0, 0, time.FixedZone("", 3600))}
	for _, e := range []notifications.Email{email("bob@example.com"), long} {
		if err := s.Send(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	want := []smtptest.Message{
		{From: "shop@example.com", To: []string{"bob@example.com"}, Data: "Date: Sun, 01 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nMessage-ID: <0190-test@shop>\r\nSubject: =?UTF-8?q?Your_order_0190_is_confirmed_=E2=80=93_merci?=\r\nFrom: <shop@example.com>\r\nTo: <bob@example.com>\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nHello.\r\n.leading dot\r\n"},
		{From: "shop@example.com", To: []string{"zoe@example.com"}, Data: "Date: Sun, 01 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nMessage-ID: <x@y>\r\nSubject: plain ascii subject\r\nFrom: <shop@example.com>\r\nTo: =?utf-8?q?Zo=C3=AB?= <zoe@example.com>\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nDear customer, this line is deliberately long so that quoted-printable has =\r\nto wrap it somewhere after seventy-six characters; =C3=BCn=C3=AFc=C3=B6d=C3=\r\n=A9 too =3D sign.\r\nSecond line\r\nbare LF\r\n"},
	}
	if diff := cmp.Diff(want, srv.Messages()); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range srv.Helos() { // before and after STARTTLS
		if name != host {
			t.Errorf("EHLO %q, want the host name %q", name, host)
		}
	}
	if len(srv.Helos()) == 0 {
		t.Error("no EHLO recorded")
	}
}

// Once the whole message is handed over, a cancel no longer cuts the
// conversation: the server may have the message, so the sender waits,
// within SMTP_TIMEOUT, for its answer. An answer that never comes is
// notifications.ErrUnanswered (the email may have gone out), not a plain
// failure. Until 2026-12-06 the cancel cut the wait and the email was sent
// again by the redelivery.
func TestAMessageHandedOverWaitsForItsAnswer(t *testing.T) {
	srv := smtptest.New(t, smtptest.StartTLS)
	srv.SlowMessageAnswers(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := authenticated(t, srv, nil).Send(ctx, email("bob@example.com")); err != nil {
		t.Fatalf("a message answered after the context ended: %v", err)
	}
	err := authenticated(t, srv, func(c *smtpmail.Config) { c.Timeout = 500 * time.Millisecond }).
		Send(context.Background(), email("bob@example.com"))
	if !errors.Is(err, notifications.ErrUnanswered) || errors.Is(err, notifications.ErrUndeliverable) {
		t.Errorf("an answer beyond SMTP_TIMEOUT: %v, want notifications.ErrUnanswered", err)
	}
	if n := len(srv.Messages()); n != 2 {
		t.Errorf("%d messages stored, want 2", n)
	}
}

// A delivery whose context is cancelled (the event's invocation ended) stops
// talking to a slow server at once instead of waiting out SMTP_TIMEOUT.
func TestCancelEndsTheConversation(t *testing.T) {
	srv := smtptest.New(t, smtptest.StartTLS)
	srv.SlowReplies(1, 3*time.Second) // the greeting
	s := authenticated(t, srv, func(c *smtpmail.Config) { c.Timeout = 10 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := s.Send(ctx, email("bob@example.com"))
	if err == nil {
		t.Fatal("a cancelled send succeeded")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the send took %s after its context was cancelled at 200ms", took)
	}
}

// Only a non-ASCII local part needs SMTPUTF8 (RFC 6531): to a server without
// it, an address whose domain only is non-ASCII goes as the domain's A-label
// (IDNA 2008, UTS #46 lookup: mapped to lower case, "ß" kept), in the
// envelope and in the From: and To: headers, and the message is all ASCII;
// the sender's address (SMTP_FROM) the same way. A refusal's text masks the
// A-label form the server echoes. Until 2026-12-06 such an address was
// refused here as undeliverable, never sent.
func TestInternationalisedDomainGoesAsItsALabelWithoutSMTPUTF8(t *testing.T) {
	for _, tt := range []struct {
		name, from, to       string
		wantFrom, wantTo     string // the envelope
		fromHeader, toHeader string
	}{
		{name: "recipient", from: "shop@example.com", to: "info@bücherhalle-hamburg.de",
			wantFrom: "shop@example.com", wantTo: "info@xn--bcherhalle-hamburg-m6b.de",
			fromHeader: "From: <shop@example.com>\r\n", toHeader: "To: <info@xn--bcherhalle-hamburg-m6b.de>\r\n"},
		{name: "upper case mapped, local part kept", from: "shop@example.com", to: "Info@BÜCHERhalle-Hamburg.DE",
			wantFrom: "shop@example.com", wantTo: "Info@xn--bcherhalle-hamburg-m6b.de",
			fromHeader: "From: <shop@example.com>\r\n", toHeader: "To: <Info@xn--bcherhalle-hamburg-m6b.de>\r\n"},
		{name: "sharp s kept (non-transitional)", from: "shop@example.com", to: "Zoë <zoe@straße.de>",
			wantFrom: "shop@example.com", wantTo: "zoe@xn--strae-oqa.de",
			fromHeader: "From: <shop@example.com>\r\n", toHeader: "To: =?utf-8?q?Zo=C3=AB?= <zoe@xn--strae-oqa.de>\r\n"},
		{name: "sender", from: "Bücherhalle <shop@bücherhalle-hamburg.de>", to: "bob@example.com",
			wantFrom: "shop@xn--bcherhalle-hamburg-m6b.de", wantTo: "bob@example.com",
			fromHeader: "From: =?utf-8?q?B=C3=BCcherhalle?= <shop@xn--bcherhalle-hamburg-m6b.de>\r\n", toHeader: "To: <bob@example.com>\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtptest.New(t, smtptest.StartTLS)
			s := authenticated(t, srv, func(c *smtpmail.Config) { c.From = tt.from })
			if err := s.Send(context.Background(), email(tt.to)); err != nil {
				t.Fatal(err)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("%d messages accepted, want 1", len(got))
			}
			if diff := cmp.Diff(smtptest.Message{From: tt.wantFrom, To: []string{tt.wantTo}, Data: got[0].Data}, got[0]); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
			for _, want := range []string{tt.fromHeader, tt.toHeader} {
				if !strings.Contains(got[0].Data, want) {
					t.Errorf("message lacks %q:\n%s", want, got[0].Data)
				}
			}
			for i := 0; i < len(got[0].Data); i++ {
				if got[0].Data[i] >= 0x80 {
					t.Fatalf("byte %d of the message is not ASCII:\n%s", i, got[0].Data)
				}
			}
		})
	}
	t.Run("refusal masked", func(t *testing.T) {
		srv := smtptest.New(t, smtptest.StartTLS)
		srv.RefuseRecipientsWith("550 5.1.1")
		err := authenticated(t, srv, nil).Send(context.Background(), email("info@bücherhalle-hamburg.de"))
		if !errors.Is(err, notifications.ErrUndeliverable) {
			t.Fatalf("err = %v, want undeliverable", err)
		}
		if srv.Rcpts() != 1 || strings.Contains(err.Error(), "info@") || !strings.Contains(err.Error(), "i***@xn--bcherhalle-hamburg-m6b.de") {
			t.Errorf("%d RCPT TO, error text %q: want 1 and the A-label address masked", srv.Rcpts(), err)
		}
	})
}

// A server that offers SMTPUTF8 gets every address as it was given, UTF-8
// in the envelope (with MAIL FROM's SMTPUTF8 parameter) and in the headers:
// no A-label, a non-ASCII local part delivered.
func TestSMTPUTF8ServerGetsAddressesUnchanged(t *testing.T) {
	for _, tt := range []struct{ from, to string }{
		{"shop@example.com", "info@bücherhalle-hamburg.de"},
		{"shop@example.com", "bób@bücherhalle-hamburg.de"},
		{"bücher@bücherhalle-hamburg.de", "bob@example.com"},
	} {
		t.Run(tt.from+" to "+tt.to, func(t *testing.T) {
			srv := smtptest.New(t, smtptest.StartTLS, smtptest.SMTPUTF8)
			s := authenticated(t, srv, func(c *smtpmail.Config) { c.From = tt.from })
			if err := s.Send(context.Background(), email(tt.to)); err != nil {
				t.Fatal(err)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("%d messages accepted, want 1", len(got))
			}
			if diff := cmp.Diff(smtptest.Message{From: tt.from, To: []string{tt.to}, Data: got[0].Data, SMTPUTF8: true}, got[0]); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
			for _, want := range []string{"From: <" + tt.from + ">\r\n", "To: <" + tt.to + ">\r\n"} {
				if !strings.Contains(got[0].Data, want) {
					t.Errorf("message lacks %q:\n%s", want, got[0].Data)
				}
			}
		})
	}
}

// A local part that is not an RFC 5321 Dot-string (net/mail hands it over
// unquoted: `"john doe"@example.com` is "john doe@example.com") goes quoted
// in MAIL FROM and RCPT TO, '"' and '\' escaped (RFC 5321 4.1.2), and in the
// From: and To: headers; with a domain's A-label to a server without
// SMTPUTF8, in UTF-8 to one with it. The test server unquotes what it
// receives, as Postfix does, and refuses an unquoted space or '"' (501 5.5.2).
// A refusal that echoes the quoted form masks it. Until 2026-12-06 the
// envelope carried the local part unquoted: "RCPT TO:<john doe@example.com>",
// a syntax error (this server's 501 5.5.2, retried until the dead letters;
// a server answering 5.1.3, bad address syntax, had it refused for good).
// A bare address whose local part is not a Dot-string, as the users service
// may store one, goes so too.
func TestAQuotedLocalPartGoesQuoted(t *testing.T) {
	for _, tt := range []struct {
		name, from, to       string
		utf8                 bool
		wantFrom, wantTo     string // the envelope, as the server unquotes it
		fromHeader, toHeader string
	}{
		{name: "a space", from: "shop@example.com", to: `"john doe"@example.com`,
			wantFrom: "shop@example.com", wantTo: "john doe@example.com",
			fromHeader: "From: <shop@example.com>\r\n", toHeader: "To: <\"john doe\"@example.com>\r\n"},
		{name: "a quote and a backslash", from: "shop@example.com", to: `"a\"b\\c"@example.com`,
			wantFrom: "shop@example.com", wantTo: `a"b\c@example.com`,
			fromHeader: "From: <shop@example.com>\r\n", toHeader: `To: <"a\"b\\c"@example.com>` + "\r\n"},
		{name: "an at sign and a leading dot", from: "shop@example.com", to: `".john@home"@example.com`,
			wantFrom: "shop@example.com", wantTo: ".john@home@example.com",
			fromHeader: "From: <shop@example.com>\r\n", toHeader: "To: <\".john@home\"@example.com>\r\n"},
		{name: "at an internationalised domain without SMTPUTF8", from: "shop@example.com", to: `"john doe"@bücherhalle-hamburg.de`,
			wantFrom: "shop@example.com", wantTo: "john doe@xn--bcherhalle-hamburg-m6b.de",
			fromHeader: "From: <shop@example.com>\r\n", toHeader: "To: <\"john doe\"@xn--bcherhalle-hamburg-m6b.de>\r\n"},
		{name: "non-ASCII with SMTPUTF8", from: "shop@example.com", to: `"jöhn doe"@bücherhalle-hamburg.de`, utf8: true,
			wantFrom: "shop@example.com", wantTo: "jöhn doe@bücherhalle-hamburg.de",
			fromHeader: "From: <shop@example.com>\r\n", toHeader: "To: <\"jöhn doe\"@bücherhalle-hamburg.de>\r\n"},
		// Migration 0011 of the users database composed a stored
		// "a" U+037E "b@x.com" into "a;b@x.com": a bare address net/mail
		// refuses unquoted. Until 2026-12-08 it was undeliverable.
		{name: "a stored address whose local part needs quotes", from: "shop@example.com", to: "a;b@example.com",
			wantFrom: "shop@example.com", wantTo: "a;b@example.com",
			fromHeader: "From: <shop@example.com>\r\n", toHeader: "To: <\"a;b\"@example.com>\r\n"},
		{name: "the sender", from: `Shop <"shop desk"@example.com>`, to: "bob@example.com",
			wantFrom: "shop desk@example.com", wantTo: "bob@example.com",
			fromHeader: "From: \"Shop\" <\"shop desk\"@example.com>\r\n", toHeader: "To: <bob@example.com>\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var opts []smtptest.Option
			if tt.utf8 {
				opts = append(opts, smtptest.SMTPUTF8)
			}
			srv := smtptest.New(t, smtptest.StartTLS, opts...)
			s := authenticated(t, srv, func(c *smtpmail.Config) { c.From = tt.from })
			if err := s.Send(context.Background(), email(tt.to)); err != nil {
				t.Fatal(err)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("%d messages accepted, want 1", len(got))
			}
			if diff := cmp.Diff(smtptest.Message{From: tt.wantFrom, To: []string{tt.wantTo}, Data: got[0].Data, SMTPUTF8: tt.utf8}, got[0]); diff != "" {
				t.Errorf("envelope (-want +got):\n%s", diff)
			}
			for _, want := range []string{tt.fromHeader, tt.toHeader} {
				if !strings.Contains(got[0].Data, want) {
					t.Errorf("message lacks %q:\n%s", want, got[0].Data)
				}
			}
		})
	}
	t.Run("refusal masked", func(t *testing.T) {
		srv := smtptest.New(t, smtptest.StartTLS)
		srv.RefuseRecipientsWith(`550 5.1.1 <"john doe"@example.com>: Recipient address rejected: User unknown`)
		err := authenticated(t, srv, nil).Send(context.Background(), email(`"john doe"@example.com`))
		if !errors.Is(err, notifications.ErrUndeliverable) {
			t.Fatalf("err = %v, want undeliverable", err)
		}
		if strings.Contains(err.Error(), "john") || !strings.Contains(err.Error(), `<j***@example.com>`) {
			t.Errorf("error text %q: want the quoted address masked", err)
		}
	})
}

// A stored bare address taken as it is (a local part net/mail refuses
// unquoted) with a control character in it (C0, DEL, C1: U+0080-U+009F) is undeliverable
// to a server with SMTPUTF8 too: quoted, it would still carry the
// character into the envelope and the To: header. Until 2026-12-08 only
// spaces (and the ASCII controls, when quoted) were refused.
func TestABareAddressWithAControlCharacterIsUndeliverable(t *testing.T) {
	srv := smtptest.New(t, smtptest.StartTLS, smtptest.SMTPUTF8)
	for _, to := range []string{"a;\x01b@example.com", "a;b\x7f@example.com", "a;\x1bb@example.com", "a;b\u0085@example.com", "a;\u009bb@example.com", "a;b\u0080@example.com"} {
		err := authenticated(t, srv, nil).Send(context.Background(), email(to))
		if !errors.Is(err, notifications.ErrUndeliverable) {
			t.Errorf("%q: %v, want undeliverable", to, err)
		}
	}
	if n := srv.Rcpts(); n != 0 {
		t.Errorf("%d RCPT TO, want none", n)
	}
}
