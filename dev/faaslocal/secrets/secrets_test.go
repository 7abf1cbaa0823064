package secrets_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/secrets"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/routes"
)

func open(t *testing.T) (*secrets.Store, string) {
	t.Helper()
	state := t.TempDir()
	s, err := secrets.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	return s, state
}

func names(t *testing.T, s *secrets.Store) []string {
	t.Helper()
	n, err := s.Names()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The gateway API's credentials are in the directory (connectors read them
// there) but not function secrets: the secret API can neither list nor
// change them, and no function may declare them.
func TestGatewayCredentialsAreNotFunctionSecrets(t *testing.T) {
	s, _ := open(t)
	if err := s.CreateMissing(secrets.Development()); err != nil {
		t.Fatal(err)
	}
	password, err := s.Read("basic-auth-password")
	if err != nil || len(password) == 0 {
		t.Fatalf("Read: %d bytes, %v", len(password), err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "basic-auth-user")); err != nil {
		t.Errorf("basic-auth-user not in the directory connectors read: %v", err)
	}
	if slices.Contains(names(t, s), "basic-auth-password") || slices.Contains(names(t, s), "basic-auth-user") {
		t.Errorf("Names lists the gateway's credentials: %v", names(t, s))
	}
	for what, err := range map[string]error{
		"create": s.Create("basic-auth-user", []byte("root")),
		"update": s.Update("basic-auth-password", []byte("guessed")),
		"delete": s.Delete("basic-auth-password"),
		"check":  s.Check([]string{"jwt-signing-key", "basic-auth-password"}),
		"mount":  s.Mount("fn", s.MountDir("fn"), []string{"basic-auth-password"}),
	} {
		if fault.KindOf(err) != fault.Invalid || !strings.Contains(fmt.Sprint(err), "gateway API's credential") {
			t.Errorf("%s: %v, want Invalid naming the gateway API's credential", what, err)
		}
	}
	if again, _ := s.Read("basic-auth-password"); string(again) != string(password) {
		t.Error("the password changed")
	}
}

// Each refused operation says why with a kind the gateway API maps to a
// status (409, 404, 400).
func TestSecretOperationsClassifyTheirFailures(t *testing.T) {
	s, _ := open(t)
	if err := s.Create("api-key", []byte("one")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want fault.Kind
	}{
		{"create an existing secret", s.Create("api-key", []byte("two")), fault.Conflict},
		{"update a missing secret", s.Update("missing", []byte("x")), fault.NotFound},
		{"delete a missing secret", s.Delete("missing"), fault.NotFound},
		{"read a missing secret", func() error { _, err := s.Read("missing"); return err }(), fault.NotFound},
		{"a path as a name", s.Create("../escape", []byte("x")), fault.Invalid},
		{"a dot-dot name", s.Delete("a..b"), fault.Invalid},
		// The temporary file of a write of "api-key", renamed away by it:
		// accepted, it vanished at the next write of "api-key".
		{"a temporary file's name", s.Create("api-key.tmp", []byte("x")), fault.Invalid},
		{"declare a missing secret", s.Check([]string{"api-key", "missing"}), fault.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fault.KindOf(tc.err); got != tc.want {
				t.Errorf("%v: kind %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if v, _ := s.Read("api-key"); string(v) != "one" {
		t.Errorf("a refused create changed the value to %q", v)
	}
}

func TestSecretLifecycle(t *testing.T) {
	s, state := open(t)
	if err := s.Create("api-key", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("api-key", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Read("api-key"); err != nil || string(v) != "two" {
		t.Errorf("read %q %v", v, err)
	}
	info, err := os.Stat(filepath.Join(state, "secrets", "api-key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("secret file %v %v, want mode 0600", info, err)
	}
	// A value being written is never listed.
	if err := os.WriteFile(filepath.Join(s.Dir(), "half.tmp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"api-key"}, names(t, s)); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if err := s.Delete("api-key"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{}, names(t, s)); diff != "" {
		t.Errorf("names after delete (-want +got):\n%s", diff)
	}
}

// A function's directory holds exactly the secrets it declares now; each
// mount gets a directory (a generation) of its own, leaving the previous one
// as it was until it is released; a mount that names a missing secret
// creates nothing.
func TestMountHoldsExactlyTheDeclaredSecrets(t *testing.T) {
	s, _ := open(t)
	for _, n := range []string{"a", "b"} {
		if err := s.Create(n, []byte("value of "+n)); err != nil {
			t.Fatal(err)
		}
	}
	mounted := func(dir string) map[string]string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			out[e.Name()] = string(b)
		}
		return out
	}
	first, second := s.MountDir("fn"), s.MountDir("fn")
	if first == second {
		t.Fatalf("two generations share %s", first)
	}
	if err := s.Mount("fn", first, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Mount("fn", second, []string{"b"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"b": "value of b"}, mounted(second)); diff != "" {
		t.Errorf("the mount with b only (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"a": "value of a"}, mounted(first)); diff != "" {
		t.Errorf("the previous generation after the next mount (-want +got):\n%s", diff)
	}
	third := s.MountDir("fn")
	if err := s.Mount("fn", third, []string{"a", "missing"}); fault.KindOf(err) != fault.Invalid {
		t.Errorf("mount with a missing secret: %v, want invalid", err)
	}
	if _, err := os.Stat(third); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused mount created %s: %v", third, err)
	}
	if err := s.Release("fn", first); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a released generation is still there: %v", err)
	}
	if diff := cmp.Diff(map[string]string{"b": "value of b"}, mounted(second)); diff != "" {
		t.Errorf("releasing another generation changed this one (-want +got):\n%s", diff)
	}
	if err := s.Mount("../fn", s.MountDir("../fn"), nil); err == nil {
		t.Error("a path as a function name was mounted")
	}
	for _, dir := range []string{filepath.Dir(second), filepath.Join(filepath.Dir(second), "..", "other", "secrets-x"),
		second + "/../../other/secrets-x", t.TempDir()} {
		if err := s.Mount("fn", dir, nil); err == nil {
			t.Errorf("%s, not a generation of fn, was mounted", dir)
		}
		if err := s.Release("fn", dir); err == nil {
			t.Errorf("%s, not a generation of fn, was released", dir)
		}
	}
}

// The development secrets are written once: a second start keeps the first
// values, so tokens issued before a restart stay valid and faas-cli stays
// logged in (the gateway API's random password is reused).
func TestCreateMissingKeepsExistingValues(t *testing.T) {
	s, _ := open(t)
	if err := s.CreateMissing(secrets.Development()); err != nil {
		t.Fatal(err)
	}
	first, _ := s.Read("jwt-signing-key")
	tokenPairMatches(t, s)
	firstPassword, _ := s.Read("basic-auth-password")
	if user, _ := s.Read("basic-auth-user"); string(user) != "admin" || len(firstPassword) < 32 {
		t.Fatalf("basic-auth-user %q, basic-auth-password %d bytes; want admin and a random password", user, len(firstPassword))
	}
	if err := s.CreateMissing(secrets.Development()); err != nil {
		t.Fatal(err)
	}
	second, _ := s.Read("jwt-signing-key")
	if string(first) != string(second) {
		t.Error("a second CreateMissing replaced jwt-signing-key")
	}
	if again, _ := s.Read("basic-auth-password"); string(again) != string(firstPassword) {
		t.Error("a second CreateMissing replaced basic-auth-password")
	}
	want := []string{"admin-email", "admin-password", "db-password-catalog", "db-password-catalog-reader", "db-password-inventory", "db-password-inventory-reader", "db-password-orders",
		"db-password-payments", "db-password-relay", "db-password-users", "event-signing-key", "event-verify-key", "internal-callers",
		"jwt-signing-key", "jwt-verify-key", "meili-key", "meili-search-key", "redis-password", "smtp-password"}
	for _, c := range routes.AllCallers() {
		want = append(want, auth.CredentialSecret(c))
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, names(t, s)); diff != "" {
		t.Errorf("development secrets (-want +got):\n%s", diff)
	}
}

// tokenPairMatches checks the stored jwt-signing-key (a 0600 file) signs
// tokens that the stored jwt-verify-key verifies.
func tokenPairMatches(t *testing.T, s *secrets.Store) {
	t.Helper()
	signing, _ := s.Read("jwt-signing-key")
	verify, _ := s.Read("jwt-verify-key")
	signer, err := auth.ParseSigner(string(signing), 0)
	if err != nil {
		t.Fatalf("jwt-signing-key: %v", err)
	}
	verifier, err := auth.ParseVerifier(string(verify))
	if err != nil {
		t.Fatalf("jwt-verify-key: %v", err)
	}
	tok, err := signer.Issue(uuid.New(), auth.RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.Verify(tok); err != nil {
		t.Errorf("jwt-verify-key does not verify jwt-signing-key's token: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir(), "jwt-signing-key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("jwt-signing-key: %v %v, want mode 0600", fi.Mode(), err)
	}
}

// A state directory from before asymmetric tokens (jwt-secret, no pair)
// gets a matching pair on the next start; its other secrets are kept.
func TestCreateMissingUpgradesAnHMACState(t *testing.T) {
	s, _ := open(t)
	old := secrets.Development()
	delete(old, "jwt-signing-key")
	delete(old, "jwt-verify-key")
	old["jwt-secret"] = strings.Repeat("k", 48)
	if err := s.CreateMissing(old); err != nil {
		t.Fatal(err)
	}
	internal, _ := s.Read(auth.CallersSecret)
	if err := s.CreateMissing(secrets.Development()); err != nil {
		t.Fatal(err)
	}
	tokenPairMatches(t, s)
	if again, _ := s.Read(auth.CallersSecret); string(again) != string(internal) {
		t.Error("the upgrade replaced internal-callers")
	}
}

// One half of a key pair alone is reported, never completed with a new
// half that would not match it.
func TestCreateMissingRefusesHalfAPair(t *testing.T) {
	s, _ := open(t)
	dev := secrets.Development()
	if err := s.CreateMissing(map[string]string{"jwt-verify-key": dev["jwt-verify-key"]}); err != nil {
		t.Fatal(err)
	}
	err := s.CreateMissing(dev)
	if err == nil || !strings.Contains(err.Error(), "jwt-signing-key and jwt-verify-key are a key pair") {
		t.Fatalf("CreateMissing = %v", err)
	}
	if _, err := s.Read("jwt-signing-key"); err == nil {
		t.Error("a signing key that does not match jwt-verify-key was written")
	}
	if _, err := s.Read(auth.CallersSecret); err != nil {
		t.Errorf("the other secrets were not written: %v", err)
	}
}

// verifierOf parses the store's internal-callers.
func verifierOf(t *testing.T, s *secrets.Store) *auth.InternalVerifier {
	t.Helper()
	text, err := s.Read(auth.CallersSecret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.ParseInternalVerifier(string(text))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// admits reports whether v admits the stored credential of caller.
func admits(t *testing.T, s *secrets.Store, v *auth.InternalVerifier, caller string) bool {
	t.Helper()
	cred, err := s.Read(auth.CredentialSecret(caller))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set(auth.InternalHeader, strings.TrimSpace(string(cred)))
	got, err := auth.CheckInternal(r, v, []string{caller})
	return err == nil && got == caller
}

// A fresh state gets one credential per internal caller, each admitted by
// the generated internal-callers; a state from before per-caller
// credentials (only internal-token) upgrades on the next start; a caller
// whose credential is new to an existing verifier is added to it, and a
// second start changes nothing.
func TestCreateDevelopmentTrustsEveryCaller(t *testing.T) {
	fresh, _ := open(t)
	if err := fresh.CreateDevelopment(); err != nil {
		t.Fatal(err)
	}
	v := verifierOf(t, fresh)
	for _, c := range routes.AllCallers() {
		if !admits(t, fresh, v, c) {
			t.Errorf("fresh state: %s's credential is not admitted", c)
		}
	}
	if diff := cmp.Diff(routes.AllCallers(), v.Callers()); diff != "" {
		t.Errorf("verifier callers (-want +got):\n%s", diff)
	}

	old, _ := open(t)
	if err := old.Create("internal-token", []byte("an-old-shared-token")); err != nil {
		t.Fatal(err)
	}
	if err := old.CreateDevelopment(); err != nil {
		t.Fatal(err)
	}
	v = verifierOf(t, old)
	for _, c := range routes.AllCallers() {
		if !admits(t, old, v, c) {
			t.Errorf("upgraded state: %s's credential is not admitted", c)
		}
	}

	// A verifier that predates a caller: its line is appended, the others kept.
	partial, _ := open(t)
	if err := partial.CreateDevelopment(); err != nil {
		t.Fatal(err)
	}
	text, _ := partial.Read(auth.CallersSecret)
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		if !strings.HasPrefix(line, routes.CallerOperator+" ") {
			kept = append(kept, line)
		}
	}
	if err := partial.Update(auth.CallersSecret, []byte(strings.Join(kept, "\n"))); err != nil {
		t.Fatal(err)
	}
	if admits(t, partial, verifierOf(t, partial), routes.CallerOperator) {
		t.Fatal("the operator is admitted without its line")
	}
	if err := partial.CreateDevelopment(); err != nil {
		t.Fatal(err)
	}
	if !admits(t, partial, verifierOf(t, partial), routes.CallerOperator) {
		t.Error("the missing operator line was not added")
	}
	before, _ := partial.Read(auth.CallersSecret)
	if err := partial.CreateDevelopment(); err != nil {
		t.Fatal(err)
	}
	if after, _ := partial.Read(auth.CallersSecret); string(after) != string(before) {
		t.Error("a second start changed internal-callers")
	}
}

// Open syncs the parent of every directory it creates, the state's too when
// it makes that, as the async journal does: a secret synced inside a
// directory whose own name a crash of the host lost would be lost with it
// (and the next run would generate new keys, failing every token issued).
// An existing store syncs nothing. Until 2026-12-08 no directory was synced.
func TestOpenSyncsTheDirectoriesItCreates(t *testing.T) {
	root := t.TempDir()
	var synced []string
	restore := secrets.SetSyncDir(func(d string) error { synced = append(synced, d); return nil })
	defer restore()
	state := filepath.Join(root, "state")
	if _, err := secrets.Open(state); err != nil {
		t.Fatal(err)
	}
	if want := []string{root, state, state}; !slices.Equal(synced, want) {
		t.Errorf("directory syncs %q at the first open, want %q (the state's parent, then the state for secrets and functions)", synced, want)
	}
	synced = nil
	if _, err := secrets.Open(state); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 0 {
		t.Errorf("directory syncs %q reopening the store, want none", synced)
	}
}

// A failed sync of a new directory fails Open: the store is not used as if
// durable.
func TestOpenFailsWhenItCannotSyncANewDirectory(t *testing.T) {
	restore := secrets.SetSyncDir(func(string) error { return errors.New("disk gone") })
	defer restore()
	if _, err := secrets.Open(filepath.Join(t.TempDir(), "state")); err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("Open with the sync failing: %v, want the sync's error", err)
	}
}
