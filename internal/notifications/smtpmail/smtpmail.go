// Package smtpmail sends the shop's notification emails through the
// standard library's net/smtp: SMTP AUTH with the provider's credentials
// (auth.go), TLS (STARTTLS or implicit) with the server's certificate
// verified, a plain-text UTF-8 message composed here (quoted-printable body,
// RFC 2047 subject), and one deadline on the whole conversation so a slow or
// stuck server never holds an event delivery.
//
// It replaced github.com/wneessen/go-mail, which linked html/template and
// text/template into every function of the multi-call binary for the one
// function that sends mail (docs/performance.md, "Memory (item 5)").
package smtpmail

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/notifications"
)

// TLSMode is how the sender protects the connection (SMTP_TLS).
type TLSMode string

const (
	// TLSStartTLS requires STARTTLS before anything else is said, usually on
	// port 587; a server that does not offer it gets nothing. The default
	// with SMTP_USERNAME.
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte, usually on port 465.
	TLSImplicit TLSMode = "tls"
	// TLSNone never uses TLS. With SMTP_USERNAME it is refused unless
	// SMTP_ALLOW_PLAINTEXT_AUTH=true and the server is on loopback.
	TLSNone TLSMode = "none"
	// TLSOpportunistic upgrades with STARTTLS when the server offers it,
	// else goes on in plain text: the default without SMTP_USERNAME (a relay
	// that needs no login), refused with one (a man in the middle who strips
	// STARTTLS would get the password).
	TLSOpportunistic TLSMode = "opportunistic"
)

const (
	// DefaultFrom is the sender address when SMTP_FROM is unset.
	DefaultFrom = "no-reply@shop.invalid"
	// DefaultTimeout is SMTP_TIMEOUT's default.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout bounds SMTP_TIMEOUT: half the minute for which notify-user
	// claims an email before another delivery may send it.
	MaxTimeout = 30 * time.Second
)

// Config configures the sender.
type Config struct {
	// Addr is the SMTP server, host:port (SMTP_ADDR).
	Addr string
	// From is the sender address (SMTP_FROM), default DefaultFrom. A
	// non-ASCII domain must be a valid internationalised domain name; to a
	// server without SMTPUTF8 it is sent as its A-label (xn--…), and a
	// non-ASCII local part cannot be sent there at all (a retried error).
	From string
	// Username turns SMTP AUTH on (SMTP_USERNAME): the sender logs in with
	// it and Password, with the first mechanism of SCRAM-SHA-256,
	// SCRAM-SHA-1, CRAM-MD5, PLAIN, LOGIN the server offers; PLAIN and LOGIN
	// only inside TLS unless AllowPlaintextAuth.
	Username string
	// Password is the SMTP password (secret smtp-password), required with
	// Username and read only then. It appears in no log and no error.
	Password string
	// TLS is how the connection is protected (SMTP_TLS): TLSStartTLS,
	// TLSImplicit, TLSNone or TLSOpportunistic. Empty means TLSStartTLS with
	// a Username and TLSOpportunistic without.
	TLS TLSMode
	// AllowPlaintextAuth permits AUTH with TLSNone
	// (SMTP_ALLOW_PLAINTEXT_AUTH), only to a loopback host (localhost,
	// 127.0.0.0/8, ::1): a relay or tunnel on the same machine.
	AllowPlaintextAuth bool
	// Timeout bounds a whole send, from connecting to the end of the
	// message (SMTP_TIMEOUT), default DefaultTimeout, at most MaxTimeout; a
	// shorter deadline of the caller's context wins.
	Timeout time.Duration
	// RootCAs verifies the server's certificate; nil means the system's
	// roots. Tests give their server's certificate.
	RootCAs *x509.CertPool
}

