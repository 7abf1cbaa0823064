// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) on
// loopback for tests: the stand-in for the third-party mail provider, which
// cannot run here. Like a provider's submission port it requires AUTH (PLAIN
// by default, or the mechanisms Offer lists: LOGIN, CRAM-MD5, SCRAM-SHA-1,
// SCRAM-SHA-256, with a known username and password) before it accepts a
// message, and it
// offers AUTH only over TLS: after STARTTLS, or from the first byte on an
// implicit-TLS port, with a certificate generated for the test (trust it with
// Server.RootCAs). It records every accepted message.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mode is how the server offers TLS.
type Mode int

const (
	// StartTLS offers STARTTLS and AUTH only after it (a submission port,
	// usually 587).
	StartTLS Mode = iota
	// ImplicitTLS speaks TLS from the first byte (usually 465).
	ImplicitTLS
	// Plain offers no TLS and accepts AUTH in plain text: a relay on
	// loopback, or a server a man in the middle has stripped of STARTTLS.
	Plain
)

// Option changes what a server announces.
type Option int

const (
	// SMTPUTF8 announces RFC 6531's SMTPUTF8, which lets a client send
	// non-ASCII addresses; without it the server does not announce it, as
	// many relays do not, and refuses a MAIL FROM that asks for it.
	SMTPUTF8 Option = iota + 1
)

// Username and Password are the credentials the server accepts.
const (
	Username = "shop-mailer"
	Password = "test-smtp-password"
)

// Message is one accepted email.
type Message struct {
	// From is the envelope sender (MAIL FROM).
	From string
	// To are the envelope recipients (RCPT TO).
	To []string
	// Data is the message as received, headers and body.
	Data string
	// SMTPUTF8 is whether MAIL FROM asked for SMTPUTF8.
	SMTPUTF8 bool
}

// Server is a running SMTP server.
type Server struct {
	// Addr is the server's host:port on 127.0.0.1.
	Addr string
	// RootCAs holds the server's certificate (valid for 127.0.0.1, ::1 and
	// localhost): the pool a client trusts to talk to it.
	RootCAs *x509.CertPool

	mu           sync.Mutex
	msgs         []Message
	authFailures int
	mailReply    *reply        // the answer to MAIL FROM; nil accepts
	rcptReply    *reply        // the answer to RCPT TO; nil accepts
	dataReply    *reply        // the answer to the message; nil accepts
	rcpts        int           // RCPT TO commands received
	offer        []string      // the AUTH mechanisms offered, default PLAIN
	used         []string      // the mechanism of each successful AUTH
	helos        []string      // the name each connection\'s first HELO or EHLO gave
	slowReplies  int           // the first replies of each new connection that come late
	scramNoProof bool          // SCRAM logins end with 235 and no server-final message
	answerDelay  time.Duration // how long the server holds its answer to a message it stored
	replyDelay   time.Duration // how late
}

