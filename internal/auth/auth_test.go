package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
)

const key = "0123456789abcdef0123456789abcdef" // 32 bytes

func newTokens(t *testing.T, now time.Time) *auth.Tokens {
	t.Helper()
	tk, err := auth.NewTokens(key, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tk.WithClock(func() time.Time { return now })
}

// sign builds a token with arbitrary claims, method and key.
func sign(t *testing.T, method jwt.SigningMethod, signKey any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewTokensRefusesShortKey(t *testing.T) {
	if _, err := auth.NewTokens(strings.Repeat("k", auth.MinKeyBytes-1), time.Minute); err == nil {
		t.Error("a 31-byte key was accepted")
	}
}

func TestNewTokensRefusesLifetimeAboveTheCap(t *testing.T) {
	if _, err := auth.NewTokens(key, auth.MaxLifetime+time.Second); err == nil {
		t.Error("a lifetime above MaxLifetime was accepted")
	}
	if _, err := auth.NewTokens(key, auth.MaxLifetime); err != nil {
		t.Errorf("a lifetime of exactly MaxLifetime: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	now := time.Now()
	tk := newTokens(t, now)
	user := uuid.Must(uuid.NewV7())
	for _, role := range []string{auth.RoleCustomer, auth.RoleAdmin} {
		s, err := tk.Issue(user, role)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tk.Verify(s)
		if err != nil {
			t.Fatalf("Verify(%s): %v", role, err)
		}
		if diff := cmp.Diff(auth.Identity{UserID: user, Role: role}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
	if tk.TTL() != 15*time.Minute {
		t.Errorf("TTL = %v", tk.TTL())
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Now()
	tk := newTokens(t, now)
	user := uuid.Must(uuid.NewV7()).String()
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": auth.Issuer, "aud": []string{auth.Audience}, "sub": user, "role": auth.RoleCustomer,
			"iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	issued, err := tk.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(issued, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	// Swap the payload for one claiming admin, keeping the customer's signature.
	adminPayload := strings.Split(sign(t, jwt.SigningMethodHS256, []byte(key), with("role", auth.RoleAdmin)), ".")[1]
	tampered := parts[0] + "." + adminPayload + "." + parts[2]

	tests := []struct {
		name  string
		token string
	}{
		{"control: valid claims pass", ""},
		{"expired", sign(t, jwt.SigningMethodHS256, []byte(key), with("exp", now.Add(-time.Minute).Unix()))},
		{"no expiry", sign(t, jwt.SigningMethodHS256, []byte(key), with("exp", nil))},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, []byte(key), with("nbf", now.Add(time.Minute).Unix()))},
		{"lives ten years", sign(t, jwt.SigningMethodHS256, []byte(key), with("exp", now.AddDate(10, 0, 0).Unix()))},
		{"lives just over the cap", sign(t, jwt.SigningMethodHS256, []byte(key), with("exp", now.Add(auth.MaxLifetime+time.Second).Unix()))},
		{"no issued-at", sign(t, jwt.SigningMethodHS256, []byte(key), with("iat", nil))},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, []byte(key), with("iat", now.Add(time.Minute).Unix()))},
		{"forged signature", forged},
		{"payload swapped under a valid signature", tampered},
		{"signed with another key", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("z", 32)), valid())},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid())},
		{"HS512 is not HS256", sign(t, jwt.SigningMethodHS512, []byte(key), valid())},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, []byte(key), with("iss", "someone-else"))},
		{"no issuer", sign(t, jwt.SigningMethodHS256, []byte(key), with("iss", nil))},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, []byte(key), with("aud", []string{"other-api"}))},
		{"unknown role", sign(t, jwt.SigningMethodHS256, []byte(key), with("role", "superuser"))},
		{"no role", sign(t, jwt.SigningMethodHS256, []byte(key), with("role", nil))},
		{"subject not a uuid", sign(t, jwt.SigningMethodHS256, []byte(key), with("sub", "alice"))},
		{"garbage", "not.a.token"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "control: valid claims pass" {
				if _, err := tk.Verify(sign(t, jwt.SigningMethodHS256, []byte(key), valid())); err != nil {
					t.Fatalf("the valid control token failed: %v", err)
				}
				return
			}
			id, err := tk.Verify(tt.token)
			if !fault.Is(err, fault.Unauthenticated, "unauthenticated") {
				t.Fatalf("Verify = %+v, %v; want unauthenticated", id, err)
			}
			if id != (auth.Identity{}) {
				t.Errorf("a refused token still yields identity %+v", id)
			}
		})
	}
}