// ConfigFrom reads SMTP_ADDR, SMTP_FROM, SMTP_USERNAME, SMTP_TLS,
// SMTP_ALLOW_PLAINTEXT_AUTH, SMTP_TIMEOUT and, when SMTP_ADDR and
// SMTP_USERNAME are set, the secret smtp-password; c collects the problems.
// An empty Addr means no email is sent; New validates the rest.
func ConfigFrom(c *config.Reader) Config {
	cfg := Config{
		Addr:               c.String("SMTP_ADDR", ""),
		From:               c.String("SMTP_FROM", ""),
		Username:           c.String("SMTP_USERNAME", ""),
		TLS:                TLSMode(strings.ToLower(c.String("SMTP_TLS", ""))),
		AllowPlaintextAuth: c.Bool("SMTP_ALLOW_PLAINTEXT_AUTH", false),
		Timeout:            c.Duration("SMTP_TIMEOUT", DefaultTimeout),
	}
	if cfg.Addr != "" && cfg.Username != "" {
		cfg.Password = c.Secret("smtp-password", "", false)
	}
	return cfg
}

func (c *Config) setDefaults() {
	if c.From == "" {
		c.From = DefaultFrom
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.TLS == "" {
		c.TLS = TLSOpportunistic
		if c.Username != "" {
			c.TLS = TLSStartTLS
		}
	}
}

// Validate reports every problem at once. Above all it refuses a
// configuration that could send the password in plain text.
func (c Config) Validate() error {
	var errs []error
	host, port, err := net.SplitHostPort(c.Addr)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		errs = append(errs, fmt.Errorf("SMTP_ADDR=%q must be host:port", c.Addr))
	}
	if from, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("SMTP_FROM=%q is not an email address", c.From))
	} else if _, err := aLabel(domain(from.Address)); err != nil {
		// Refused here rather than at every send: no server could take a
		// domain that no resolver can look up.
		errs = append(errs, fmt.Errorf("SMTP_FROM=%q %w", c.From, err))
	} else if _, err := mailbox(from.Address); err != nil {
		// The same: no SMTP command can carry it (a tab in a quoted local part).
		errs = append(errs, fmt.Errorf("SMTP_FROM=%q %w", c.From, err))
	}
	switch c.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone, TLSOpportunistic:
	default:
		errs = append(errs, fmt.Errorf("SMTP_TLS=%q must be starttls, tls, none or opportunistic", c.TLS))
	}
	if c.Timeout <= 0 || c.Timeout > MaxTimeout {
		errs = append(errs, fmt.Errorf("SMTP_TIMEOUT=%s must be above 0 and at most %s", c.Timeout, MaxTimeout))
	}
	if c.Username == "" {
		return errors.Join(errs...)
	}
	if c.Password == "" {
		errs = append(errs, errors.New("SMTP_USERNAME is set: the smtp-password secret is required"))
	}
	switch {
	case c.TLS == TLSOpportunistic:
		errs = append(errs, errors.New("SMTP_TLS=opportunistic with SMTP_USERNAME: a server stripped of STARTTLS would get the password in plain text; use starttls or tls"))
	case c.TLS == TLSNone && !c.AllowPlaintextAuth:
		errs = append(errs, errors.New("SMTP_TLS=none with SMTP_USERNAME sends the password in plain text: use starttls or tls (or, for a relay on loopback only, set SMTP_ALLOW_PLAINTEXT_AUTH=true)"))
	case c.TLS == TLSNone && !loopback(host):
		errs = append(errs, fmt.Errorf("SMTP_ALLOW_PLAINTEXT_AUTH allows a password in plain text to a loopback host only, not %q", host))
	}
	return errors.Join(errs...)
}

// loopback reports whether host names this machine without a DNS lookup.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Sender sends emails. It is safe for concurrent use: every Send has its
// own connection.
type Sender struct {
	cfg Config
	// dial connects to the server; tests replace it.
	dial func(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error)
}

// New validates cfg and returns a sender; it does not contact the server.
func New(cfg Config) (*Sender, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg, dial: func(ctx context.Context, d *net.Dialer, addr string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}}, nil
}

