// Package users is the users service's domain: what a user is, which
// registrations and logins are acceptable, and the event a registration emits.
// It does no I/O; the store (usersdb) persists what this package decides.
package users

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/text/unicode/norm"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/formatchar"
)

// Roles a user can have. They are the roles access tokens carry.
const (
	RoleCustomer = auth.RoleCustomer
	RoleAdmin    = auth.RoleAdmin
)

// Limits on registration input, in runes, as the contract's minLength and
// maxLength count them (JSON Schema counts characters), so that a client
// checking the document and the function agree on every value. The email's
// maximum holds for the value as sent, before it is trimmed, for the same
// reason. Only the local part is counted in bytes (RFC 5321's limit), which
// refuses no address the document's maximum would pass for another reason.
const (
	MinPasswordRunes = 8
	MaxPasswordRunes = 128
	MaxNameRunes     = 100
	MaxEmailRunes    = 254
	maxLocalBytes    = 64
	maxLabelBytes    = 63
)

// EventSource is the CloudEvents source of every event the users service emits.
const EventSource = "/shop/users"

// User is a registered account as clients see it. It never carries the
// password hash, which stays inside the store.
type User struct {
	ID        uuid.UUID `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// Registered is the data of a user.registered.v1 event.
type Registered struct {
	UserID uuid.UUID `json:"user_id"`
	Email  string    `json:"email"`
	Name   string    `json:"name"`
}

// RegisteredEvent is the event data announcing u.
func RegisteredEvent(u User) Registered {
	return Registered{UserID: u.ID, Email: u.Email, Name: u.Name}
}

// Registration is a validated, normalised request to create an account. Only
// NewRegistration builds one, so a Registration in hand is always acceptable.
type Registration struct {
	// Email is the address trimmed, lower-cased and composed
	// (ComposeEmail): the form the store keeps.
	Email    string
	Password string
	Name     string
	// Spelled is the email trimmed and lower-cased but not composed: an
	// account registered before emails were composed (2026-12-07) may be
	// stored so, and the store refuses a registration of the spelling such
	// an account holds as well as of Email. Empty: the same as Email.
	Spelled string
}

// NewRegistration validates and normalises the input of a registration: the
// email is trimmed, lower-cased and composed (ComposeEmail), the name
// trimmed; the password is kept exactly as given. Every problem is reported
// at once as fault.Invalid with code invalid_request; the message names
// fields, never values.
func NewRegistration(email, password, name string) (Registration, error) {
	var problems []string
	spelled, normEmail, msg := normalizeEmail(email)
	if msg != "" {
		problems = append(problems, msg)
	}
	if msg := passwordProblem(password); msg != "" {
		problems = append(problems, msg)
	}
	normName, msg := normalizeName(name)
	if msg != "" {
		problems = append(problems, msg)
	}
	if len(problems) > 0 {
		return Registration{}, fault.E(fault.Invalid, fault.CodeInvalidRequest, strings.Join(problems, "; "))
	}
	return Registration{Email: normEmail, Password: password, Name: normName, Spelled: spelled}, nil
}

// ComposeEmail is the form an email is stored and looked up in, once trimmed
// and lower-cased: Unicode's canonical composition (NFC), so that the
// spellings of one address that Unicode declares equivalent ("é" as U+00E9,
// or as "e" followed by the combining U+0301, which some systems and copied
// text produce) are one account, found by either. Until
// 2026-12-07 each spelling was an account of its own, and the account
// registered with one answered invalid_credentials to the other. Some
// characters compose into more than one (U+0958 into U+0915 U+093C), so the
// composed form can be longer than the one sent.
func ComposeEmail(email string) string { return norm.NFC.String(email) }

// normalizeEmail trims and lower-cases email, composes it (ComposeEmail)
// and checks a sane syntax: one @, a non-empty local part of at most 64 bytes
// without spaces or control characters, and a domain of dot-separated labels
// of letters, digits and hyphens with at least one dot (a letter may be
// followed by combining marks that have no composed form, such as the nukta
// U+093C that U+0958 composes into). It returns the address as sent (trimmed
// and lower-cased) and composed, or what is wrong with it.
//
// The characters are checked both as sent and composed (the form stored):
// until 2026-12-07 they were checked as sent only, so "a" U+037E "b", which
// composes into "a;b", was stored with the ";" the syntax forbids, and a
// domain sent decomposed ("u" and the combining U+0308) was refused while
// its composed spelling ("ü") was accepted; checked composed only, "<" +
// U+0338 (composed "≮") would pass. The lengths are counted as sent, as the
// contract's maxLength and pattern count them (bytes once lower-cased), and
// again composed: the 254 characters, the local part's 64 bytes and each
// label's 63 (until 2026-12-08 only the 254 characters were, and 21 U+0958,
// 63 bytes as sent, were stored as a local part of 126). An invisible
// formatting character (formatchar.Any, joiners too) is refused with a
// message of its own.
func normalizeEmail(email string) (spelled, composed, problem string) {
	const invalid = "email must be a valid email address"
	e := strings.ToLower(strings.TrimSpace(email))
	if e == "" {
		return "", "", "email is required"
	}
	if utf8.RuneCountInString(email) > MaxEmailRunes || !utf8.ValidString(e) {
		return "", "", invalid
	}
	// No canonical decomposition holds "@" or ".", so the parts and labels
	// of e are those of its composed form.
	local, domain, ok := strings.Cut(e, "@")
	if !ok || len(local) > maxLocalBytes {
		return "", "", invalid
	}
	for _, l := range strings.Split(domain, ".") {
		if len(l) > maxLabelBytes {
			return "", "", invalid
		}
	}
	if r, ok := formatchar.Any(e); ok {
		return "", "", formatchar.Problem("email", r)
	}
	c := ComposeEmail(e)
	if utf8.RuneCountInString(c) > MaxEmailRunes {
		return "", "", fmt.Sprintf("email must be at most %d characters once composed (Unicode NFC)", MaxEmailRunes)
	}
	// Composing can lengthen a part (U+0958's 3 bytes are 6 composed):
	// the limits hold for the form stored too.
	cLocal, cDomain, _ := strings.Cut(c, "@")
	if len(cLocal) > maxLocalBytes {
		return "", "", fmt.Sprintf("email must have at most %d bytes before the @ once composed (Unicode NFC)", maxLocalBytes)
	}
	for _, l := range strings.Split(cDomain, ".") {
		if len(l) > maxLabelBytes {
			return "", "", fmt.Sprintf("email's domain labels must be at most %d bytes each once composed (Unicode NFC)", maxLabelBytes)
		}
	}
	// Both forms: a character forbidden as sent stays forbidden when
	// composing makes it another ("<" + U+0338 is "≮"), and one that
	// composes into a forbidden one (U+037E into ";") is refused too.
	if !wellFormed(e) || !wellFormed(c) {
		return "", "", invalid
	}
	return e, c, ""
}

// wellFormed reports whether a trimmed and lower-cased email, composed or as
// sent, has normalizeEmail's syntax, but for its lengths.
func wellFormed(email string) bool {
	local, domain, _ := strings.Cut(email, "@")
	if local == "" || strings.Contains(domain, "@") {
		return false
	}
	for _, r := range local {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(`"(),:;<>[\]`, r) {
			return false
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return false
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		lettered := false // the last character was a letter or a mark
		for _, r := range l {
			switch {
			case r >= 'a' && r <= 'z':
				lettered = true
			case r >= '0' && r <= '9' || r == '-':
				lettered = false
			case r > unicode.MaxASCII && unicode.IsLetter(r):
				lettered = true
			case lettered && unicode.Is(unicode.M, r): // marking a letter
			default:
				return false
			}
		}
	}
	return true
}

