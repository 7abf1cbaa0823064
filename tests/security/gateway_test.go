package security

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// TestGatewayAPIRequiresCredentials: the local gateway API (/system/*) is
// behind basic auth, as faasd's is (issue 12, finding 1): no credentials or
// wrong ones are 401, the runtime's own are accepted. It skips while the
// runtime generates no credentials (no <state>/secrets/basic-auth-password).
func TestGatewayAPIRequiresCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local runtime; -short was asked for")
	}
	rt := runtimetest.Start(t, runtimetest.Options{})
	pass, err := os.ReadFile(filepath.Join(rt.SecretsDir, "basic-auth-password"))
	if err != nil {
		t.Skipf("the local runtime reports no basic auth for its gateway API (%v): finding 1 of issue 12 is still open, "+
			"see docs/security.md; this probe runs once faas-local writes <state>/secrets/basic-auth-password", err)
	}
	user := "admin"
	if b, err := os.ReadFile(filepath.Join(rt.SecretsDir, "basic-auth-user")); err == nil {
		user = strings.TrimSpace(string(b))
	}
	for _, c := range []struct {
		name, user, pass string
		want             int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"a wrong password", user, "wrong", http.StatusUnauthorized},
		{"an empty password", user, "", http.StatusUnauthorized},
		{"another user", "root", strings.TrimSpace(string(pass)), http.StatusUnauthorized},
		{"the runtime's credentials", user, strings.TrimSpace(string(pass)), http.StatusOK},
	} {
		for _, path := range []string{"/system/functions", "/system/info"} {
			req, err := http.NewRequest(http.MethodGet, rt.GatewayURL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.user != "" || c.pass != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != c.want {
				t.Errorf("GET %s with %s: %d, want %d", path, c.name, res.StatusCode, c.want)
			}
			if c.want == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("GET %s with %s: WWW-Authenticate %q, want a Basic challenge", path, c.name, res.Header.Get("WWW-Authenticate"))
			}
		}
	}
}