// Send delivers e: connect, TLS as configured, AUTH when a Username is set,
// then the message, all within Timeout (or ctx's earlier deadline; ctx's
// cancellation ends the conversation too, but for the wait for the answer to
// the message once it was handed over, which Timeout alone bounds: see send;
// the goodbye after an accepted message is said only while ctx lasts, within
// that earlier deadline). Any failure is an error (the
// email may not have been delivered), whose text masks the recipient's
// address; a malformed recipient is an error before any connection is made.
// To a server without SMTPUTF8 (RFC 6531), a recipient or sender whose
// domain only is non-ASCII is sent as its A-label (asciiAddress).
// The error wraps notifications.ErrUndeliverable only when sending again
// cannot help because of the recipient: a malformed recipient (or one with
// a control character in its local part, which no SMTP command carries;
// any other local part that is not a Dot-string goes quoted, mailbox), one with a
// non-ASCII local part or a domain that is not a valid internationalised
// domain name to a server without SMTPUTF8, or a permanent refusal of the recipient
// at RCPT TO (see recipientRefused). Any other 5xx (AUTH, MAIL FROM, a
// relay or policy refusal at RCPT TO, DATA or the end of the message) is
// most likely this sender's configuration, the same for every email, and
// stays a plain error, retried like a 4xx or a connection that failed: a
// misconfigured relay then dead-letters and pages instead of marking every
// email refused.
func (s *Sender) Send(ctx context.Context, e notifications.Email) error {
	d, err := s.draft(e)
	if err != nil {
		return err
	}
	timeout := time.Now().Add(s.cfg.Timeout)
	deadline := timeout
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := s.send(ctx, deadline, timeout, d); err != nil {
		// Servers echo the address as it was sent, which may be its A-label,
		// and its local part quoted (mailbox).
		masked := []string{e.To, d.to.Address}
		if a, err := asciiAddress(d.to); err == nil {
			masked = append(masked, a.Address)
		}
		for _, m := range masked[1:] {
			if q, err := mailbox(m); err == nil && q != m {
				masked = append(masked, q)
			}
		}
		return maskedError{err: err, to: masked}
	}
	return nil
}