func TestExpiresWithTheClock(t *testing.T) {
	start := time.Now()
	s, err := newTokens(t, start).Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newTokens(t, start.Add(14*time.Minute)).Verify(s); err != nil {
		t.Errorf("valid before expiry: %v", err)
	}
	if _, err := newTokens(t, start.Add(16*time.Minute)).Verify(s); err == nil {
		t.Error("accepted after expiry")
	}
}

func TestFromRequestAndRequireAdmin(t *testing.T) {
	tk := newTokens(t, time.Now())
	customer, _ := tk.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	admin, _ := tk.Issue(uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	tests := []struct {
		name      string
		header    string
		wantUser  fault.Kind // -1: accepted
		wantAdmin fault.Kind
	}{
		{"customer", "Bearer " + customer, -1, fault.Forbidden},
		{"admin", "Bearer " + admin, -1, -1},
		{"lower-case scheme", "bearer " + admin, -1, -1},
		{"missing header", "", fault.Unauthenticated, fault.Unauthenticated},
		{"no scheme", customer, fault.Unauthenticated, fault.Unauthenticated},
		{"basic scheme", "Basic " + customer, fault.Unauthenticated, fault.Unauthenticated},
		{"empty bearer", "Bearer ", fault.Unauthenticated, fault.Unauthenticated},
		{"bad token", "Bearer abc", fault.Unauthenticated, fault.Unauthenticated},
	}
	kindOf := func(err error) fault.Kind {
		if err == nil {
			return -1
		}
		return fault.KindOf(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			_, err := tk.FromRequest(r)
			_, adminErr := tk.RequireAdmin(r)
			got := []fault.Kind{kindOf(err), kindOf(adminErr)}
			if diff := cmp.Diff([]fault.Kind{tt.wantUser, tt.wantAdmin}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckInternal(t *testing.T) {
	tests := []struct {
		name, credential, header string
		ok                       bool
	}{
		{"match", "s3cret", "s3cret", true},
		{"mismatch", "s3cret", "guess", false},
		{"missing header", "s3cret", "", false},
		{"unconfigured credential never matches", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			if tt.header != "" {
				r.Header.Set(auth.InternalHeader, tt.header)
			}
			err := auth.CheckInternal(r, tt.credential)
			if (err == nil) != tt.ok || (err != nil && fault.KindOf(err) != fault.Unauthenticated) {
				t.Errorf("CheckInternal = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestPasswords(t *testing.T) {
	hash, err := auth.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$") {
		t.Errorf("hash %q is not PHC argon2id", hash)
	}
	other, _ := auth.HashPassword("correct horse")
	if other == hash {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	parts := strings.Split(hash, "$")
	tests := []struct {
		name, hash, password string
		want                 bool
		wantErr              bool
	}{
		{"right password", hash, "correct horse", true, false},
		{"wrong password", hash, "correct horse!", false, false},
		{"empty password", hash, "", false, false},
		{"not a PHC string", "plaintext", "plaintext", false, true},
		{"bcrypt hash", "$2a$10$abcdefghijklmnopqrstuuFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE", "x", false, true},
		{"other version", strings.Replace(hash, "v=19", "v=16", 1), "correct horse", false, true},
		{"bad parameters", strings.Join([]string{"", parts[1], parts[2], "m=x,t=1,p=1", parts[4], parts[5]}, "$"), "correct horse", false, true},
		{"zero threads", strings.Replace(hash, "p=1", "p=0", 1), "correct horse", false, true},
		{"zero iterations", strings.Replace(hash, "t=2", "t=0", 1), "correct horse", false, true},
		{"absurd memory", strings.Replace(hash, "m=19456", "m=4000000000", 1), "correct horse", false, true},
		{"empty key", strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], ""}, "$"), "", false, true},
		{"bad salt", strings.Join([]string{"", parts[1], parts[2], parts[3], "!!!", parts[5]}, "$"), "correct horse", false, true},
		{"bad key", strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "!!!"}, "$"), "correct horse", false, true},
		{"dummy hash never matches a guess", auth.DummyHash(), "correct horse", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.CheckPassword(tt.hash, tt.password)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("CheckPassword = %v, %v; want %v, err %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