// New starts a server in mode with opts, stopped at the end of the test.
func New(t testing.TB, mode Mode, opts ...Option) *Server {
	t.Helper()
	cert, pool := certificate(t)
	s := &Server{RootCAs: pool}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.helos = append(s.helos, c.Hostname())
		s.mu.Unlock()
		return &session{srv: s}, nil
	}))
	srv.Domain = "smtptest.localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.ErrorLog = log.New(io.Discard, "", 0)
	for _, o := range opts {
		if o == SMTPUTF8 {
			srv.EnableSMTPUTF8 = true
		}
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = slowListener{Listener: raw, srv: s}
	switch mode {
	case StartTLS:
		srv.TLSConfig = tlsCfg
	case ImplicitTLS:
		ln = tls.NewListener(ln, tlsCfg)
	case Plain:
		srv.AllowInsecureAuth = true
	}
	s.Addr = raw.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// RefuseRecipients makes the server answer RCPT TO with 451 4.3.0 (a
// temporary failure), echoing the address as real servers do, until called
// with false.
func (s *Server) RefuseRecipients(refuse bool) {
	reply := ""
	if refuse {
		reply = "451 4.3.0"
	}
	s.RefuseRecipientsWith(reply)
}

// RefuseRecipientsWith makes the server answer RCPT TO with reply: a code
// and, optionally, an RFC 3463 enhanced status code ("550 5.1.1" mailbox
// unavailable, "553 5.6.7" a non-ASCII address without SMTPUTF8, "554 5.7.1"
// relay access denied, "550" with no enhanced code), then, optionally, the
// reply's text ("550 5.4.1 Recipient address rejected: Access denied", as
// Microsoft 365 words it; "550 No such user", a server that sends no
// enhanced code); without a text the reply echoes the address, as real
// servers do. "" accepts recipients again. The reply goes out as written,
// its enhanced code included, so a test can send one RFC 3463 does not
// allow ("550 5.04.001"). Until 2026-12-06 a text without an enhanced code
// ("550 No such user") panicked.
func (s *Server) RefuseRecipientsWith(reply string) {
	r := parseReply(reply) // outside the lock: a typo panics
	s.mu.Lock()
	s.rcptReply = r
	s.mu.Unlock()
}

// RefuseSenderWith makes the server answer MAIL FROM with reply (as
// RefuseRecipientsWith; "" accepts again).
func (s *Server) RefuseSenderWith(reply string) {
	r := parseReply(reply) // outside the lock: a typo panics
	s.mu.Lock()
	s.mailReply = r
	s.mu.Unlock()
}

// RefuseMessageWith makes the server answer the message (after DATA's end)
// with reply, as a DMARC or content policy does ("550 5.7.1"; as
// RefuseRecipientsWith, "" accepts again). go-smtp answers the DATA command
// itself (354) without asking the session, so this is the reply that
// refuses DATA.
func (s *Server) RefuseMessageWith(reply string) {
	r := parseReply(reply) // outside the lock: a typo panics
	s.mu.Lock()
	s.dataReply = r
	s.mu.Unlock()
}

// Rcpts is how many RCPT TO commands the server has received.
func (s *Server) Rcpts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts
}

// reply is a refusal a test asked for, as it goes out: "code enhanced text".
type reply struct {
	code     int
	enhanced string // the enhanced status code as the test wrote it; "" for none
	text     string // "" for the command's default
}

// parseReply reads "code[ x.y.z][ text]" into a reply; nil for "". A word
// after the code that opens with a digit and holds a '.' is the enhanced
// status code; any other word opens the text ("452 4 recipients max"). A malformed reply (a code outside 4xx and 5xx,
// an enhanced code that is not three dot-separated numbers) panics: it is a
// test's typo.
func parseReply(s string) *reply {
	if s == "" {
		return nil
	}
	code, rest, _ := strings.Cut(s, " ")
	n, err := strconv.Atoi(code)
	if err != nil || n < 400 || n > 599 {
		panic(fmt.Sprintf("smtptest: reply %q: want a 4xx or 5xx code", s))
	}
	r := &reply{code: n, text: rest}
	if word, _, _ := strings.Cut(rest, " "); word != "" && word[0] >= '0' && word[0] <= '9' && strings.Contains(word, ".") {
		r.enhanced, r.text, _ = strings.Cut(rest, " ")
		if !enhancedCode.MatchString(r.enhanced) {
			panic(fmt.Sprintf("smtptest: reply %q: want an enhanced code x.y.z", s))
		}
	}
	return r
}

// enhancedCode is the shape of an enhanced status code: three numbers,
// leading zeros allowed so that a test can send what RFC 3463 forbids.
var enhancedCode = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// err is r as go-smtp writes it, with text when r has none: go-smtp writes
// a code and a message, the enhanced code in the message as r has it.
func (r *reply) err(text string) *smtp.SMTPError {
	if r.text != "" {
		text = r.text
	}
	if r.enhanced != "" {
		text = r.enhanced + " " + text
	}
	return &smtp.SMTPError{Code: r.code, EnhancedCode: smtp.NoEnhancedCode, Message: text}
}

// SlowReplies makes the first n writes of every new connection come d late:
// a slow or overloaded server. They are the SMTP replies, the greeting
// first; under ImplicitTLS the TLS handshake's writes come first.
func (s *Server) SlowReplies(n int, d time.Duration) {
	s.mu.Lock()
	s.slowReplies, s.replyDelay = n, d
	s.mu.Unlock()
}