// send is one SMTP conversation on its own connection, ended by deadline
// (SMTP_TIMEOUT's end, timeout, or ctx's deadline if earlier) or by ctx's
// cancellation, except the wait for the answer to the message: once the
// whole message is written but for its final dot, the conversation is no
// longer cut by ctx, and only timeout bounds it. The server may have the
// message then; cutting the conversation would not take it back, and the
// redelivery would send a second email. An answer that still does not come
// is an error wrapping notifications.ErrUnanswered; a write of the message
// or its final dot that failed is not (the server does not have it).
func (s *Sender) send(ctx context.Context, deadline, timeout time.Time, d draft) error {
	host, _, _ := net.SplitHostPort(s.cfg.Addr)
	tlsCfg := &tls.Config{ServerName: host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	dialed, err := s.dial(ctx, &net.Dialer{Deadline: deadline}, s.cfg.Addr)
	if err != nil {
		return err
	}
	defer dialed.Close()
	// Every write, in the clear or under TLS, goes through raw: a failed one
	// says the server may not have the whole message.
	raw := &writeTracker{Conn: dialed}
	if err := raw.SetDeadline(deadline); err != nil {
		return err
	}
	// A cancelled ctx ends any read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var conn net.Conn = raw
	if s.cfg.TLS == TLSImplicit {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, host) // reads the greeting
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(helo()); err != nil {
		return err
	}
	if s.cfg.TLS == TLSStartTLS || s.cfg.TLS == TLSOpportunistic {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			if err := c.StartTLS(tlsCfg); err != nil {
				return err
			}
		case s.cfg.TLS == TLSStartTLS:
			return errors.New("the server does not offer STARTTLS (SMTP_TLS=starttls)")
		}
	}
	if s.cfg.Username != "" {
		ok, offered := c.Extension("AUTH")
		if !ok {
			return errors.New("the server does not offer SMTP AUTH")
		}
		a := chooseAuth(offered, s.cfg.Username, s.cfg.Password, s.cfg.TLS == TLSNone)
		if a == nil {
			return fmt.Errorf("the server offers none of the AUTH mechanisms %s (it offers %s)",
				strings.Join(mechanisms, ", "), offered)
		}
		if err := c.Auth(a); err != nil {
			return err
		}
	}
	smtputf8, _ := c.Extension("SMTPUTF8")
	from, to, msg, err := d.compose(smtputf8)
	if err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return recipientRefused(err)
	}
	// A 5xx from here on (DATA, or the answer to the message: a DMARC or
	// sender-authorisation refusal, a message the relay will not take) is
	// not about the recipient: retried.
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if !stop() { // ctx ended before the final dot: the server has no message
		return fmt.Errorf("the message was not finished: %w", context.Cause(ctx))
	}
	if err := raw.SetDeadline(timeout); err != nil {
		return err
	}
	if err := w.Close(); err != nil { // the final dot, then the server's answer to the message
		var te *textproto.Error
		if errors.As(err, &te) {
			return err // answered: a refusal, retried
		}
		if werr := raw.failed.Load(); werr != nil {
			// Close flushes the body and the final dot before it reads the
			// answer, and drops the flush's error: a short message is still
			// all in the buffer, so a write that failed (a reset, a broken
			// pipe) left the server without it. Retried, not recorded sent.
			return fmt.Errorf("the message was not written: %w", *werr)
		}
		return unanswered{err: err}
	}
	// The message was accepted: a failed goodbye changes nothing, so it is
	// said only while ctx lasts, within the send's own deadline again (the
	// wait for the answer alone had SMTP_TIMEOUT's); a server that never
	// answers QUIT must not hold the delivery, and its record of the sent
	// email, past the invocation.
	if ctx.Err() == nil && raw.SetDeadline(deadline) == nil {
		_ = c.Quit()
	}
	return nil
}

// recipientRefused is err, the server's answer to RCPT TO, marked
// notifications.ErrUndeliverable when it is a permanent refusal of this
// recipient (RFC 5321 4.2.1: a 5yz "should not be repeated"), which a
// redelivery would get again. When in doubt it is not: a wrong
// "undeliverable" loses the email for good, a wrong retry only takes it to
// the dead letters, which page. A 5yz is about the recipient only when:
//   - its text does not name the sender or a relay refusal (senderOrRelay:
//     "Sender address rejected", "sender verif…", "relay access denied",
//     "relaying denied", …), whatever its codes: Postfix, with its default
//     smtpd_delay_reject, answers its sender checks at RCPT TO, with 5.1.0,
//     5.1.1 or no code at all as the check has it;
//   - and its RFC 3463 enhanced status code (the "5.x.y" that opens the
//     reply's text or, qmail's way, a "(#5.x.y)" that ends it: "553 sorry,
//     that domain isn't in my list of allowed rcpthosts (#5.7.1)") says so:
//     5.1.x but 5.1.0, 5.1.7 and 5.1.8 (a bad or unknown address; 5.1.0
//     names no address, and Postfix's reject_unlisted_sender sends it; 5.1.7
//     and 5.1.8 are the sender's), 5.2.1 (mailbox disabled), 5.6.7 (a
//     non-ASCII address without SMTPUTF8), and 5.4.1 in a 550 whose text
//     says "Recipient address rejected" (exchangeRejected); a code written
//     with leading zeros, "5.01.7", is read by value (enhancedCode);
//   - or, without an enhanced code ("550 No such user"), its code is 550
//     (mailbox unavailable), 551 (user not local) or 553 (mailbox name not
//     allowed).
//
// Anything else is returned as it is, retried: a 4yz, a broken connection,
// and the 5yz that are the sender's setup and would refuse every email
// alike: "554 5.7.1 Relay access denied" (no SMTP_USERNAME against a relay
// that wants it), "530 5.7.0 Authentication required", the protocol errors
// 500-504 and 555 (5.5.x), and 5.3.x/5.4.x (the relay's system or network)
// but Exchange Online's 5.4.1 above.
func recipientRefused(err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code < 500 || te.Code > 599 {
		return err
	}
	if senderOrRelay(te.Msg) {
		return err
	}
	m := enhancedCode.FindStringSubmatch(te.Msg)
	if m == nil {
		m = trailingEnhancedCode.FindStringSubmatch(te.Msg)
	}
	if m != nil {
		// 5.1.7 and 5.1.8 are the sender's address (RFC 3463): Postfix,
		// with its default smtpd_delay_reject, answers its sender checks at
		// RCPT TO, so a bad SMTP_FROM would otherwise mark every email
		// refused for good; 5.1.0 names no address.
		subject, detail := enhancedNumber(m[1]), enhancedNumber(m[2])
		switch code := subject + "." + detail; {
		case subject == "1" && detail != "0" && detail != "7" && detail != "8", code == "2.1", code == "6.7":
			return undeliverable{err: err}
		case code == "4.1" && te.Code == 550 && exchangeRejected(te.Msg):
			// Exchange Online's unknown recipient; any other 5.4.x, and
			// this one without its text, is the relay's network: retried.
			return undeliverable{err: err}
		}
		return err
	}
	if te.Code == 550 || te.Code == 551 || te.Code == 553 {
		return undeliverable{err: err}
	}
	return err
}

