package smtpmail

import (
	"net/mail"
	"strings"
	"testing"
)

// An address goes into MAIL FROM and RCPT TO as it is when its local part is
// an RFC 5321 Dot-string, and with the local part quoted otherwise ('"' and
// '\' escaped); a local part with a control character has no form there.
// Until 2026-12-06 the local part always went as net/mail left it, unquoted.
func TestMailboxQuotesOnlyALocalPartThatIsNotADotString(t *testing.T) {
	for _, tt := range []struct {
		address, want string // want "" for an error
	}{
		{"bob@example.com", "bob@example.com"},
		{"John.Doe@example.com", "John.Doe@example.com"},
		{"o'brien+tag@example.com", "o'brien+tag@example.com"},
		{"!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~@example.com"},
		{"jöhn@bücher.de", "jöhn@bücher.de"},
		{"bob@[192.0.2.1]", "bob@[192.0.2.1]"},
		{"john doe@example.com", `"john doe"@example.com`},
		{`a"b\c@example.com`, `"a\"b\\c"@example.com`},
		{".bob@example.com", `".bob"@example.com`},
		{"bob.@example.com", `"bob."@example.com`},
		{"a..b@example.com", `"a..b"@example.com`},
		{"a@b@example.com", `"a@b"@example.com`},
		{"(x)<y>[z]:;,@example.com", `"(x)<y>[z]:;,"@example.com`},
		{"jöhn doe@bücher.de", `"jöhn doe"@bücher.de`},
		{"a\tb@example.com", ""},
		{"a\x7fb@example.com", ""},
		{"a\x00b@example.com", ""},
	} {
		got, err := mailbox(tt.address)
		if tt.want == "" {
			if err == nil {
				t.Errorf("mailbox(%q) = %q, want an error", tt.address, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("mailbox(%q) = %q, %v; want %q", tt.address, got, err, tt.want)
		}
	}
}

// mailboxSeeds are FuzzMailbox's seeds: each one an address net/mail parses
// (TestEveryFuzzMailboxSeedParses), most with a quoted local part, so that
// each reaches mailbox. Quoted local parts of a space only, an escaped '"'
// only and an escaped '\' only, and an ordinary character quoted, stand
// where until 2026-12-06 `""@example.com` stood, which net/mail refuses
// ("missing '@' or angle-addr": no empty quoted-string) and so seeded
// nothing.
var mailboxSeeds = []string{"bob@example.com", `"john doe"@example.com`, `"a\"b\\c"@example.com`, `".bob"@example.com`,
	`"a..b"@example.com`, `"a@b"@example.com`, "\"a\tb\"@example.com", `"jöhn doe"@bücher.de`, `"john.doe"@example.com`,
	`Zoë <"zoe smith"@straße.de>`, "bob@[192.0.2.1]", `"()<>[]:;,"@example.com`, `" "@example.com`, `"\""@example.com`,
	`"\\"@example.com`, `"\a"@example.com`}

// Every seed of FuzzMailbox parses, so each one reaches mailbox: a seed
// net/mail refuses returns before the property is checked.
func TestEveryFuzzMailboxSeedParses(t *testing.T) {
	for _, s := range mailboxSeeds {
		if _, err := mail.ParseAddress(s); err != nil {
			t.Errorf("seed %q does not parse: %v", s, err)
		}
	}
}

// FuzzMailbox: for any address net/mail parses, mailbox refuses exactly the
// local parts with a control character (which only a tab within quotes
// brings); otherwise its form parses back (net/mail, RFC 5322's addr-spec,
// whose dot-atom and quoted-string are RFC 5321's Dot-string and
// Quoted-string but for that tab) to the same address, and is the address
// unchanged exactly when the address parses unquoted (a dot-atom), quoted
// otherwise.
func FuzzMailbox(f *testing.F) {
	for _, s := range mailboxSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := mail.ParseAddress(s)
		if err != nil {
			return
		}
		local := p.Address[:strings.LastIndexByte(p.Address, '@')]
		control := strings.ContainsFunc(local, func(r rune) bool { return r < ' ' || r == 0x7f })
		m, err := mailbox(p.Address)
		if (err != nil) != control {
			t.Fatalf("mailbox(%q) = %q, %v; want an error %v", p.Address, m, err, control)
		}
		if err != nil {
			return
		}
		back, err := mail.ParseAddress(m)
		if err != nil || back.Address != p.Address {
			t.Fatalf("mailbox(%q) = %q, which parses back as %v, %v", p.Address, m, back, err)
		}
		plain, err := mail.ParseAddress(p.Address)
		dotAtom := err == nil && plain.Address == p.Address
		if quoted := strings.HasPrefix(m, `"`); quoted == dotAtom || !quoted && m != p.Address {
			t.Fatalf("mailbox(%q) = %q; the address parses unquoted: %v", p.Address, m, dotAtom)
		}
	})
}