func passwordProblem(p string) string {
	switch {
	case p == "":
		return "password is required"
	case utf8.RuneCountInString(p) < MinPasswordRunes:
		return fmt.Sprintf("password must be at least %d characters", MinPasswordRunes)
	case utf8.RuneCountInString(p) > MaxPasswordRunes:
		return fmt.Sprintf("password must be at most %d characters", MaxPasswordRunes)
	case commonPasswords[strings.ToLower(p)]:
		return "password is one of the most common passwords; choose another"
	}
	return ""
}

// commonPasswords are the most used passwords long enough to pass the length
// rule (from the public top-password lists), compared without letter case.
// It is a short blocklist, not a breached-password service: that (a
// k-anonymity lookup) is out of scope, see docs/security.md.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Fields(`
		password password1 password12 password123 password1234 password! password1! passw0rd p@ssw0rd p@ssword
		1password mypassword 12345678 123456789 1234567890 0123456789 87654321 987654321 11111111 00000000
		88888888 12341234 12121212 11223344 123123123 123321123 147258369 1q2w3e4r 1q2w3e4r5t 1qaz2wsx
		qazwsxedc zaq12wsx zaq1zaq1 qwertyui qwertyuiop qwerty12 qwerty123 qwe12345 123qweasd asdfghjk
		asdfasdf asdf1234 zxcvbnm1 zxcvbnm123 abc12345 abcd1234 abcdefgh aaaaaaaa iloveyou iloveyou1
		sunshine princess football football1 baseball baseball1 welcome1 welcome123 trustno1 superman
		starwars whatever letmein1 letmein123 admin123 administrator changeme computer internet michelle
		jennifer corvette mercedes mustang1 dragon12 monkey12 shadow12 master12 secret123 hello123
		samsung1 google123 qwerty1234 1234qwer q1w2e3r4 q1w2e3r4t5 shopshop
	`) {
		m[p] = true
	}
	return m
}()

func normalizeName(name string) (string, string) {
	n := strings.TrimSpace(name)
	switch {
	case n == "":
		return "", "name is required"
	case !utf8.ValidString(n):
		return "", "name must be valid UTF-8"
	case utf8.RuneCountInString(name) > MaxNameRunes: // as sent, as the contract counts it
		return "", "name must be at most 100 characters as sent (surrounding spaces count)"
	}
	for _, r := range n {
		if unicode.IsControl(r) {
			return "", "name must not contain control characters"
		}
	}
	// A joiner between letters passes (formatchar.InName): Persian and
	// Indic names need one (until 2026-12-08 it was refused too).
	if r, ok := formatchar.InName(n); ok {
		return "", formatchar.Problem("name", r)
	}
	return n, ""
}

// Login is a login attempt in the form the store checks. Unlike a
// Registration it fails on length only (NewLogin): an email that could not
// have been registered for another reason simply matches no account, so the
// caller answers it exactly like a wrong password.
type Login struct {
	// Email is the address trimmed, lower-cased and composed
	// (ComposeEmail), as registration stores it.
	Email    string
	Password string
	// Spelled is the address trimmed and lower-cased but not composed: an
	// account registered before emails were composed (2026-12-07) is stored
	// so, and is found by it first (usersdb.Store.Authenticate). Empty: the
	// same as Email.
	Spelled string
}

// NewLogin normalises a login attempt. Missing fields, and an email or a
// password longer than any registration accepts (so the answer tells nothing
// about which accounts exist), are fault.Invalid invalid_request, before
// anything reaches the database; everything else is left to the credential
// check.
func NewLogin(email, password string) (Login, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	var problems []string
	if e == "" {
		problems = append(problems, "email is required")
	}
	if utf8.RuneCountInString(email) > MaxEmailRunes {
		problems = append(problems, fmt.Sprintf("email must be at most %d characters", MaxEmailRunes))
	}
	if password == "" {
		problems = append(problems, "password is required")
	}
	if utf8.RuneCountInString(password) > MaxPasswordRunes {
		problems = append(problems, fmt.Sprintf("password must be at most %d characters", MaxPasswordRunes))
	}
	if len(problems) > 0 {
		return Login{}, fault.E(fault.Invalid, fault.CodeInvalidRequest, strings.Join(problems, "; "))
	}
	return Login{Email: ComposeEmail(e), Password: password, Spelled: e}, nil
}

// Plausible reports whether the login could match an account at all (its
// password length is within the registration limits). The store still spends
// the time of a hash check on implausible logins, so timing reveals nothing.
//
// Until 2026-12-05 registration counted bytes (8 to 128): an account may
// hold a password of 8 bytes and fewer than 8 characters (éééé), which must
// still log in. So the minimum is read in bytes, which every password of 8
// characters also meets, and the maximum in characters, which every
// password of at most 128 bytes also meets.
func (l Login) Plausible() bool {
	return len(l.Password) >= minPasswordBytesBefore && utf8.RuneCountInString(l.Password) <= MaxPasswordRunes
}

// minPasswordBytesBefore is registration's minimum before it counted
// characters (Login.Plausible).
const minPasswordBytesBefore = 8

// ErrInvalidCredentials is the one answer to an unknown email and to a wrong
// password alike, so a client cannot probe which emails are registered.
var ErrInvalidCredentials = fault.E(fault.Unauthenticated, fault.CodeInvalidCredentials, "invalid email or password")

// ErrEmailTaken is returned when an account already uses the email (compared
// case-insensitively).
var ErrEmailTaken = fault.E(fault.Conflict, fault.CodeEmailTaken, "an account with this email already exists")