// senderOrRelayWords are the phrases, compared without regard to case, by
// which servers refuse at RCPT TO for the sender's or the relay's sake,
// whatever code they give: Postfix's "Sender address rejected" (its sender
// restrictions, reject_unlisted_sender among them, answered at RCPT TO) and
// "Relay access denied"; Exim's "Sender verify failed" (and other servers'
// "sender verification failed") and "relay not permitted"; Sendmail's
// "Relaying denied"; Exchange's "Unable to relay". A bare "relay" is not
// among them: Postfix refuses an unknown recipient with "User unknown in
// relay recipient table", the recipient's for good.
var senderOrRelayWords = []string{
	"sender address rejected",
	"sender verif",
	"relay access denied",
	"relaying denied",
	"relay not permitted",
	"relaying not permitted",
	"relay not allowed",
	"relaying not allowed",
	"unable to relay",
}

// senderOrRelay reports whether msg, the text of a refusal at RCPT TO, has
// one of senderOrRelayWords.
func senderOrRelay(msg string) bool {
	lower := strings.ToLower(msg)
	for _, w := range senderOrRelayWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// exchangeRejected reports whether msg, the text of a 550 5.4.1 to RCPT TO,
// is Microsoft 365's (Exchange Online's) refusal of a recipient its directory
// does not know: "550 5.4.1 Recipient address rejected: Access denied"
// (Directory-Based Edge Blocking). RFC 3463 has 5.4.1 mean "no answer from
// host", the relay's network, retried like any other 5.4.x; Exchange Online
// gives it for an address it will refuse every time, which retrying would
// only take to the dead letters. The text, compared without regard to case,
// tells the two apart.
func exchangeRejected(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "recipient address rejected")
}

// enhancedCode matches a permanent RFC 3463 enhanced status code at the start
// of a reply's text (net/textproto.Error.Msg), capturing subject and detail,
// each one to three digits. RFC 3463 (section 2) forbids leading zeros ("MUST
// be expressed without leading zero digits"), but a server that writes them
// still means the number: recipientRefused compares subject and detail by
// value (enhancedNumber), so "5.07.1" is the sender's policy (7.1) and
// "5.01.7" the sender's address (1.7), retried like 5.7.1 and 5.1.7, and
// "5.01.1" a bad recipient (1.1). Reading such a code as no code at all made
// the reply's 550 decide: a refusal for good of what is the sender's setup.
var enhancedCode = regexp.MustCompile(`^5\.(\d{1,3})\.(\d{1,3})(?:[ \t\n]|$)`)

