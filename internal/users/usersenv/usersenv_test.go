package usersenv_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/config/configtest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/users/usersenv"
)

// Load names every missing setting at once, builds every dependency asked
// for, and reads no secret it was not asked for.
func TestLoad(t *testing.T) {
	load := func(needs usersenv.Needs) func(*config.Reader) (*usersenv.Deps, error) {
		return func(c *config.Reader) (*usersenv.Deps, error) {
			return usersenv.Load(context.Background(), c, slog.New(slog.DiscardHandler), needs)
		}
	}
	db := pgtest.NewDatabase(t)
	configtest.Run(t, configtest.Case[*usersenv.Deps]{
		Name: "everything", Load: load(usersenv.Needs{Tokens: true, Issue: true}),
		Missing: []string{"USERS_DATABASE_URL", "jwt-verify-key", "jwt-signing-key"},
		Env:     map[string]string{"USERS_DATABASE_URL": db, "ACCESS_TOKEN_TTL": "2m"},
		Secrets: map[string]string{"jwt-verify-key": configtest.CallerSecrets["jwt-verify-key"], "jwt-signing-key": configtest.JWTSigningKey},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Store == nil || d.Tokens == nil || d.Signer == nil || d.Signer.TTL() != 2*time.Minute {
				t.Errorf("deps %+v: want every dependency", d)
			}
		},
	}, configtest.Case[*usersenv.Deps]{
		// get-me: verifies, never signs.
		Name: "tokens", Load: load(usersenv.Needs{Tokens: true}),
		Missing: []string{"USERS_DATABASE_URL", "jwt-verify-key"},
		Env:     map[string]string{"USERS_DATABASE_URL": db},
		Secrets: map[string]string{"jwt-verify-key": configtest.CallerSecrets["jwt-verify-key"]},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Tokens == nil || d.Signer != nil {
				t.Errorf("deps %+v: want a verifier and no signer", d)
			}
		},
	}, configtest.Case[*usersenv.Deps]{
		// login-user: signs, limits logins per account, reads no verify key.
		Name: "issue", Load: load(usersenv.Needs{Issue: true, LoginLimit: true}),
		Missing: []string{"USERS_DATABASE_URL", "jwt-signing-key", "REDIS_ADDR"},
		Env:     map[string]string{"USERS_DATABASE_URL": db, "REDIS_ADDR": "127.0.0.1:6379", "LOGIN_RATE_LIMIT": "2"},
		Secrets: map[string]string{"jwt-signing-key": configtest.JWTSigningKey},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Tokens != nil || d.Signer == nil || d.LoginLimit == nil {
				t.Fatalf("deps %+v: want a signer, a login limit and no verifier", d)
			}
			// LOGIN_RATE_LIMIT is read, and the counts are this database's:
			// the third login of one key is refused.
			key := "usersenv-test-" + time.Now().Format(time.RFC3339Nano)
			for i := range 3 {
				err := d.LoginLimit.Allow(context.Background(), key)
				if (err != nil) != (i == 2) {
					t.Errorf("login %d: %v", i+1, err)
				}
			}
		},
	}, configtest.Case[*usersenv.Deps]{
		Name: "nothing optional", Load: load(usersenv.Needs{}),
		Env: map[string]string{"USERS_DATABASE_URL": db},
		Check: func(t *testing.T, d *usersenv.Deps) {
			if d.Store == nil || d.Tokens != nil {
				t.Errorf("deps %+v: want the store only", d)
			}
		},
	})
}

// A login window under a second or a token lifetime under a minute is a
// configuration error naming the setting, not a value quietly replaced:
// until 2026-12-07 LOGIN_RATE_WINDOW=0 became one minute and 1ms turned the
// limit off (every request a window of its own), and ACCESS_TOKEN_TTL=0
// became 15 minutes and 500ms answered expires_in 0. An ACCESS_TOKEN_TTL
// above auth.MaxLifetime is one too (until 2026-12-07 ParseSigner refused it
// with an error that did not name the setting, after the other problems were
// reported). The shortest and longest allowed values load.
func TestLoadRefusesAWindowOrATokenLifetimeTooShort(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwt-signing-key"), []byte(configtest.JWTSigningKey), 0o600); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewDatabase(t)
	load := func(name, value string) error {
		env := map[string]string{"SECRETS_DIR": dir, "USERS_DATABASE_URL": db, "REDIS_ADDR": "127.0.0.1:6379", name: value}
		_, err := usersenv.Load(context.Background(), config.New(config.Env(env)), slog.New(slog.DiscardHandler),
			usersenv.Needs{Issue: true, LoginLimit: true})
		return err
	}
	for _, tc := range []struct{ name, value string }{
		{"LOGIN_RATE_WINDOW", "0"}, {"LOGIN_RATE_WINDOW", "0s"}, {"LOGIN_RATE_WINDOW", "1ms"}, {"LOGIN_RATE_WINDOW", "999ms"},
		{"ACCESS_TOKEN_TTL", "0"}, {"ACCESS_TOKEN_TTL", "500ms"}, {"ACCESS_TOKEN_TTL", "59s"},
		{"ACCESS_TOKEN_TTL", "24h1s"}, {"ACCESS_TOKEN_TTL", "48h"},
	} {
		err := load(tc.name, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%s: Load = %v, want a configuration error naming %s", tc.name, tc.value, err, tc.name)
		}
	}
	for _, tc := range []struct{ name, value string }{{"LOGIN_RATE_WINDOW", "1s"}, {"ACCESS_TOKEN_TTL", "1m"}, {"ACCESS_TOKEN_TTL", "24h"}} {
		if err := load(tc.name, tc.value); err != nil {
			t.Errorf("%s=%s: Load = %v, want it accepted", tc.name, tc.value, err)
		}
	}
}
