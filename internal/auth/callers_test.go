package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
)

// CallersFrom reads only the secrets asked for, and names the missing ones.
func TestCallersFrom(t *testing.T) {
	empty := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	cs := auth.CallersFrom(empty, false, false)
	if tokens, err := cs.Tokens(); tokens != nil || err != nil || cs.Internal != "" || empty.Err() != nil {
		t.Fatalf("nothing asked: tokens %v err %v internal %q config %v", tokens, err, cs.Internal, empty.Err())
	}
	auth.CallersFrom(empty, true, true)
	for _, want := range []string{"jwt-secret", "internal-token"} {
		if err := empty.Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s not reported: %v", want, err)
		}
	}

	dir := t.TempDir()
	for name, v := range map[string]string{"jwt-secret": strings.Repeat("k", 32), "internal-token": "internal"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: dir}))
	cs = auth.CallersFrom(c, true, true)
	tokens, err := cs.Tokens()
	if err != nil || tokens == nil || cs.Internal != "internal" || c.Err() != nil {
		t.Fatalf("both asked: tokens %v err %v internal %q config %v", tokens, err, cs.Internal, c.Err())
	}
}