// trailingEnhancedCode matches a permanent enhanced status code written at
// the end of a reply's text in parentheses after a '#', as qmail writes it
// ("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
// "550 sorry, no mailbox here by that name. (#5.1.1)"), capturing subject
// and detail like enhancedCode. Until 2026-12-06 it was not read and the
// reply's bare 553 made qmail's relay refusal the recipient's for good.
var trailingEnhancedCode = regexp.MustCompile(`\(#5\.(\d{1,3})\.(\d{1,3})\)[ \t]*$`)

// enhancedNumber is a subject or detail of enhancedCode as its number is
// written without leading zeros ("007" is "7", "000" is "0").
func enhancedNumber(digits string) string {
	if t := strings.TrimLeft(digits, "0"); t != "" {
		return t
	}
	return "0"
}

// mailbox is address (net/mail's Address: the local part unquoted) as RFC
// 5321's Mailbox in MAIL FROM and RCPT TO (4.1.2): the local part as it is
// when it is a Dot-string, else as a Quoted-string with its '"' and '\'
// escaped by a '\'. net/mail unquotes `"john doe"@example.com` to "john
// doe@example.com", which no server takes as it is: a space, '"', '@' or
// any other character outside atext, or an empty atom (a leading, trailing
// or doubled dot), needs the quotes. A local part a Quoted-string cannot
// carry either (a tab, which net/mail accepts within quotes, or another
// control character) is an error. The domain is kept as it is. Characters
// beyond ASCII are kept as they are: only a server that offers SMTPUTF8
// gets them (RFC 6531 allows them in atext and in a Quoted-string; to any
// other, asciiAddress refuses a non-ASCII local part first). The headers'
// form is net/mail's Address.String, which quotes the same local parts.
func mailbox(address string) (string, error) {
	at := strings.LastIndexByte(address, '@')
	local := address[:at]
	if dotString(local) {
		return address, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range local {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r >= ' ' && r <= '~' || r >= utf8.RuneSelf:
			b.WriteRune(r)
		default:
			return "", errors.New("has a local part with a control character, which SMTP cannot carry")
		}
	}
	b.WriteByte('"')
	return b.String() + address[at:], nil
}

// dotString reports whether local is an RFC 5321 Dot-string: atoms of atext
// (RFC 5322's, and any character beyond ASCII, RFC 6531's UTF8-non-ascii)
// joined by single dots.
func dotString(local string) bool {
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return false
		}
		for _, r := range atom {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
				strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r) || r >= utf8.RuneSelf) {
				return false
			}
		}
	}
	return true
}

// asciiAddress is a as SMTP without SMTPUTF8 carries it: a non-ASCII domain
// is converted to its A-label (aLabel), the same domain to every resolver, an
// ASCII local part is kept as it is. Only a non-ASCII local part needs
// SMTPUTF8 (RFC 6531 3.4): it has no ASCII form and is an error, as is a
// domain that is not a valid internationalised domain name. An all-ASCII
// address is returned unchanged.
func asciiAddress(a *mail.Address) (*mail.Address, error) {
	if ascii(a.Address) {
		return a, nil
	}
	local := strings.TrimSuffix(a.Address, "@"+domain(a.Address))
	if !ascii(local) {
		return nil, errors.New("has a non-ASCII local part")
	}
	d, err := aLabel(domain(a.Address))
	if err != nil {
		return nil, err
	}
	return &mail.Address{Name: a.Name, Address: local + "@" + d}, nil
}

// mailDomain converts a mail domain to ASCII: idna.Lookup's IDNA 2008 with
// UTS #46 lookup processing (mapped to lower case and NFC, non-transitional,
// so "ß" is encoded rather than mapped to "ss"; STD3 rules, hyphen, joiner
// and bidi checks), as a resolver or a mail client looks a typed domain up,
// plus the DNS length rules, which Lookup leaves out: an empty label ("a。。de"
// maps to "a..de") or one over 63 octets cannot be a mail domain.
var mailDomain = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true))