// SlowMessageAnswers makes the server store every message it accepts at
// once, then wait d before answering it (250): a relay that scans content
// before it answers the final dot. 0 answers at once again.
func (s *Server) SlowMessageAnswers(d time.Duration) {
	s.mu.Lock()
	s.answerDelay = d
	s.mu.Unlock()
}

// SkipSCRAMServerFinal makes the server answer a SCRAM client-final message
// with 235 at once, without checking the client's proof and without the
// server-final message (v=, the server's signature): a server that does not
// know the password, which RFC 5802's client must refuse. Until called with
// false.
func (s *Server) SkipSCRAMServerFinal(skip bool) {
	s.mu.Lock()
	s.scramNoProof = skip
	s.mu.Unlock()
}

// Offer sets the AUTH mechanisms the server offers, in this order: any of
// PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1 and SCRAM-SHA-256.
func (s *Server) Offer(mechanisms ...string) {
	s.mu.Lock()
	s.offer = mechanisms
	s.mu.Unlock()
}

// Used lists the mechanism of every successful AUTH so far.
func (s *Server) Used() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.used...)
}

// Helos lists the name each connection introduced itself with (its first
// HELO or EHLO).
func (s *Server) Helos() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.helos...)
}

// Messages returns the accepted messages so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// AuthFailures is how many AUTH attempts were refused so far.
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFailures
}

// errAuthRequired is RFC 4954's answer to a transaction before AUTH.
var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

// session is one SMTP connection.
type session struct {
	srv    *Server
	authed bool
	cur    Message
}

func (ss *session) AuthMechanisms() []string {
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	if len(ss.srv.offer) > 0 {
		return append([]string(nil), ss.srv.offer...)
	}
	return []string{sasl.Plain}
}

// check records the outcome of a login with mechanism.
func (ss *session) check(mechanism string, ok bool) error {
	ss.srv.mu.Lock()
	defer ss.srv.mu.Unlock()
	if !ok {
		ss.srv.authFailures++
		return smtp.ErrAuthFailed
	}
	ss.authed = true
	ss.srv.used = append(ss.srv.used, mechanism)
	return nil
}

func (ss *session) Auth(mechanism string) (sasl.Server, error) {
	switch mechanism {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, username, password string) error {
			return ss.check(mechanism, username == Username && password == Password)
		}), nil
	case sasl.Login:
		return &loginServer{check: func(u, p string) error { return ss.check(mechanism, u == Username && p == Password) }}, nil
	case "CRAM-MD5":
		return &cramServer{check: func(ok bool) error { return ss.check(mechanism, ok) }}, nil
	case "SCRAM-SHA-1", "SCRAM-SHA-256":
		ss.srv.mu.Lock()
		noProof := ss.srv.scramNoProof
		ss.srv.mu.Unlock()
		h := sha256.New
		if mechanism == "SCRAM-SHA-1" {
			h = sha1.New
		}
		return &scramServer{h: h, noProof: noProof, check: func(ok bool) error { return ss.check(mechanism, ok) }}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// loginServer is the server side of LOGIN: it prompts for the username,
// then the password.
type loginServer struct {
	check func(username, password string) error
	step  int
	user  string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if response != nil { // an initial response is the username
			l.user, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(response)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(response))
}

// cramServer is the server side of CRAM-MD5 (RFC 2195).
type cramServer struct {
	check     func(ok bool) error
	challenge string
}

func (c *cramServer) Next(response []byte) ([]byte, bool, error) {
	if c.challenge == "" {
		c.challenge = fmt.Sprintf("<%d.%d@smtptest.localhost>", time.Now().UnixNano(), os.Getpid())
		return []byte(c.challenge), false, nil
	}
	mac := hmac.New(md5.New, []byte(Password))
	mac.Write([]byte(c.challenge))
	return nil, true, c.check(string(response) == Username+" "+hex.EncodeToString(mac.Sum(nil)))
}

