package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/config"
)

func TestEveryProblemCollected(t *testing.T) {
	c := config.New(config.Env(map[string]string{
		"SECRETS_DIR": t.TempDir(),
		"PORT":        "99999",
		"DEBUG":       "maybe",
		"TIMEOUT":     "-3s",
	}))
	c.Required("DATABASE_URL")
	c.Int("PORT", 8080, 1, 65535)
	c.Bool("DEBUG", false)
	c.Duration("TIMEOUT", time.Second)
	c.Secret("jwt-verify-key", "dev-default", false)
	c.Fail("LIST", errors.New("entry x is bad"))
	err := c.Err()
	if err == nil {
		t.Fatal("Err() = nil")
	}
	for _, want := range []string{"DATABASE_URL is required", "PORT", "DEBUG", "TIMEOUT", "secret jwt-verify-key is missing", "LIST: entry x is bad"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 6 {
		t.Errorf("%d problems reported, want 6:\n%v", n, err)
	}
}

func TestValues(t *testing.T) {
	c := config.New(config.Env(map[string]string{
		"NAME": "  shop ", "N": "7", "B": "true", "EMPTY": "   ",
	}))
	got := []any{c.String("NAME", "x"), c.String("EMPTY", "def"), c.String("UNSET", "def"), c.Int("N", 1, 0, 10),
		c.Int("UNSET", 3, 0, 10), c.Bool("B", false), c.Bool("UNSET", true), c.Required("NAME")}
	want := []any{"shop", "def", "def", 7, 3, true, true, "shop"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		raw     string
		want    time.Duration
		wantErr bool
	}{
		{"", 5 * time.Second, false},
		{"10", 10 * time.Second, false}, // bare seconds, as the watchdog
		{"0", 0, false},
		{"1m30s", 90 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"-1", 5 * time.Second, true},
		{"-2s", 5 * time.Second, true},
		{"soon", 5 * time.Second, true},
		// The longest duration in seconds, and past it: until 2026-12-06
		// those wrapped around, 2^55 + 3600 seconds to one hour.
		{"9223372036", 9223372036 * time.Second, false},
		{"9223372037", 5 * time.Second, true},
		{"36028797018967568", 5 * time.Second, true},
		{"99999999999999999999", 5 * time.Second, true},
		{"2562048h", 5 * time.Second, true},
		{"NaN", 5 * time.Second, true},
		{"Inf", 5 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c := config.New(config.Env(map[string]string{"T": tt.raw}))
			got := c.Duration("T", 5*time.Second)
			if got != tt.want || (c.Err() != nil) != tt.wantErr {
				t.Errorf("Duration = %v, err %v; want %v, err %v", got, c.Err(), tt.want, tt.wantErr)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwt-verify-key"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blank"), []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "a-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, secret, devDefault string
		dev                      bool
		want                     string
		wantErr                  bool
	}{
		{"file wins in production", "jwt-verify-key", "dev", false, "from-file", false},
		{"file wins in development", "jwt-verify-key", "dev", true, "from-file", false},
		{"missing in production fails", "admin-password", "dev-pw", false, "", true},
		{"missing in development uses the default", "admin-password", "dev-pw", true, "dev-pw", false},
		{"missing without a default fails even in development", "admin-password", "", true, "", true},
		{"blank file counts as missing", "blank", "", false, "", true},
		{"unreadable fails", "a-dir", "", false, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.New(config.Env(map[string]string{"SECRETS_DIR": dir}))
			got := c.Secret(tt.secret, tt.devDefault, tt.dev)
			if got != tt.want || (c.Err() != nil) != tt.wantErr {
				t.Errorf("Secret = %q, err %v; want %q, err %v", got, c.Err(), tt.want, tt.wantErr)
			}
		})
	}
}

// An optional secret may be absent or blank, but a file that exists and
// cannot be read is named at start: taken as absent, a connector connected
// without the broker's password and failed at every attempt.
func TestOptionalSecret(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq-password"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "a-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, want string
		wantErr    bool
	}{{"rabbitmq-password", "pw", false}, {"db-password-users", "", false}, {"a-dir", "", true}} {
		c := config.New(config.Env(map[string]string{"SECRETS_DIR": dir}))
		if got := c.OptionalSecret(tt.name); got != tt.want || (c.Err() != nil) != tt.wantErr {
			t.Errorf("OptionalSecret(%s) = %q, err %v; want %q, err %v", tt.name, got, c.Err(), tt.want, tt.wantErr)
		}
	}
}

// With basic_auth=true, a connector does not start without the gateway's
// credentials (it would only collect 401s); without it, it sends none.
func TestGatewayBasicAuthFromFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "basic-auth-user"), []byte("admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.New(config.Env(map[string]string{"SECRETS_DIR": dir, "basic_auth": "true"}))
	if u, p := c.GatewayBasicAuth(); u != "admin" || p != "" || c.Err() == nil || !strings.Contains(c.Err().Error(), "basic-auth-password") {
		t.Errorf("password missing: %q %q %v; want an error naming basic-auth-password", u, p, c.Err())
	}
	if err := os.WriteFile(filepath.Join(dir, "basic-auth-password"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = config.New(config.Env(map[string]string{"SECRETS_DIR": dir, "basic_auth": "true", "basic-auth-password": "from-env"}))
	if u, p := c.GatewayBasicAuth(); u != "admin" || p != "pw" || c.Err() != nil {
		t.Errorf("both files: %q %q %v", u, p, c.Err())
	}
	c = config.New(config.Env(map[string]string{"SECRETS_DIR": dir}))
	if u, p := c.GatewayBasicAuth(); u != "" || p != "" || c.Err() != nil {
		t.Errorf("basic_auth unset: %q %q %v; want none", u, p, c.Err())
	}
}

func TestSecretsDirDefault(t *testing.T) {
	c := config.New(config.Env(nil))
	c.Secret("definitely-not-a-secret-here", "", false)
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), config.DefaultSecretsDir) {
		t.Errorf("Err() = %v, want it to name %s", err, config.DefaultSecretsDir)
	}
}

func TestDev(t *testing.T) {
	for env, want := range map[string]bool{"": false, "production": false, "development": true, "dev": false} {
		if got := config.New(config.Env(map[string]string{"SHOP_ENV": env})).Dev(); got != want {
			t.Errorf("SHOP_ENV=%q: Dev() = %v, want %v", env, got, want)
		}
	}
}
