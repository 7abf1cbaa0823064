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

// CallersFrom reads only the secrets asked for, and names the missing ones.
func TestCallersFrom(t *testing.T) {
	empty := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	cs := auth.CallersFrom(empty, false, false)
	if tokens, err := cs.Verifier(); tokens != nil || err != nil || cs.Internal != "" || empty.Err() != nil {
		t.Fatalf("nothing asked: tokens %v err %v internal %q config %v", tokens, err, cs.Internal, empty.Err())
	}
	auth.CallersFrom(empty, true, true)
	for _, want := range []string{"jwt-verify-key", "internal-token"} {
		if err := empty.Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s not reported: %v", want, err)
		}
	}

	dir := t.TempDir()
	_, signing, verify := auth.NewTestKeys(0)
	for name, v := range map[string]string{"jwt-verify-key": verify, "jwt-signing-key": signing, "internal-token": "internal"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: dir}))
	cs = auth.CallersFrom(c, true, true)
	tokens, err := cs.Verifier()
	if err != nil || tokens == nil || cs.Internal != "internal" || c.Err() != nil {
		t.Fatalf("both asked: tokens %v err %v internal %q config %v", tokens, err, cs.Internal, c.Err())
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
