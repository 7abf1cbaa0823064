package auth_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
)

// newCredential is a fresh credential of caller.
func newCredential(t *testing.T, caller string) string {
	t.Helper()
	c, err := auth.NewCredential(caller)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// verifierOf is the internal-callers text of credentials and its verifier.
func verifierOf(t *testing.T, credentials ...string) (string, *auth.InternalVerifier) {
	t.Helper()
	var b strings.Builder
	for _, c := range credentials {
		line, err := auth.VerifierLine(c)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	v, err := auth.ParseInternalVerifier(b.String())
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), v
}

// check runs CheckInternal with header (none when empty).
func check(v *auth.InternalVerifier, header string, accept ...string) (string, error) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	if header != "" {
		r.Header.Set(auth.InternalHeader, header)
	}
	return auth.CheckInternal(r, v, accept)
}

// Each internal function admits only the callers it accepts: the right
// caller passes and is named, another valid caller is 403, and a missing,
// unknown, tampered or malformed credential is 401.
func TestCheckInternalAdmitsOnlyAcceptedCallers(t *testing.T) {
	order := newCredential(t, "create-order")
	connector := newCredential(t, "rabbitmq-connector")
	_, v := verifierOf(t, order, connector)
	stranger := newCredential(t, "create-order") // right form and name, not in the verifier
	tampered := order[:len(order)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(order, "A")]
	renamed := "rabbitmq-connector" + order[strings.Index(order, "."):]
	tests := []struct {
		name, header, caller string
		want                 fault.Kind // 0: accepted
	}{
		{"accepted caller", order, "create-order", 0},
		{"another valid caller", connector, "rabbitmq-connector", fault.Forbidden},
		{"empty", "", "", fault.Unauthenticated},
		{"unknown credential of a known caller", stranger, "", fault.Unauthenticated},
		{"tampered", tampered, "", fault.Unauthenticated},
		{"random part under another caller's name", renamed, "", fault.Unauthenticated},
		{"unknown caller", newCredential(t, "nobody"), "", fault.Unauthenticated},
		{"no caller name", order[strings.Index(order, ".")+1:], "", fault.Unauthenticated},
		{"the hash from the verifier file", strings.Fields(mustLine(t, order))[1], "", fault.Unauthenticated},
		{"the old shared token shape", "s3cret", "", fault.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller, err := check(v, tt.header, "create-order", "recover-orders")
			if tt.want == 0 {
				if err != nil || caller != tt.caller {
					t.Fatalf("caller %q err %v, want %s admitted", caller, err, tt.caller)
				}
				return
			}
			if err == nil || fault.KindOf(err) != tt.want {
				t.Fatalf("err %v, want kind %v", err, tt.want)
			}
			if caller != tt.caller {
				t.Errorf("caller %q, want %q", caller, tt.caller)
			}
			if strings.Contains(err.Error(), tt.header) && tt.header != "" {
				t.Errorf("error %q echoes the credential", err)
			}
		})
	}
	if _, err := check(nil, order, "create-order"); fault.KindOf(err) != fault.Unauthenticated {
		t.Errorf("no verifier: %v, want 401", err)
	}
}

func mustLine(t *testing.T, credential string) string {
	t.Helper()
	l, err := auth.VerifierLine(credential)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Rotation: two lines for one caller admit both credentials; dropping the
// old line retires the old credential only.
func TestCheckInternalRotation(t *testing.T) {
	old, next := newCredential(t, "scheduler"), newCredential(t, "scheduler")
	_, both := verifierOf(t, old, next)
	for _, c := range []string{old, next} {
		if _, err := check(both, c, "scheduler"); err != nil {
			t.Errorf("during rotation: %v", err)
		}
	}
	_, after := verifierOf(t, next)
	if _, err := check(after, old, "scheduler"); fault.KindOf(err) != fault.Unauthenticated {
		t.Errorf("retired credential: %v, want 401", err)
	}
	if _, err := check(after, next, "scheduler"); err != nil {
		t.Errorf("new credential: %v", err)
	}
}

// The verifier file holds only names and SHA-256 hashes: no line, field or
// hash of it is accepted as a credential, and it does not contain the
// credentials' random parts.
func TestVerifierFileHoldsNoUsableCredential(t *testing.T) {
	creds := []string{newCredential(t, "create-order"), newCredential(t, "operator")}
	text, v := verifierOf(t, creds...)
	for _, c := range creds {
		if strings.Contains(text, c[strings.Index(c, ".")+1:]) {
			t.Errorf("verifier file holds the random part of %s's credential", c[:strings.Index(c, ".")])
		}
		sum := sha256.Sum256([]byte(c))
		if !strings.Contains(text, hex.EncodeToString(sum[:])) {
			t.Errorf("verifier file lacks the hash of %s", c[:strings.Index(c, ".")])
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		for _, try := range []string{line, f[1], f[0] + "." + f[1], f[0] + "." + f[1][:43]} {
			if _, err := check(v, try, "create-order", "operator"); fault.KindOf(err) != fault.Unauthenticated {
				t.Errorf("verifier content %q accepted as a credential: %v", try, err)
			}
		}
	}
}

// ParseInternalVerifier refuses malformed files without echoing their content, and
// VerifierLine refuses values that are not generated credentials.
func TestParseVerifierRefusesMalformed(t *testing.T) {
	good := mustLine(t, newCredential(t, "operator"))
	for _, text := range []string{"", "# only a comment\n", "operator\n", "operator nothex\n", good + " extra\n",
		"Operator " + strings.Fields(good)[1] + "\n", "operator " + strings.Fields(good)[1][:62] + "\n"} {
		if _, err := auth.ParseInternalVerifier(text); err == nil {
			t.Errorf("ParseInternalVerifier(%q) succeeded", text)
		} else if f := strings.Fields(good); strings.Contains(err.Error(), f[1]) {
			t.Errorf("error echoes the hash: %v", err)
		}
	}
	if _, err := auth.ParseInternalVerifier("# rotated 2026-11\n\n" + good + "\n"); err != nil {
		t.Errorf("comments and blank lines: %v", err)
	}
	for _, bad := range []string{"", "s3cret", "operator.short", "Operator." + strings.Repeat("a", 43)} {
		if _, err := auth.VerifierLine(bad); err == nil {
			t.Errorf("VerifierLine(%q) succeeded", bad)
		}
	}
	if _, err := auth.NewCredential("Bad.Name"); err == nil {
		t.Error("NewCredential accepted a name with a dot")
	}
}
