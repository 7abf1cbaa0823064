// Package smtpmail sends the shop's notification emails through
// github.com/wneessen/go-mail: SMTP AUTH with the provider's credentials, TLS
// (STARTTLS or implicit) with the server's certificate verified, the message
// composed and encoded by the library, and one deadline on the whole
// conversation so a slow or stuck server never holds an event delivery.
package smtpmail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

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
// then the message, all within Timeout (or ctx's earlier deadline). Any
// failure is an error (the email may not have been delivered), whose text
// masks the recipient's address; a malformed recipient is an error before any
// connection is made.
func (s *Sender) Send(ctx context.Context, e notifications.Email) error {
	msg, err := s.message(e)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	client, err := s.client(deadline)
	if err != nil {
		return maskedError{err: err, to: e.To}
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return maskedError{err: err, to: e.To}
	}
	return nil
}

// message composes e as a plain-text UTF-8 email from the configured sender.
func (s *Sender) message(e notifications.Email) (*gomail.Msg, error) {
	if _, err := mail.ParseAddress(e.To); err != nil {
		return nil, errors.New("smtp: invalid recipient address")
	}
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("smtp: sender address: %w", err)
	}
	if err := m.To(e.To); err != nil {
		return nil, errors.New("smtp: invalid recipient address")
	}
	m.Subject(e.Subject)
	m.SetMessageIDWithValue(e.MessageID)
	m.SetDateWithValue(e.Date)
	m.SetBodyString(gomail.TypeTextPlain, e.Text)
	return m, nil
}

// client is a go-mail client for one send that ends by deadline.
func (s *Sender) client(deadline time.Time) (*gomail.Client, error) {
	timeout := time.Until(deadline)
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	host, portText, _ := net.SplitHostPort(s.cfg.Addr)
	port, _ := strconv.Atoi(portText)
	tlsCfg := &tls.Config{ServerName: host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(tlsCfg),
		gomail.WithDialContextFunc(s.dial(deadline, tlsCfg)),
	}
	switch s.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case TLSNone, TLSImplicit: // dial did the TLS of TLSImplicit
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithOpportunisticSMTPAuth(mechanisms(s.cfg.TLS == TLSNone)...),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	if strings.Contains(host, ":") { // go-mail joins host and port itself
		host = "[" + host + "]"
	}
	return gomail.NewClient(host, opts...)
}

// mechanisms are the SASL mechanisms tried, in order, the first the server
// offers is used. go-mail's PLAIN and LOGIN refuse to run outside TLS (except
// to localhost); their -NOENC forms are used only for TLSNone, which
// Validate allows with AUTH only to a loopback host.
func mechanisms(plaintext bool) []gomail.SMTPAuthType {
	if plaintext {
		return []gomail.SMTPAuthType{gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthCramMD5,
			gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc}
	}
	return []gomail.SMTPAuthType{gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthSCRAMSHA1, gomail.SMTPAuthCramMD5,
		gomail.SMTPAuthPlain, gomail.SMTPAuthLogin}
}

// dial connects for one send. go-mail renews the connection's deadline at
// every phase (greeting, TLS and AUTH, the message); the connection caps
// each renewal at deadline, so the whole conversation ends by it. For
// TLSImplicit it also does the TLS handshake (a custom dialer replaces
// go-mail's TLS dialer).
func (s *Sender) dial(deadline time.Time, tlsCfg *tls.Config) gomail.DialContextFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := (&net.Dialer{Deadline: deadline}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn := &cappedConn{Conn: raw, deadline: deadline}
		if err := conn.SetDeadline(deadline); err != nil {
			raw.Close()
			return nil, err
		}
		if s.cfg.TLS != TLSImplicit {
			return conn, nil
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return tc, nil
	}
}

// cappedConn never lets a deadline be set later than its own.
type cappedConn struct {
	net.Conn
	deadline time.Time
}

func (c *cappedConn) cap(t time.Time) time.Time {
	if t.IsZero() || t.After(c.deadline) {
		return c.deadline
	}
	return t
}

func (c *cappedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.cap(t)) }
func (c *cappedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.cap(t)) }
func (c *cappedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.cap(t)) }

// maskedError hides the recipient's address in the text of err (servers echo
// it in their answers and go-mail lists it; logs show only masked
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
