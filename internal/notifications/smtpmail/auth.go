package smtpmail

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/smtp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/secure/precis"
)

// mechanisms are the SASL mechanisms the sender logs in with, in order of
// preference: the first the server offers is used.
var mechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"}

// chooseAuth is the first of mechanisms that offered (the EHLO AUTH
// parameter) lists, nil when none. PLAIN and LOGIN send the password itself:
// they refuse to run outside TLS unless plaintext (TLSNone, which Validate
// allows with a username only to a loopback host).
func chooseAuth(offered, username, password string, plaintext bool) smtp.Auth {
	have := strings.Fields(strings.ToUpper(offered))
	for _, m := range mechanisms {
		if !slices.Contains(have, m) {
			continue
		}
		switch m {
		case "SCRAM-SHA-256":
			return &scramAuth{name: m, h: sha256.New, user: username, pass: password}
		case "SCRAM-SHA-1":
			return &scramAuth{name: m, h: sha1.New, user: username, pass: password}
		case "CRAM-MD5":
			return cramAuth{user: username, pass: password}
		default:
			return &clearAuth{login: m == "LOGIN", user: username, pass: password, plaintext: plaintext}
		}
	}
	return nil
}

// errClearAuthNeedsTLS refuses to send a password in plain text.
var errClearAuthNeedsTLS = errors.New("smtp: PLAIN and LOGIN send the password itself: refused without TLS")

// clearAuth is PLAIN (RFC 4616, the initial response) or LOGIN (the
// username and password each as an answer to the server's prompt).
type clearAuth struct {
	login      bool
	user, pass string
	plaintext  bool // allowed without TLS
	step       int
}

func (a *clearAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.plaintext {
		return "", nil, errClearAuthNeedsTLS
	}
	if a.login {
		return "LOGIN", nil, nil
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a *clearAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	if !a.login {
		return nil, errors.New("smtp: unexpected PLAIN challenge")
	}
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("smtp: unexpected LOGIN challenge")
}

// cramAuth is CRAM-MD5 (RFC 2195): the password never leaves the process.
type cramAuth struct{ user, pass string }

func (a cramAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "CRAM-MD5", nil, nil }

func (a cramAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	mac := hmac.New(md5.New, []byte(a.pass))
	mac.Write(fromServer)
	return []byte(a.user + " " + hex.EncodeToString(mac.Sum(nil))), nil
}

// scramAuth is SCRAM-SHA-1 or SCRAM-SHA-256 without channel binding (RFC
// 5802, RFC 7677): the server proves it knows the password too; a wrong
// server signature is an error, and so is a success (235) before the server
// sent its signature (net/smtp then calls Next with more false).
type scramAuth struct {
	name       string
	h          func() hash.Hash
	user, pass string

	nonce, clientFirstBare string
	salted, authMessage    []byte
	verified               bool // the server's signature (v=) was checked
}

func (a *scramAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	user, err := precis.OpaqueString.String(strings.NewReplacer("=", "=3D", ",", "=2C").Replace(a.user))
	if err != nil {
		return "", nil, fmt.Errorf("smtp: SCRAM username: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	a.nonce = base64.StdEncoding.EncodeToString(b)
	a.clientFirstBare = "n=" + user + ",r=" + a.nonce
	return a.name, []byte("n,," + a.clientFirstBare), nil
}

func (a *scramAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		if !a.verified {
			return nil, errors.New("smtp: SCRAM: the server accepted the login without proving it knows the password")
		}
		return nil, nil
	}
	switch {
	case bytes.HasPrefix(fromServer, []byte("r=")) && a.salted == nil:
		return a.clientFinal(string(fromServer))
	case bytes.HasPrefix(fromServer, []byte("v=")) && a.salted != nil:
		key := a.mac(a.salted, "Server Key")
		want := base64.StdEncoding.EncodeToString(a.mac(key, string(a.authMessage)))
		if !hmac.Equal(fromServer[2:], []byte(want)) {
			return nil, errors.New("smtp: SCRAM: the server's signature is wrong")
		}
		a.verified = true
		return []byte{}, nil
	case bytes.HasPrefix(fromServer, []byte("e=")):
		return nil, fmt.Errorf("smtp: SCRAM: the server refused: %s", fromServer[2:])
	}
	return nil, errors.New("smtp: SCRAM: unexpected server message")
}

// clientFinal answers the server-first message (r=nonce,s=salt,i=count).
func (a *scramAuth) clientFinal(serverFirst string) ([]byte, error) {
	parts := strings.Split(serverFirst, ",")
	if len(parts) < 3 || !strings.HasPrefix(parts[1], "s=") || !strings.HasPrefix(parts[2], "i=") {
		return nil, errors.New("smtp: SCRAM: malformed server-first message")
	}
	nonce := parts[0][2:]
	if !strings.HasPrefix(nonce, a.nonce) || len(nonce) == len(a.nonce) {
		return nil, errors.New("smtp: SCRAM: the server's nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(parts[1][2:])
	if err != nil {
		return nil, errors.New("smtp: SCRAM: malformed salt")
	}
	iter, err := strconv.Atoi(parts[2][2:])
	if err != nil || iter < 1 || iter > 1_000_000 {
		return nil, errors.New("smtp: SCRAM: bad iteration count")
	}
	pass, err := precis.OpaqueString.String(a.pass)
	if err != nil {
		return nil, errors.New("smtp: SCRAM: the password cannot be prepared (SASLprep)")
	}
	if a.salted, err = pbkdf2.Key(a.h, pass, salt, iter, a.h().Size()); err != nil {
		return nil, err
	}
	withoutProof := "c=biws,r=" + nonce
	a.authMessage = []byte(a.clientFirstBare + "," + serverFirst + "," + withoutProof)
	clientKey := a.mac(a.salted, "Client Key")
	stored := a.h()
	stored.Write(clientKey)
	sig := a.mac(stored.Sum(nil), string(a.authMessage))
	for i := range sig {
		sig[i] ^= clientKey[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(sig)), nil
}

func (a *scramAuth) mac(key []byte, msg string) []byte {
	m := hmac.New(a.h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
