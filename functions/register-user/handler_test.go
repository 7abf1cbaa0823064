package function

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersdb"
	"github.com/shopfaas/shop/internal/users/userstest"
)

const path = "/api/v1/users"

func setup(t *testing.T) (http.Handler, *usersdb.Store) {
	t.Helper()
	store := userstest.Store(t)
	return New(store, slog.New(slog.DiscardHandler)), store
}

func post(t *testing.T, h http.Handler, body string) (status int, u users.User, raw string) {
	t.Helper()
	w := fntest.Do(t, h, http.MethodPost, path, "application/json", body)
	raw = w.Body.String()
	if w.Code == http.StatusCreated {
		u = fntest.JSON[users.User](t, w, http.StatusCreated)
	}
	return w.Code, u, raw
}

func TestRegister(t *testing.T) {
	h, store := setup(t)
	status, u, raw := post(t, h, `{"email":"  Alice@Example.COM ","password":"correct horse","name":" Alice "}`)
	if status != http.StatusCreated {
		t.Fatalf("status = %d, body %s", status, raw)
	}
	want := users.User{Email: "alice@example.com", Name: "Alice", Role: users.RoleCustomer}
	if diff := cmp.Diff(want, u, cmpopts.IgnoreFields(users.User{}, "ID", "CreatedAt")); diff != "" {
		t.Fatalf("user (-want +got):\n%s", diff)
	}
	if u.ID.Version() != 7 {
		t.Fatalf("id %s is not a UUIDv7", u.ID)
	}
	for _, leak := range []string{"password", "hash", "argon2"} {
		if strings.Contains(raw, leak) {
			t.Fatalf("response %s mentions %q", raw, leak)
		}
	}
	stored, err := store.Get(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(u.ID, stored.ID); diff != "" {
		t.Fatal(diff)
	}
	pending, err := store.PendingEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Type != events.UserRegistered || pending[0].Subject != u.ID.String() {
		t.Fatalf("outbox = %+v, want one user.registered.v1 for %s", pending, u.ID)
	}
	// The new account can log in with the password it registered.
	if _, err := store.Authenticate(context.Background(), users.Login{Email: "alice@example.com", Password: "correct horse"}); err != nil {
		t.Fatalf("registered password refused: %v", err)
	}
}

func TestRegisterDuplicateEmail(t *testing.T) {
	h, _ := setup(t)
	if status, _, raw := post(t, h, `{"email":"bob@example.com","password":"password-1","name":"Bob"}`); status != http.StatusCreated {
		t.Fatalf("first registration: %d %s", status, raw)
	}
	for _, email := range []string{"bob@example.com", "BOB@Example.com", " bob@EXAMPLE.com "} {
		w := fntest.Do(t, h, http.MethodPost, path, "application/json",
			`{"email":"`+email+`","password":"password-2","name":"Bob Two"}`)
		fntest.Problem(t, w, http.StatusConflict, "email_taken", "bob@example.com")
	}
}

// An address has one account whatever Unicode spelling it is sent in: "é"
// precomposed (U+00E9) and "e" followed by the combining U+0301 are the same
// character (canonically equivalent), and the account answers the composed
// form (NFC). Until 2026-12-07 the second spelling got an account of its own.
func TestOneAddressInTwoUnicodeSpellingsIsOneAccount(t *testing.T) {
	h, _ := setup(t)
	status, u, raw := post(t, h, `{"email":"Jose\u0301@example.com","password":"password-1","name":"José"}`)
	if status != http.StatusCreated {
		t.Fatalf("first registration: %d %s", status, raw)
	}
	if u.Email != "jos\u00e9@example.com" {
		t.Errorf("stored email %+q, want the composed %+q", u.Email, "jos\u00e9@example.com")
	}
	for _, email := range []string{`jos\u00e9@example.com`, `JOS\u00c9@example.com`, `jose\u0301@example.com`} {
		w := fntest.Do(t, h, http.MethodPost, path, "application/json",
			`{"email":"`+email+`","password":"password-2","name":"Other"}`)
		fntest.Problem(t, w, http.StatusConflict, "email_taken")
	}
}

func TestRegisterRefusesBadRequests(t *testing.T) {
	h, store := setup(t)
	big := `{"email":"big@example.com","password":"password-1","name":"` + strings.Repeat("x", 64<<10) + `"}`
	tests := []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"malformed JSON", "application/json", `{"email":"a@example.com",`, 400, "invalid_json"},
		{"not an object", "application/json", `[1,2]`, 400, "invalid_json"},
		{"empty body", "application/json", ``, 400, "invalid_json"},
		{"trailing data", "application/json", `{"email":"a@example.com","password":"password-1","name":"A"} {}`, 400, "invalid_json"},
		{"role is unknown", "application/json", `{"email":"a@example.com","password":"password-1","name":"A","role":"admin"}`, 400, "invalid_json"},
		{"id is unknown", "application/json", `{"id":"` + uuid.NewString() + `","email":"a@example.com","password":"password-1","name":"A"}`, 400, "invalid_json"},
		{"email of wrong type", "application/json", `{"email":5,"password":"password-1","name":"A"}`, 400, "invalid_json"},
		{"name of wrong type", "application/json", `{"email":"a@example.com","password":"password-1","name":["A"]}`, 400, "invalid_json"},
		{"no content type", "", `{"email":"a@example.com","password":"password-1","name":"A"}`, 400, "unsupported_media_type"},
		{"form content type", "application/x-www-form-urlencoded", `email=a@example.com`, 400, "unsupported_media_type"},
		{"oversized body", "application/json", big, 413, "body_too_large"},
		{"missing fields", "application/json", `{}`, 422, "invalid_request"},
		{"missing password", "application/json", `{"email":"a@example.com","name":"A"}`, 422, "invalid_request"},
		{"invalid email", "application/json", `{"email":"not-an-email","password":"password-1","name":"A"}`, 422, "invalid_request"},
		{"short password", "application/json", `{"email":"a@example.com","password":"short","name":"A"}`, 422, "invalid_request"},
		{"long password", "application/json", `{"email":"a@example.com","password":"` + strings.Repeat("p", 129) + `","name":"A"}`, 422, "invalid_request"},
		// A new password keeps the text rule (login's is opaque to it, for
		// the accounts registered with one before the rule).
		{"control character in the password", "application/json", `{"email":"a@example.com","password":"pass\tword-2","name":"A"}`, 422, "invalid_text"},
		{"long name", "application/json", `{"email":"a@example.com","password":"password-1","name":"` + strings.Repeat("n", 101) + `"}`, 422, "invalid_request"},
		// Invisible formatting characters (Unicode Cf) would make the
		// account look like another's.
		{"zero-width space in the email", "application/json", `{"email":"ad\u200bmin@example.com","password":"password-1","name":"A"}`, 422, "invalid_request"},
		{"bidi override in the name", "application/json", `{"email":"a@example.com","password":"password-1","name":"\u202enimda"}`, 422, "invalid_request"},
		{"null values", "application/json", `{"email":null,"password":null,"name":null}`, 422, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := fntest.Do(t, h, http.MethodPost, path, tc.contentType, tc.body)
			fntest.Problem(t, w, tc.status, tc.code, "password-1", "not-an-email")
		})
	}
	// None of the refused requests created an account or an event.
	pending, err := store.PendingEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Fatalf("refused requests wrote %d events", len(pending))
	}
}

