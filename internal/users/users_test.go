package users

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/fault"
)

// email254 is a valid address of 254 characters, the most the contract and
// the code take.
var email254 = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 61) + "." + strings.Repeat("c", 61) + "." + strings.Repeat("d", 61) + ".com"

func TestNewRegistrationNormalises(t *testing.T) {
	got, err := NewRegistration("  Alice.Smith+shop@Example.COM \t", "correct horse", "  Alice Smith ")
	if err != nil {
		t.Fatal(err)
	}
	want := Registration{Email: "alice.smith+shop@example.com", Password: "correct horse", Name: "Alice Smith",
		Spelled: "alice.smith+shop@example.com"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("registration (-want +got):\n%s", diff)
	}
	// Composed (NFC) once lower-cased: "E" and the combining U+0301 are "é".
	got, err = NewRegistration("Jose\u0301@Example.com", "correct horse", "José")
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "jos\u00e9@example.com" || got.Spelled != "jose\u0301@example.com" {
		t.Fatalf("email %+q spelled %+q, want %+q spelled %+q", got.Email, got.Spelled, "jos\u00e9@example.com", "jose\u0301@example.com")
	}
	// A domain too, whichever spelling it is sent in: "u" and the
	// combining U+0308 are "ü", a letter.
	// Login looks up the form registration stores.
	for _, sent := range []string{"ann@bu\u0308cher.de", "Ann@B\u00fccher.de"} {
		got, err = NewRegistration(sent, "correct horse", "Ann")
		if err != nil || got.Email != "ann@b\u00fccher.de" {
			t.Fatalf("%+q: email %+q, %v; want %+q", sent, got.Email, err, "ann@b\u00fccher.de")
		}
		if l, err := NewLogin(sent, "correct horse"); err != nil || l.Email != got.Email {
			t.Fatalf("login as %+q: email %+q, %v; want %+q", sent, l.Email, err, got.Email)
		}
	}
	// A mark that has no composed form may follow a letter of a label (the
	// nukta U+093C, which U+0958 composes into, or a Devanagari vowel
	// sign), not start a label nor follow a digit or a hyphen.
	for email, ok := range map[string]bool{
		"a@\u0958.co": true, "a@\u0939\u093f\u0928\u094d\u0926\u0940.in": true, "a@q\u0308.de": true,
		"a@\u0301b.com": false, "a@b1\u0301.com": false, "a@b-\u0301c.com": false,
	} {
		if _, err := NewRegistration(email, "correct horse", "Ann"); (err == nil) != ok {
			t.Errorf("%+q: err = %v, want accepted %v", email, err, ok)
		}
	}
}

// U+0958 composes into two characters (it is excluded from composition), so
// an address of 254 characters as sent can be longer once composed, and is
// refused rather than left to the database's length check (a 503).
func TestAnEmailLongerThanTheMaximumOnceComposedIsRefused(t *testing.T) {
	email := "a@" + strings.Repeat("\u0958.", 125) + "co"
	if n := utf8.RuneCountInString(email); n != MaxEmailRunes {
		t.Fatalf("the address has %d characters, want %d", n, MaxEmailRunes)
	}
	if _, err := NewRegistration(email, "correct horse", "A"); !fault.Is(err, fault.Invalid, "invalid_request") {
		t.Fatalf("err = %v, want invalid_request", err)
	}
	if _, err := NewRegistration("a@"+strings.Repeat("\u0958.", 60)+"co", "correct horse", "A"); err != nil {
		t.Fatalf("an address of %d characters once composed: %v", 2+60*3+2, err)
	}
}

// U+0958 composes into two characters of three bytes each, so a local part
// or a label within its bytes as sent can be twice as long once composed,
// the form stored: the limits hold for both forms, as the 254 characters do.
func TestTheLocalPartAndLabelsAreCountedOnceComposedToo(t *testing.T) {
	for _, email := range []string{
		strings.Repeat("\u0958", 11) + "@example.com",        // 33 bytes as sent, 66 composed
		strings.Repeat("\u0958", 21) + "@example.com",        // 63 bytes as sent, 126 composed
		"a@" + strings.Repeat("\u0958", 11) + ".example.com", // a label of 33 bytes as sent, 66 composed
	} {
		if _, err := NewRegistration(email, "correct horse", "A"); !fault.Is(err, fault.Invalid, "invalid_request") {
			t.Errorf("%+q: err = %v, want invalid_request", email, err)
		}
	}
	for _, email := range []string{
		strings.Repeat("\u0958", 10) + "@example.com", // 60 bytes composed
		"a@" + strings.Repeat("\u0958", 10) + ".example.com",
	} {
		if _, err := NewRegistration(email, "correct horse", "A"); err != nil {
			t.Errorf("%+q: %v, want accepted", email, err)
		}
	}
	// Composing can shorten too: 32 "e" + U+0301 are 96 bytes as sent,
	// refused as the contract's pattern counts them, though 64 composed.
	if _, err := NewRegistration(strings.Repeat("e\u0301", 32)+"@example.com", "correct horse", "A"); !fault.Is(err, fault.Invalid, "invalid_request") {
		t.Errorf("a local part of 96 bytes as sent, 64 composed: err = %v, want invalid_request", err)
	}
}

