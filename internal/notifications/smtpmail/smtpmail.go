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
	"time"

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
	// From is the sender address (SMTP_FROM), default DefaultFrom.
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
	if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("SMTP_FROM=%q is not an email address", c.From))
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
}

// New validates cfg and returns a sender; it does not contact the server.
func New(cfg Config) (*Sender, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg}, nil
}

// Send delivers e: connect, TLS as configured, AUTH when a Username is set,
// then the message, all within Timeout (or ctx's earlier deadline; ctx's
// cancellation ends the conversation too). Any failure is an error (the
// email may not have been delivered), whose text masks the recipient's
// address; a malformed recipient is an error before any connection is made.
// The error wraps notifications.ErrUndeliverable only when sending again
// cannot help because of the recipient: a malformed recipient, a non-ASCII
// one to a server without SMTPUTF8, or a permanent refusal of the recipient
// at RCPT TO (see recipientRefused). Any other 5xx (AUTH, MAIL FROM, a
// relay or policy refusal at RCPT TO, DATA or the end of the message) is
// most likely this sender's configuration, the same for every email, and
// stays a plain error, retried like a 4xx or a connection that failed: a
// misconfigured relay then dead-letters and pages instead of marking every
// email refused.
func (s *Sender) Send(ctx context.Context, e notifications.Email) error {
	from, to, msg, err := s.message(e)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.send(ctx, deadline, from, to, msg); err != nil {
		return maskedError{err: err, to: e.To}
	}
	return nil
}

// send is one SMTP conversation on its own connection.
func (s *Sender) send(ctx context.Context, deadline time.Time, from, to string, msg []byte) error {
	host, _, _ := net.SplitHostPort(s.cfg.Addr)
	tlsCfg := &tls.Config{ServerName: host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	raw, err := (&net.Dialer{Deadline: deadline}).DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	if err := raw.SetDeadline(deadline); err != nil {
		return err
	}
	// A cancelled ctx ends any read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn := raw
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
	if ok, _ := c.Extension("SMTPUTF8"); !ok && !ascii(to) {
		// RFC 6531 3.4: such an address needs SMTPUTF8; without it the
		// server could only refuse it, or mangle it.
		return undeliverable{err: errors.New("the server does not offer SMTPUTF8, needed for a non-ASCII address")}
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
	if err := w.Close(); err != nil { // the server's answer to the message
		return err
	}
	_ = c.Quit() // the message was accepted: a failed goodbye changes nothing
	return nil
}

// recipientRefused is err, the server's answer to RCPT TO, marked
// notifications.ErrUndeliverable when it is a permanent refusal of this
// recipient (RFC 5321 4.2.1: a 5yz "should not be repeated"), which a
// redelivery would get again. A 5yz is about the recipient only when its
// RFC 3463 enhanced status code (the "5.x.y" that opens the reply's text)
// says so: 5.1.x but 5.1.7 and 5.1.8 (a bad or unknown address; those two are the sender's), 5.2.1 (mailbox disabled), 5.6.7
// (a non-ASCII address without SMTPUTF8). Without an enhanced code, only 550
// (mailbox unavailable), 551 (user not local) and 553 (mailbox name not
// allowed). Anything else is returned as it is, retried: a 4yz, a broken
// connection, and the 5yz that are the sender's setup and would refuse every
// email alike: "554 5.7.1 Relay access denied" (no SMTP_USERNAME against a
// relay that wants it), "530 5.7.0 Authentication required", the protocol
// errors 500-504 and 555 (5.5.x), and 5.3.x/5.4.x (the relay's system or
// network).
func recipientRefused(err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code < 500 || te.Code > 599 {
		return err
	}
	if m := enhancedCode.FindStringSubmatch(te.Msg); m != nil {
		// 5.1.7 and 5.1.8 are the sender's address (RFC 3463): Postfix,
		// with its default smtpd_delay_reject, answers its sender checks at
		// RCPT TO, so a bad SMTP_FROM would otherwise mark every email
		// refused for good.
		if subject, detail := m[1], m[2]; subject == "1" && detail != "7" && detail != "8" || subject+"."+detail == "2.1" || subject+"."+detail == "6.7" {
			return undeliverable{err: err}
		}
		return err
	}
	if te.Code == 550 || te.Code == 551 || te.Code == 553 {
		return undeliverable{err: err}
	}
	return err
}

// enhancedCode matches a permanent RFC 3463 enhanced status code at the start
// of a reply's text (net/textproto.Error.Msg), capturing subject and detail.
var enhancedCode = regexp.MustCompile(`^5\.(\d{1,3})\.(\d{1,3})(?:[ \t\n]|$)`)

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

// helo is the name the sender gives in EHLO: the machine's host name (as
// go-mail gave it; some servers refuse "localhost"), "localhost" without one.
func helo() string {
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
		return h
	}
	return "localhost"
}

// message composes e as a plain-text UTF-8 email from the configured sender:
// the envelope's sender and recipient and the message's bytes (CRLF line
// ends; net/smtp's DATA writer stuffs leading dots).
func (s *Sender) message(e notifications.Email) (from, to string, msg []byte, err error) {
	rcpt, err := mail.ParseAddress(e.To)
	if err != nil {
		return "", "", nil, undeliverable{err: errors.New("smtp: invalid recipient address")}
	}
	sender, err := mail.ParseAddress(s.cfg.From)
	if err != nil {
		return "", "", nil, fmt.Errorf("smtp: sender address: %w", err)
	}
	if strings.ContainsAny(e.MessageID, "<>\r\n\x00 ") {
		return "", "", nil, errors.New("smtp: invalid Message-ID")
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
	return sender.Address, rcpt.Address, b.Bytes(), nil
}

// maskedError hides the recipient's address in the text of err (servers echo
// it in their answers; logs show only masked
// addresses); errors.Is and errors.As still see err.
type maskedError struct {
	err error
	to  string
}

func (m maskedError) Error() string {
	re := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(m.to))
	return "smtp: " + re.ReplaceAllLiteralString(m.err.Error(), notifications.MaskEmail(m.to))
}

func (m maskedError) Unwrap() error { return m.err }