// aLabel is the domain name in ASCII: unchanged when it is ASCII already,
// else converted by mailDomain. An error says why the domain is not a valid
// internationalised domain name.
func aLabel(name string) (string, error) {
	if ascii(name) {
		return name, nil
	}
	a, err := mailDomain.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("has a domain that is not a valid internationalised domain name: %w", err)
	}
	if !ascii(a) { // not expected of ToASCII without an error; never sent
		return "", errors.New("has a domain that is not a valid internationalised domain name: no ASCII form")
	}
	if strings.HasSuffix(a, ".") {
		// The DNS's root, which VerifyDNSLength allows ("ü。" maps to
		// "xn--tda."), has no place in an address (RFC 5321's Domain).
		return "", errors.New("has a domain that is not a valid internationalised domain name: it ends with a dot")
	}
	return a, nil
}

// domain is the part of a parsed address after its last "@".
func domain(address string) string {
	return address[strings.LastIndexByte(address, '@')+1:]
}

// ascii reports whether s is all ASCII, which SMTP without SMTPUTF8 carries.
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// undeliverable is an error that is notifications.ErrUndeliverable, with
// err's text.
type undeliverable struct{ err error }

func (u undeliverable) Error() string { return u.err.Error() }

func (u undeliverable) Unwrap() []error { return []error{notifications.ErrUndeliverable, u.err} }

// writeTracker is a connection that remembers its first failed write.
type writeTracker struct {
	net.Conn
	failed atomic.Pointer[error]
}

func (w *writeTracker) Write(b []byte) (int, error) {
	n, err := w.Conn.Write(b)
	if err != nil {
		w.failed.CompareAndSwap(nil, &err)
	}
	return n, err
}

// unanswered is an error after the whole message was handed over (the
// final dot written) without an answer from the server:
// the email may have gone out (notifications.ErrUnanswered).
type unanswered struct{ err error }

func (u unanswered) Error() string { return u.err.Error() }

func (u unanswered) Unwrap() []error { return []error{notifications.ErrUnanswered, u.err} }

// helo is the name the sender gives in EHLO: the machine's host name (as
// go-mail gave it; some servers refuse "localhost"), "localhost" without one.
func helo() string {
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
		return h
	}
	return "localhost"
}

// draft is an email whose addresses are checked, composed (compose) once
// the server has said whether it offers SMTPUTF8, on which the form of the
// addresses depends.
type draft struct {
	e        notifications.Email
	from, to *mail.Address
}

