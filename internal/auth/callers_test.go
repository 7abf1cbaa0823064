package auth_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
)

// CallersFrom reads only the secrets asked for, and names the missing ones;
// CredentialFrom reads the caller's own credential.
func TestCallersFrom(t *testing.T) {
	empty := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	cs := auth.CallersFrom(empty, false, false)
	tokens, err := cs.Verifier()
	v, verr := cs.InternalVerifier()
	if tokens != nil || err != nil || v != nil || verr != nil || empty.Err() != nil {
		t.Fatalf("nothing asked: tokens %v err %v verifier %v %v config %v", tokens, err, v, verr, empty.Err())
	}
	auth.CallersFrom(empty, true, true)
	auth.CredentialFrom(empty, "create-order")
	for _, want := range []string{"jwt-verify-key", "internal-callers", "internal-token-create-order"} {
		if err := empty.Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s not reported: %v", want, err)
		}
	}

	cred, err := auth.NewCredential("create-order")
	if err != nil {
		t.Fatal(err)
	}
	line, err := auth.VerifierLine(cred)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, signing, verify := auth.NewTestKeys(0)
	for name, v := range map[string]string{"jwt-verify-key": verify, "jwt-signing-key": signing, "internal-callers": line + "\n",
		"internal-token-create-order": cred + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: dir}))
	cs = auth.CallersFrom(c, true, true)
	tokens, err = cs.Verifier()
	v, verr = cs.InternalVerifier()
	got := auth.CredentialFrom(c, "create-order")
	if err != nil || tokens == nil || verr != nil || v == nil || got != cred || c.Err() != nil {
		t.Fatalf("all asked: tokens %v err %v verifier %v %v credential ok %v config %v", tokens, err, v, verr, got == cred, c.Err())
	}
	if cs := v.Callers(); len(cs) != 1 || cs[0] != "create-order" {
		t.Errorf("verifier callers %v", cs)
	}
}

// A verifier reads jwt-verify-key only: with just the signing key in its
// secrets it fails to configure, and what it builds cannot sign.
func TestVerifiersNeverHoldTheSigningKey(t *testing.T) {
	_, signing, _ := auth.NewTestKeys(0)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwt-signing-key"), []byte(signing), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: dir}))
	auth.CallersFrom(c, true, false)
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "jwt-verify-key") {
		t.Errorf("a verifier configured with only jwt-signing-key: %v", err)
	}
	c = config.New(config.Env(map[string]string{config.SecretsDirEnv: dir}))
	if _, err := auth.ParseSigner(auth.SignerKey(c), 0); err != nil || c.Err() != nil {
		t.Errorf("SignerKey: %v %v", err, c.Err())
	}
	// The type split: nothing on a *Verifier issues, and it holds no private key.
	vt := reflect.TypeOf(&auth.Verifier{})
	for i := range vt.NumMethod() {
		if m := vt.Method(i); m.Name == "Issue" || strings.Contains(m.Type.String(), "Signer") {
			t.Errorf("*auth.Verifier has method %s %s", m.Name, m.Type)
		}
	}
	for i := range vt.Elem().NumField() {
		if f := vt.Elem().Field(i); strings.Contains(f.Type.String(), "PrivateKey") {
			t.Errorf("auth.Verifier has field %s %s", f.Name, f.Type)
		}
	}
}