func TestNewRegistrationRejects(t *testing.T) {
	ok := struct{ email, password, name string }{"a@example.com", "hunter-2-x", "A"}
	tests := []struct {
		name                  string
		email, password, user string
		wantMsg               string
	}{
		{"missing email", "", ok.password, ok.name, "email is required"},
		{"blank email", "   ", ok.password, ok.name, "email is required"},
		{"no at", "alice.example.com", ok.password, ok.name, "valid email"},
		{"two ats", "a@b@example.com", ok.password, ok.name, "valid email"},
		{"no local", "@example.com", ok.password, ok.name, "valid email"},
		{"no dot in domain", "a@localhost", ok.password, ok.name, "valid email"},
		{"space inside", "a b@example.com", ok.password, ok.name, "valid email"},
		{"display name", "Alice <a@example.com>", ok.password, ok.name, "valid email"},
		{"empty label", "a@example..com", ok.password, ok.name, "valid email"},
		{"hyphen label", "a@-example.com", ok.password, ok.name, "valid email"},
		{"dot local", ".a@example.com", ok.password, ok.name, "valid email"},
		{"too long", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".com", ok.password, ok.name, "valid email"},
		{"local too long", strings.Repeat("a", 65) + "@example.com", ok.password, ok.name, "valid email"},
		// The syntax holds for the address composed, as it is stored: the
		// Greek question mark U+037E composes into ";".
		{"forbidden once composed", "a\u037eb@example.com", ok.password, ok.name, "valid email"},
		// "<" + U+0338 composes into "≮": the character sent is forbidden
		// even though the composed one is not.
		{"forbidden as sent", "a<\u0338b@example.com", ok.password, ok.name, "valid email"},
		{"forbidden as sent in the domain", "ann@exa>\u0338mple.com", ok.password, ok.name, "valid email"},
		{"label starting with a combining mark", "a@\u0301b.com", ok.password, ok.name, "valid email"},
		// Invisible formatting characters (Unicode category Cf) make two
		// addresses or names that look the same: zero-width ones, the bidi
		// controls that reorder what is shown, the byte order mark.
		{"zero-width space in the local part", "ad\u200bmin@example.com", ok.password, ok.name, "email must not contain the invisible formatting character U+200B"},
		{"zero-width joiner in the local part", "a\u200db@example.com", ok.password, ok.name, "U+200D"},
		{"right-to-left override in the local part", "a\u202eb@example.com", ok.password, ok.name, "U+202E"},
		{"bidi isolate in the local part", "\u2066ab\u2069@example.com", ok.password, ok.name, "U+2066"},
		{"byte order mark in the local part", "\ufeffab@example.com", ok.password, ok.name, "U+FEFF"},
		{"tag character in the local part", "a\U000e0041b@example.com", ok.password, ok.name, "U+E0041"},
		{"zero-width space in the domain", "ab@exa\u200bmple.com", ok.password, ok.name, "U+200B"},
		{"zero-width space in the name", ok.email, ok.password, "Ali\u200bce", "name must not contain the invisible formatting character U+200B"},
		{"right-to-left override in the name", ok.email, ok.password, "\u202eecilA", "U+202E"},
		{"bidi isolate in the name", ok.email, ok.password, "A\u2067B\u2069", "U+2067"},
		{"byte order mark in the name", ok.email, ok.password, "\ufeffAlice", "U+FEFF"},
		{"missing password", ok.email, "", ok.name, "password is required"},
		{"short password", ok.email, "1234567", ok.name, "at least 8"},
		{"common password", ok.email, "password", ok.name, "most common passwords"},
		{"common password in another case", ok.email, "PassWord123", ok.name, "most common passwords"},
		{"common digits", ok.email, "12345678", ok.name, "most common passwords"},
		{"long password", ok.email, strings.Repeat("p", 129), ok.name, "at most 128"},
		// Lengths are characters, as the contract's minLength and maxLength
		// count them: 4 of them are too few however many bytes they take.
		{"short non-ASCII password", ok.email, "éééé", ok.name, "at least 8"},
		{"long non-ASCII password", ok.email, strings.Repeat("é", 129), ok.name, "at most 128"},
		// The maximum holds for the email as sent, as the contract's does,
		// though the address is stored trimmed.
		{"too long with spaces", "  " + email254 + "  ", ok.password, ok.name, "valid email"},
		{"missing name", ok.email, ok.password, "", "name is required"},
		{"blank name", ok.email, ok.password, " \t ", "name is required"},
		{"long name", ok.email, ok.password, strings.Repeat("é", 101), "at most 100"},
		// So does the name's, padding included (the contract's maxLength).
		{"long name with spaces", ok.email, ok.password, " " + strings.Repeat("é", 100), "at most 100"},
		{"control in name", ok.email, ok.password, "A\x00B", "control"},
		{"everything", "", "", "", "email is required; password is required; name is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRegistration(tc.email, tc.password, tc.user)
			if !fault.Is(err, fault.Invalid, "invalid_request") {
				t.Fatalf("err = %v, want invalid_request", err)
			}
			if msg := err.(*fault.Error).Message; !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("message %q does not mention %q", msg, tc.wantMsg)
			}
			if tc.email != "" && strings.Contains(err.Error(), tc.email) {
				t.Fatalf("error %q echoes the email", err)
			}
		})
	}
}