// recipient parses to, an RFC 5322 address or a bare one as the users
// service stores it. A stored address may have a local part net/mail
// refuses unquoted: migration 0011 of the users database composed "a"
// U+037E "b@x.com", registered before 2026-12-07, into "a;b@x.com". Such a
// bare address (one '@', no space, control character (C0, DEL, C1), quote,
// angle bracket or parenthesis, a
// domain net/mail reads) is taken as it is, and goes quoted (mailbox,
// net/mail's Address.String); until 2026-12-08 it was undeliverable.
func recipient(to string) (*mail.Address, error) {
	a, err := mail.ParseAddress(to)
	if err == nil {
		return a, nil
	}
	local, domain, ok := strings.Cut(to, "@")
	if !ok || local == "" || strings.ContainsAny(local, `"<>()\`) || strings.ContainsFunc(to, unicode.IsSpace) ||
		strings.ContainsFunc(to, unicode.IsControl) {
		return nil, err
	}
	if _, derr := mail.ParseAddress("x@" + domain); derr != nil {
		return nil, err
	}
	return &mail.Address{Address: to}, nil
}

// draft checks e's recipient and Message-ID and the configured sender before
// any connection is made.
func (s *Sender) draft(e notifications.Email) (draft, error) {
	rcpt, err := recipient(e.To)
	if err != nil {
		return draft{}, undeliverable{err: errors.New("smtp: invalid recipient address")}
	}
	if _, err := mailbox(rcpt.Address); err != nil {
		return draft{}, undeliverable{err: fmt.Errorf("smtp: the recipient %w", err)}
	}
	sender, err := mail.ParseAddress(s.cfg.From)
	if err != nil {
		return draft{}, fmt.Errorf("smtp: sender address: %w", err)
	}
	if strings.ContainsAny(e.MessageID, "<>\r\n\x00 ") {
		return draft{}, errors.New("smtp: invalid Message-ID")
	}
	return draft{e: e, from: sender, to: rcpt}, nil
}

// compose makes d a plain-text UTF-8 email: the envelope's sender and
// recipient and the message's bytes (CRLF line ends; net/smtp's DATA writer
// stuffs leading dots). The envelope's addresses are RFC 5321 Mailboxes
// (mailbox: a local part that is not a Dot-string quoted), the headers' RFC
// 5322 addresses (net/mail's Address.String, which quotes the same local
// parts). Without smtputf8 (the server does not offer
// SMTPUTF8) both addresses are in their ASCII form (asciiAddress), in the
// envelope and in the From: and To: headers alike: without SMTPUTF8 a header
// must be ASCII (RFC 5322), and an RFC 2047 encoded-word may not stand for
// an address (RFC 2047, section 5), so the A-label is the only form a server
// without SMTPUTF8 can carry intact. A recipient without an ASCII form is
// undeliverable; a sender (SMTP_FROM) without one is the configuration's
// fault, the same for every email, and stays a plain error, retried.
func (d draft) compose(smtputf8 bool) (from, to string, msg []byte, err error) {
	rcpt, sender, e := d.to, d.from, d.e
	if !smtputf8 {
		if rcpt, err = asciiAddress(d.to); err != nil {
			return "", "", nil, undeliverable{err: fmt.Errorf("the server does not offer SMTPUTF8, and the recipient %w", err)}
		}
		if sender, err = asciiAddress(d.from); err != nil {
			return "", "", nil, fmt.Errorf("the server does not offer SMTPUTF8, and the sender address (SMTP_FROM) %w", err)
		}
	}
	var b bytes.Buffer
	b.WriteString("Date: " + e.Date.Format(time.RFC1123Z) + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	if e.MessageID != "" {
		b.WriteString("Message-ID: <" + e.MessageID + ">\r\n")
	}
	b.WriteString("Subject: " + mime.QEncoding.Encode("UTF-8", e.Subject) + "\r\n")
	b.WriteString("From: " + sender.String() + "\r\n")
	b.WriteString("To: " + rcpt.String() + "\r\n")
	b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n")
	b.WriteString("Content-Type: text/plain; charset=UTF-8\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(e.Text)); err != nil {
		return "", "", nil, err
	}
	if err := qp.Close(); err != nil {
		return "", "", nil, err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	if to, err = mailbox(rcpt.Address); err != nil {
		return "", "", nil, undeliverable{err: fmt.Errorf("the recipient %w", err)}
	}
	if from, err = mailbox(sender.Address); err != nil {
		return "", "", nil, fmt.Errorf("the sender address (SMTP_FROM) %w", err)
	}
	return from, to, b.Bytes(), nil
}

// maskedError hides the recipient's address, in each of the forms in to, in
// the text of err (servers echo it in their answers; logs show only masked
// addresses); errors.Is and errors.As still see err.
type maskedError struct {
	err error
	to  []string
}

func (m maskedError) Error() string {
	text := m.err.Error()
	for _, to := range m.to {
		// net/textproto's error shows the server's text Go-quoted (%q): a
		// quoted local part's '"' and '\' come escaped.
		escaped := strconv.Quote(to)
		for _, form := range []string{to, escaped[1 : len(escaped)-1]} {
			re := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(form))
			text = re.ReplaceAllLiteralString(text, notifications.MaskEmail(to))
		}
	}
	return "smtp: " + text
}

func (m maskedError) Unwrap() error { return m.err }