func TestRegisterUnknownRoute(t *testing.T) {
	h, _ := setup(t)
	fntest.Problem(t, fntest.Do(t, h, http.MethodPost, "/api/v1/users/x", "application/json", `{}`), http.StatusNotFound, "not_found")
}

// Twenty clients registering the same email at once, in two Unicode
// spellings ("é" precomposed, or "e" and the combining U+0301): exactly one
// wins, every other one is told the email is taken, or, when its password
// hash waited for one of the process's two hash slots past their bound (the
// race detector on a busy machine), 503 with Retry-After: never a second
// account.
func TestRegisterRace(t *testing.T) {
	h, store := setup(t)
	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies, retryAfter := make([]string, n), make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Served without fntest.Do, whose testing.TB may fail the test
			// with FailNow: only the test's goroutine may call that.
			email := [...]string{`Rac\u00e9@Example.com`, `race\u0301@example.com`}[i%2]
			r := httptest.NewRequest(http.MethodPost, path,
				strings.NewReader(`{"email":"`+email+`","password":"password-1","name":"Racer"}`))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			codes[i], bodies[i], retryAfter[i] = w.Code, w.Body.String(), w.Header().Get("Retry-After")
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for i, c := range codes {
		count[c]++
		if c == http.StatusConflict && !strings.Contains(bodies[i], `"code":"email_taken"`) {
			t.Errorf("409 body %s lacks email_taken", bodies[i])
		}
		if c == http.StatusServiceUnavailable && (!strings.Contains(bodies[i], "password checks") || retryAfter[i] == "") {
			t.Errorf("503 (Retry-After %q) body %s is not the busy hash slots' refusal", retryAfter[i], bodies[i])
		}
	}
	want := map[int]int{http.StatusCreated: 1, http.StatusConflict: n - 1}
	if busy := count[http.StatusServiceUnavailable]; busy > 0 {
		want[http.StatusConflict], want[http.StatusServiceUnavailable] = n-1-busy, busy
	}
	if diff := cmp.Diff(want, count); diff != "" || count[http.StatusConflict] == 0 {
		t.Fatalf("status counts %v, want one 201 and at least one 409 (-want +got):\n%s", count, diff)
	}
	pending, err := store.PendingEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 {
		t.Fatalf("outbox has %d events, want 1", len(pending))
	}
}