func TestNewRegistrationBoundaries(t *testing.T) {
	for _, tc := range []struct{ email, password, name string }{
		{"a@b.co", strings.Repeat("p", 8), "A"},
		{"a@b.co", strings.Repeat("p", 128), strings.Repeat("é", 100)},
		{"a@b.co", "hunter-2-x", " " + strings.Repeat("é", 99)},
		{"a@b.co", strings.Repeat("é", 100), "A"}, // 200 bytes, 100 characters
		{email254, "hunter-2-x", "A"},
		{strings.Repeat("a", 64) + "@example.com", "hunter-2-x", "Zoë"},
		{"o'brien@münchen.de", "hunter-2-x", "O'Brien"},
	} {
		if _, err := NewRegistration(tc.email, tc.password, tc.name); err != nil {
			t.Errorf("NewRegistration(%q, len %d, %q) = %v, want ok", tc.email, len(tc.password), tc.name, err)
		}
	}
}

func TestNewLogin(t *testing.T) {
	got, err := NewLogin(" Bob@Example.com ", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Login{Email: "bob@example.com", Password: "pw", Spelled: "bob@example.com"}, got); diff != "" {
		t.Fatalf("login (-want +got):\n%s", diff)
	}
	if got.Plausible() {
		t.Fatal("a 2-byte password cannot match any account")
	}
	if _, err := NewLogin("", ""); !fault.Is(err, fault.Invalid, "invalid_request") {
		t.Fatalf("empty login: err = %v, want invalid_request", err)
	}
	// Lengths are characters of the values as sent, as registration counts
	// them: a 100-é password could be an account's, a 129-é one could not.
	if l, err := NewLogin("a@b.co", strings.Repeat("é", 100)); err != nil || !l.Plausible() {
		t.Errorf("a 100-character password of 200 bytes: %+v, %v, want plausible", l, err)
	}
	// An account registered when the minimum was 8 bytes still logs in.
	if l, err := NewLogin("a@b.co", "éééé"); err != nil || !l.Plausible() {
		t.Errorf("a password of 8 bytes and 4 characters: %+v, %v, want plausible", l, err)
	}
	if _, err := NewLogin("a@b.co", strings.Repeat("é", 129)); !fault.Is(err, fault.Invalid, "invalid_request") {
		t.Errorf("a 129-character password: err = %v, want invalid_request", err)
	}
	if _, err := NewLogin(" "+strings.Repeat("a", 250)+".co ", "hunter-2-x"); !fault.Is(err, fault.Invalid, "invalid_request") {
		t.Errorf("a 255-character email as sent: err = %v, want invalid_request", err)
	}
}

func TestRegisteredEvent(t *testing.T) {
	u := User{Email: "a@example.com", Name: "A", Role: RoleCustomer}
	want := Registered{UserID: u.ID, Email: u.Email, Name: u.Name}
	if diff := cmp.Diff(want, RegisteredEvent(u)); diff != "" {
		t.Fatal(diff)
	}
}

// Persian and Indic names need a zero-width non-joiner (U+200C) or joiner
// (U+200D) where it joins (formatchar.InName): a name holds one there,
// never between Latin letters, first, last, doubled or beside a space; an
// email holds neither, anywhere.
func TestANameHoldsAJoinerOnlyWhereItJoins(t *testing.T) {
	for _, name := range []string{"می\u200cخواهم", "Ali \u0646\u0627\u0645\u200c\u0647\u0627", "\u0915\u094d\u200d\u0937\u093e"} {
		r, err := NewRegistration("a@example.com", "correct horse", name)
		if err != nil {
			t.Errorf("name %+q: %v, want accepted", name, err)
		} else if r.Name != name {
			t.Errorf("name %+q stored as %+q", name, r.Name)
		}
	}
	for _, name := range []string{"\u200c", "\u200cAli", "Ali\u200d", "Ali\u200d ", "ش\u200c\u200cب", "A \u200cB", "A\u200c1", "Ad\u200dmin", "A\u200cnn"} {
		if _, err := NewRegistration("a@example.com", "correct horse", name); !fault.Is(err, fault.Invalid, "invalid_request") || !strings.Contains(err.(*fault.Error).Message, "name must not contain the invisible formatting character U+200") {
			t.Errorf("name %+q: err = %v, want invalid_request naming the joiner", name, err)
		}
	}
	if _, err := NewRegistration("ab\u200ccd@example.com", "correct horse", "A"); !fault.Is(err, fault.Invalid, "invalid_request") || !strings.Contains(err.(*fault.Error).Message, "U+200C") {
		t.Errorf("a non-joiner between letters of an email: err = %v, want invalid_request naming U+200C", err)
	}
}
