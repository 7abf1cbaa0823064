package auth

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/shopfaas/shop/internal/fault"
)

// InternalHeader carries a caller's internal credential between functions,
// from the connectors and from operators.
const InternalHeader = "X-Internal-Token"

// CallersSecret is the verifier secret of every internal function: one line
// per credential, "<caller> <sha256 hex of the full credential>". It holds
// hashes of 256-bit random values only, so reading it lets no one call
// anything. Several lines of one caller are allowed (rotation).
const CallersSecret = "internal-callers"

// CredentialSecret is the secret holding caller's own credential, e.g.
// internal-token-create-order.
func CredentialSecret(caller string) string { return "internal-token-" + caller }

// callerName is what a caller name may be: kebab-case, no dot (the dot ends
// the name inside a credential).
var callerName = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// credentialRandom is the length of a credential's random part: 32 bytes,
// base64url without padding.
const credentialRandom = 43

// NewCredential returns a fresh credential of caller:
// "<caller>.<43 characters of base64url of 32 random bytes>".
func NewCredential(caller string) (string, error) {
	if !callerName.MatchString(caller) {
		return "", fmt.Errorf("bad internal caller name %q", caller)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("internal credential: %w", err)
	}
	return caller + "." + base64.RawURLEncoding.EncodeToString(b), nil
}

// VerifierLine is credential's line of the internal-callers secret:
// "<caller> <sha256 hex>". It refuses a credential that is not of
// NewCredential's form, so a verifier never trusts a guessable value.
func VerifierLine(credential string) (string, error) {
	caller, ok := credentialCaller(credential)
	if !ok {
		return "", fmt.Errorf("not an internal credential of the form <caller>.<%d characters of base64url>", credentialRandom)
	}
	sum := sha256.Sum256([]byte(credential))
	return caller + " " + hex.EncodeToString(sum[:]), nil
}

// credentialCaller is the caller a well-formed credential names.
func credentialCaller(credential string) (string, bool) {
	caller, random, ok := strings.Cut(credential, ".")
	if !ok || !callerName.MatchString(caller) || len(random) != credentialRandom {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(random); err != nil {
		return "", false
	}
	return caller, true
}

// InternalVerifier knows the hashes of the credentials of every internal caller
// (the internal-callers secret). It holds no usable credential.
type InternalVerifier struct {
	hashes map[string][][sha256.Size]byte
}

// ParseInternalVerifier reads the internal-callers secret: one "<caller> <sha256
// hex>" per line; blank lines and lines starting with # are ignored. A
// malformed line is an error naming its line number only.
func ParseInternalVerifier(text string) (*InternalVerifier, error) {
	v := &InternalVerifier{hashes: map[string][][sha256.Size]byte{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		var h [sha256.Size]byte
		if len(f) != 2 || !callerName.MatchString(f[0]) || hex.DecodedLen(len(f[1])) != sha256.Size {
			return nil, fmt.Errorf("%s line %d: want \"<caller> <sha256 hex>\"", CallersSecret, n)
		}
		if _, err := hex.Decode(h[:], []byte(f[1])); err != nil {
			return nil, fmt.Errorf("%s line %d: the hash is not hex", CallersSecret, n)
		}
		v.hashes[f[0]] = append(v.hashes[f[0]], h)
	}
	if len(v.hashes) == 0 {
		return nil, fmt.Errorf("%s lists no caller", CallersSecret)
	}
	return v, nil
}

// Callers are the caller names the verifier knows, sorted.
func (v *InternalVerifier) Callers() []string {
	var out []string
	for c := range v.hashes {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

var (
	errInternal = fault.E(fault.Unauthenticated, fault.CodeUnauthenticated, "internal credential required")
)

// CheckInternal authenticates r's internal caller against v and admits it
// only if accept names it: it returns the caller's name (safe to log; the
// credential never is). A missing, malformed, unknown or wrong credential is
// fault.Unauthenticated (401), whatever v is; a valid credential of a caller
// not in accept is fault.Forbidden (403). Hashes are compared in constant
// time, against every line of the named caller.
func CheckInternal(r *http.Request, v *InternalVerifier, accept []string) (string, error) {
	got := r.Header.Get(InternalHeader)
	caller, ok := credentialCaller(got)
	if !ok || v == nil {
		return "", errInternal
	}
	sum := sha256.Sum256([]byte(got))
	match := 0
	for _, h := range v.hashes[caller] {
		match |= subtle.ConstantTimeCompare(sum[:], h[:])
	}
	if match != 1 {
		return "", errInternal
	}
	if !slices.Contains(accept, caller) {
		return caller, fault.E(fault.Forbidden, fault.CodeForbidden, fmt.Sprintf("internal caller %s may not call this function", caller))
	}
	return caller, nil
}