// Build reads its dependencies from the configuration, served the way
// fnserve serves it (built on first use, again after a failure): without a
// database URL it answers 503 and retries on the next request.
func TestBuildWiring(t *testing.T) {
	env := map[string]string{"USERS_DATABASE_URL": "", "SECRETS_DIR": t.TempDir()}
	h := fnhttp.NewLazy(Build, config.New(config.Env(env)), slog.Default())
	body := `{"email":"wired@example.com","password":"password-1","name":"Wired"}`
	fntest.Problem(t, fntest.Do(t, h, http.MethodPost, path, "application/json", body),
		http.StatusServiceUnavailable, "unavailable", "USERS_DATABASE_URL")

	env["USERS_DATABASE_URL"] = pgtest.NewDatabase(t)
	w := fntest.Do(t, h, http.MethodPost, path, "application/json", body)
	if u := fntest.JSON[users.User](t, w, http.StatusCreated); u.Email != "wired@example.com" {
		t.Fatalf("user = %+v", u)
	}
}

// A Persian name needs a zero-width non-joiner (U+200C) between letters:
// registered and stored as sent; a joiner first, last or doubled is 422
// with nothing registered.
func TestANameWithAJoinerBetweenLettersIsRegistered(t *testing.T) {
	h, store := setup(t)
	status, u, raw := post(t, h, `{"email":"sara@example.com","password":"password-1","name":"سارا نیک\u200cنام"}`)
	if status != http.StatusCreated {
		t.Fatalf("status = %d, body %s", status, raw)
	}
	if u.Name != "سارا نیک\u200cنام" {
		t.Errorf("name %+q, want the non-joiner kept", u.Name)
	}
	for _, name := range []string{`\u200cسارا`, `سارا\u200c`, `نیک\u200c\u200cنام`} {
		w := fntest.Do(t, h, http.MethodPost, path, "application/json", `{"email":"other@example.com","password":"password-1","name":"`+name+`"}`)
		if p := fntest.Problem(t, w, http.StatusUnprocessableEntity, "invalid_request"); !strings.Contains(p.Detail, "U+200C") {
			t.Errorf("name %s: detail %q, want U+200C named", name, p.Detail)
		}
	}
	pending, err := store.PendingEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 {
		t.Errorf("%d events, want the one registration's", len(pending))
	}
}
