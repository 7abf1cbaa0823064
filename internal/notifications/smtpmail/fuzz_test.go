package smtpmail

import (
	"net/mail"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

// FuzzASCIIAddress: for any address the sender accepts, the form a server
// without SMTPUTF8 gets is either refused (a non-ASCII local part, or a
// non-ASCII domain idna.Lookup refuses or that the DNS cannot hold: an empty
// label, the root's trailing dot, a label over 63 octets) or all ASCII in the
// envelope and in the header, with the local part as it was and the domain
// Lookup gives; and the header form parses back to the envelope's address.
func FuzzASCIIAddress(f *testing.F) {
	for _, s := range []string{"info@bücherhalle-hamburg.de", "Info@BÜCHERhalle-Hamburg.DE", "bób@bücher.de",
		"Zoë <zoe@straße.de>", `"a b"@bücher.de`, "info@-bücher.de", "info@bücher_halle.de", "info@a\u05d0ü.de",
		"info@bü\u3002de", "bob@example.com", "info@[1.2.3.4]", "info@xn--zz.de", "=?utf-8?q?Zo=C3=AB?= <z@ü.de>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := mail.ParseAddress(s)
		if err != nil {
			return
		}
		i := strings.LastIndexByte(p.Address, '@')
		local, dom := p.Address[:i], p.Address[i+1:]
		// The reference: idna.Lookup, and the DNS's length rules by hand.
		ref, refErr := idna.Lookup.ToASCII(dom)
		refused := !ascii(local) || !ascii(dom) && (refErr != nil || !dnsName(ref))
		a, err := asciiAddress(p)
		if (err != nil) != refused {
			t.Fatalf("asciiAddress(%q) = %v, %v; want refused %v", p.Address, a, err, refused)
		}
		if err != nil {
			return
		}
		if !ascii(a.Address) || !ascii(a.String()) {
			t.Fatalf("asciiAddress(%q) = %q, header %q: not ASCII", p.Address, a.Address, a.String())
		}
		if !strings.HasPrefix(a.Address, local+"@") {
			t.Fatalf("asciiAddress(%q) = %q: the local part changed", p.Address, a.Address)
		}
		if ascii(p.Address) && a.Address != p.Address {
			t.Fatalf("asciiAddress(%q) = %q: an ASCII address changed", p.Address, a.Address)
		}
		if !ascii(dom) && a.Address != local+"@"+ref {
			t.Fatalf("asciiAddress(%q) = %q, want the domain %q", p.Address, a.Address, ref)
		}
		back, err := mail.ParseAddress(a.String())
		if err != nil || back.Address != a.Address {
			t.Fatalf("asciiAddress(%q): header %q parses back as %v, %v", p.Address, a.String(), back, err)
		}
	})
}

// dnsName reports whether an ASCII domain fits the DNS and an address: no
// empty label (nor the root's trailing dot), none over 63 octets, at most 253
// octets in all.
func dnsName(domain string) bool {
	if len(domain) > 253 {
		return false
	}
	for _, l := range strings.Split(domain, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}