// scramServer is the server side of SCRAM-SHA-1 and SCRAM-SHA-256 without
// channel binding (RFC 5802), written from the RFC: it checks the client's
// proof and sends its own signature in the server-final message.
type scramServer struct {
	h               func() hash.Hash
	check           func(ok bool) error
	noProof         bool // answer the client-final message with 235 at once
	step            int
	clientFirstBare string
	serverFirst     string
	nonce           string
	salted, authMsg []byte
}

func (s *scramServer) mac(key []byte, msg string) []byte {
	m := hmac.New(s.h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (s *scramServer) Next(response []byte) ([]byte, bool, error) {
	s.step++
	switch s.step {
	case 1:
		if response == nil {
			s.step = 0
			return []byte{}, false, nil // ask for the client-first message
		}
		bare, ok := strings.CutPrefix(string(response), "n,,")
		user, nonce, ok2 := strings.Cut(strings.TrimPrefix(bare, "n="), ",r=")
		if !ok || !ok2 || user != Username {
			return nil, true, s.check(false)
		}
		salt := []byte("smtptest-salt")
		var err error
		if s.salted, err = pbkdf2.Key(s.h, Password, salt, 4096, s.h().Size()); err != nil {
			return nil, true, err
		}
		s.clientFirstBare, s.nonce = bare, nonce+"server-nonce"
		s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(salt) + ",i=4096"
		return []byte(s.serverFirst), false, nil
	case 2:
		if s.noProof {
			return nil, true, s.check(true)
		}
		withoutProof, proof, ok := strings.Cut(string(response), ",p=")
		if !ok || withoutProof != "c=biws,r="+s.nonce {
			return nil, true, s.check(false)
		}
		s.authMsg = []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
		clientKey := s.mac(s.salted, "Client Key")
		stored := s.h()
		stored.Write(clientKey)
		sig := s.mac(stored.Sum(nil), string(s.authMsg))
		for i := range sig {
			sig[i] ^= clientKey[i]
		}
		if proof != base64.StdEncoding.EncodeToString(sig) {
			return nil, true, s.check(false)
		}
		return []byte("v=" + base64.StdEncoding.EncodeToString(s.mac(s.mac(s.salted, "Server Key"), string(s.authMsg)))), false, nil
	}
	return nil, true, s.check(len(response) == 0)
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if !ss.authed {
		return errAuthRequired
	}
	ss.srv.mu.Lock()
	reply := ss.srv.mailReply
	ss.srv.mu.Unlock()
	if reply != nil {
		return reply.err("sender refused")
	}
	ss.cur = Message{From: from, SMTPUTF8: opts != nil && opts.UTF8}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.authed {
		return errAuthRequired
	}
	ss.srv.mu.Lock()
	ss.srv.rcpts++
	reply := ss.srv.rcptReply
	ss.srv.mu.Unlock()
	if reply != nil {
		return reply.err("<" + to + ">: " + map[bool]string{true: "mailbox unavailable", false: "try again later"}[reply.code >= 500])
	}
	ss.cur.To = append(ss.cur.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	if !ss.authed {
		return errAuthRequired
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.Data = string(b)
	ss.srv.mu.Lock()
	if reply := ss.srv.dataReply; reply != nil {
		ss.srv.mu.Unlock()
		return reply.err("message refused")
	}
	ss.srv.msgs = append(ss.srv.msgs, ss.cur)
	delay := ss.srv.answerDelay
	ss.srv.mu.Unlock()
	time.Sleep(delay)
	return nil
}

func (ss *session) Reset() { ss.cur = Message{} }

func (ss *session) Logout() error { return nil }

// slowListener gives each accepted connection the server's current reply
// delay.
type slowListener struct {
	net.Listener
	srv *Server
}

func (l slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.srv.mu.Lock()
	defer l.srv.mu.Unlock()
	return &slowConn{Conn: c, left: l.srv.slowReplies, delay: l.srv.replyDelay}, nil
}

// slowConn delays its first writes; go-smtp writes each reply at once.
type slowConn struct {
	net.Conn
	left  int
	delay time.Duration
}

func (c *slowConn) Write(b []byte) (int, error) {
	if c.left > 0 {
		c.left--
		time.Sleep(c.delay)
	}
	return c.Conn.Write(b)
}

// certificate makes a self-signed certificate for the loopback names and the
// pool that trusts it.
func certificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
