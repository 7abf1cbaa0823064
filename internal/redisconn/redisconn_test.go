package redisconn_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// The password comes from the redis-password secret file only: absent or
// blank, none is sent; a file that exists and cannot be read is a problem
// named at start; an environment value of the same name is never read.
func TestThePasswordComesFromTheSecretFileOnly(t *testing.T) {
	tests := []struct {
		name    string
		file    string // the secret's content; "<dir>" makes it unreadable, "" leaves it out
		want    string
		wantErr string
	}{
		{"absent", "", "", ""},
		{"present", "s3cret\n", "s3cret", ""},
		{"blank", "  \n", "", ""},
		{"unreadable", "<dir>", "", "secret redis-password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, redisconn.PasswordSecret)
			switch tt.file {
			case "":
			case "<dir>": // reading a directory fails, whoever runs the test (root reads any file)
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := config.New(config.Env(map[string]string{config.SecretsDirEnv: dir, "REDIS_ADDR": "redis:6379",
				"redis-password": "from-env", "REDIS_PASSWORD": "from-env"}))
			got := redisconn.ConfigFrom(c)
			if got.Addr != "redis:6379" || got.Password != tt.want {
				t.Errorf("ConfigFrom = {%q, %q}, want {redis:6379, %q}", got.Addr, got.Password, tt.want)
			}
			err := c.Err()
			if tt.wantErr == "" && err != nil {
				t.Errorf("Err() = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Err() = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
	c := config.New(config.Env(map[string]string{config.SecretsDirEnv: t.TempDir()}))
	redisconn.ConfigFrom(c)
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "REDIS_ADDR is required") {
		t.Errorf("without REDIS_ADDR: Err() = %v", err)
	}
}

// A Config printed or logged, alone or inside a caller's config, never shows
// the password.
func TestAConfigNeverPrintsItsPassword(t *testing.T) {
	const pw = "hunter2-do-not-print"
	cfg := redisconn.Config{Addr: "redis:6379", Password: pw}
	outer := struct {
		Redis  redisconn.Config
		Prefix string
	}{cfg, "cart:"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("redis", "config", cfg)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("redis", "config", cfg)
	for _, text := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", outer),
		fmt.Sprintf("%+v", outer), fmt.Sprintf("%#v", outer), logged.String()} {
		if strings.Contains(text, pw) {
			t.Errorf("printed with its password: %s", text)
		}
		if !strings.Contains(text, "redis:6379") {
			t.Errorf("printed without its address: %s", text)
		}
	}
}

// Options log in with the secret's password: a Redis that requires it
// answers a client built from the secret, and refuses one built without it
// (NOAUTH), so a deployment with AUTH on Redis can run the shop.
func TestOptionsLogInWithTheSecret(t *testing.T) {
	addr := redisconntest.Server(t, "pwOfTheTest")
	ctx := context.Background()
	ping := func(secret string) error {
		rdb := redis.NewClient(redisconn.Options(redisconntest.FromSecret(t, addr, secret, redisconn.ConfigFrom)))
		defer rdb.Close()
		return rdb.Ping(ctx).Err()
	}
	if err := ping(""); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("without the secret: PING = %v, want NOAUTH", err)
	}
	if err := ping("pwOfTheTest\n"); err != nil {
		t.Errorf("with the secret: PING = %v", err)
	}
}

// Open fails only when Redis refuses the login or PING (a wrong or missing
// secret, an ACL that denies the user PING), naming the secret and not the
// password, so a function's build fails on a misconfiguration; a Redis that
// cannot be reached is no error (its calls meet the outage as they come).
func TestOpenFailsOnlyWhenRedisRefusesTheLogin(t *testing.T) {
	const password = "openTestPassword"
	addr := redisconntest.Server(t, password)
	denied := redisconntest.Server(t, password)
	redisconntest.SetDefaultUser(t, denied, password, "-ping")
	for _, tt := range []struct {
		name, addr, secret, refusal string // refusal: "" when Open must succeed
	}{
		{"right password", addr, password, ""},
		{"wrong password", addr, "wrongPassword", "WRONGPASS"},
		{"no password", addr, "", "NOAUTH"},
		{"PING denied", denied, password, "NOPERM"},
		{"unreachable", "127.0.0.1:1", password, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rdb, err := redisconn.Open(context.Background(), redisconn.Options(redisconntest.FromSecret(t, tt.addr, tt.secret, redisconn.ConfigFrom)))
			if tt.refusal == "" {
				if err != nil {
					t.Fatalf("Open = %v, want a client", err)
				}
				_ = rdb.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.refusal) || !strings.Contains(err.Error(), "redis-password") ||
				strings.Contains(err.Error(), tt.secret) && tt.secret != "" {
				t.Errorf("Open = %v, want an error naming %s and the redis-password secret, not the password", err, tt.refusal)
			}
		})
	}
}

// The guide and the runbook quote, word for word, each refusal a function
// logs (Refused): an operator searches them for the line in the log, and
// NOPERM's differs from the login's.
func TestTheDocsQuoteEveryRefusal(t *testing.T) {
	const password = "quoteTestPassword"
	addr := redisconntest.Server(t, password)
	denied := redisconntest.Server(t, password)
	redisconntest.SetDefaultUser(t, denied, password, "-ping")
	var refusals []string
	for _, at := range []struct{ addr, secret string }{{addr, "wrongPassword"}, {denied, password}} {
		rdb := redis.NewClient(redisconn.Options(redisconn.Config{Addr: at.addr, Password: at.secret}))
		err := rdb.Ping(context.Background()).Err()
		_ = rdb.Close()
		if !redisconn.AuthFailed(err) {
			t.Fatalf("PING on %s = %v, want a refusal", at.addr, err)
		}
		refusals = append(refusals, redisconn.Refused(err))
	}
	for _, doc := range []string{"docs/deploy-faasd.md", "docs/runbooks/function-errors.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", doc))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ") // quotes wrap across lines
		for _, r := range refusals {
			if !strings.Contains(text, "`"+r+"`") {
				t.Errorf("%s does not quote %q", doc, r)
			}
		}
	}
}
