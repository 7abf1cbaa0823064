// Package smtptest is a minimal SMTP sink on loopback for tests: a stand-in
// for a third-party mail server (postfix's smtp-sink is not installed here).
// It speaks the RFC 5321 subset net/smtp uses (EHLO/HELO, MAIL, RCPT, DATA,
// RSET, NOOP, QUIT) and records every accepted message.
package smtptest

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
)

// Message is one accepted email.
type Message struct {
	From string
	To   []string
	Data string
}

// Sink is a running SMTP sink.
type Sink struct {
	// Addr is the sink's host:port.
	Addr string
	ln   net.Listener
	mu   sync.Mutex
	msgs []Message
	fail bool
}

// New starts a sink closed at the end of the test.
func New(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Addr: ln.Addr().String(), ln: ln}
	go s.serve()
	t.Cleanup(func() { ln.Close() })
	return s
}

// FailNext makes the sink refuse messages with a 451 (temporary failure)
// until called with false.
func (s *Sink) FailNext(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

// Messages returns the accepted messages so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

func (s *Sink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

func (s *Sink) session(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = c.Write([]byte(line + "\r\n")) }
	say("220 smtptest ESMTP")
	var cur Message
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch {
		case verb == "EHLO":
			say("250-smtptest")
			say("250 8BITMIME")
		case verb == "HELO", verb == "NOOP":
			say("250 ok")
		case verb == "RSET":
			cur = Message{}
			say("250 ok")
		case strings.HasPrefix(strings.ToUpper(line), "MAIL FROM:"):
			cur = Message{From: path(line[len("MAIL FROM:"):])}
			say("250 ok")
		case strings.HasPrefix(strings.ToUpper(line), "RCPT TO:"):
			s.mu.Lock()
			fail := s.fail
			s.mu.Unlock()
			if fail {
				say("451 try again later")
				continue
			}
			cur.To = append(cur.To, path(line[len("RCPT TO:"):]))
			say("250 ok")
		case verb == "DATA":
			say("354 end with .")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.Data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			say("250 queued")
		case verb == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// path is the address of a MAIL or RCPT argument, without its parameters.
func path(arg string) string {
	arg = strings.TrimSpace(arg)
	if i := strings.IndexByte(arg, '>'); strings.HasPrefix(arg, "<") && i > 0 {
		return arg[1:i]
	}
	return strings.Fields(arg + " ")[0]
}
