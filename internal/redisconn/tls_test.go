package redisconn_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// REDIS_TLS and the redis-ca secret are checked when the configuration is
// read, so a function whose TLS setting is wrong fails its build naming the
// problem: not a boolean, a CA file that cannot be read or holds no
// certificate (or a private key), and a CA given without REDIS_TLS=true,
// which would have dialled plain TCP.
func TestTLSSettingsAreCheckedWhenRead(t *testing.T) {
	ca := redisconntest.CA(t)
	tests := []struct {
		name    string
		tls     string
		ca      string // the redis-ca secret's content; "<dir>" makes it unreadable, "" leaves it out
		wantTLS bool
		wantCA  bool
		wantErr string
	}{
		{"off by default", "", "", false, false, ""},
		{"off", "false", "", false, false, ""},
		{"on with the system's roots", "true", "", true, false, ""},
		{"on with the secret's CA", "true", string(ca), true, true, ""},
		{"not a boolean", "yes please", "", false, false, "REDIS_TLS=\"yes please\" must be true or false"},
		{"CA without TLS", "", string(ca), false, false, "redis-ca: the secret is present but REDIS_TLS is not true"},
		{"CA unreadable", "true", "<dir>", true, false, "secret redis-ca"},
		{"CA not PEM", "true", "not a certificate\n", true, false, "secret redis-ca: no PEM certificate in it"},
		{"CA with a key", "true", string(ca) + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", true, false,
			`secret redis-ca: a PEM block of type "PRIVATE KEY"`},
		{"CA garbled", "true", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", true, false,
			"secret redis-ca: certificate 1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, redisconn.CASecret)
			switch tt.ca {
			case "":
			case "<dir>":
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			default:
				if err := os.WriteFile(path, []byte(tt.ca), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := config.New(config.Env(map[string]string{config.SecretsDirEnv: dir, "REDIS_ADDR": "redis:6379", "REDIS_TLS": tt.tls}))
			got := redisconn.ConfigFrom(c)
			if got.TLS != tt.wantTLS || (got.CA != nil) != tt.wantCA {
				t.Errorf("ConfigFrom: TLS %v, CA %v; want %v, %v", got.TLS, got.CA != nil, tt.wantTLS, tt.wantCA)
			}
			err := c.Err()
			if tt.wantErr == "" && err != nil {
				t.Errorf("Err() = %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Err() = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// A Config printed or logged says whether TLS is on and where its
// authorities come from, so an operator reading a build's log sees it.
func TestAConfigSaysWhetherTLSIsOn(t *testing.T) {
	for _, tt := range []struct {
		cfg       redisconn.Config
		want, log string
	}{
		{redisconn.Config{Addr: "redis:6379"}, "redis redis:6379 (no password, no TLS)", `"tls":false,"tls_ca":false`},
		{redisconn.Config{Addr: "r.example:6380", Password: "pw", TLS: true}, "redis r.example:6380 (password set, TLS with the system's roots)",
			`"tls":true,"tls_ca":false`},
		{redisconn.Config{Addr: "r.example:6380", TLS: true, CA: []byte("pem")}, "redis r.example:6380 (no password, TLS with the redis-ca secret)",
			`"tls":true,"tls_ca":true`},
	} {
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("redis", "config", tt.cfg)
		if got := fmt.Sprint(tt.cfg); got != tt.want {
			t.Errorf("String = %q, want %q", got, tt.want)
		}
		if !strings.Contains(logged.String(), tt.log) {
			t.Errorf("logged %s, want %s", logged.String(), tt.log)
		}
	}
}

// Against a Redis that accepts only TLS, a client with REDIS_TLS and the
// redis-ca that issued Redis's certificate logs in and works; every other
// client fails, none silently in plain text: without TLS, with the system's
// roots or the wrong CA (the certificate's authority is unknown), and with
// the right CA but a host the certificate is not for (REDIS_ADDR's host is
// the name checked). A TLS client never falls back to plain text either: a
// plain Redis refuses it.
func TestTLSReachesRedisOnlyWithItsAuthorityAndName(t *testing.T) {
	addr, ca := redisconntest.TLSServer(t, "tlsTestPassword")
	_, port, _ := strings.Cut(addr, ":")
	ctx := context.Background()
	client := func(cfg redisconn.Config) *redis.Client {
		opts := redisconn.Options(cfg)
		opts.MaxRetries = -1
		rdb := redis.NewClient(opts)
		t.Cleanup(func() { _ = rdb.Close() })
		return rdb
	}

	good := client(redisconntest.FromTLSSecrets(t, addr, "tlsTestPassword", ca, redisconn.ConfigFrom))
	if err := good.Set(ctx, "tls-test", "v", 0).Err(); err != nil {
		t.Fatalf("with TLS and the CA: SET = %v", err)
	}
	if v, err := good.Get(ctx, "tls-test").Result(); err != nil || v != "v" {
		t.Errorf("with TLS and the CA: GET = %q, %v", v, err)
	}

	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	for _, tt := range []struct {
		name  string
		cfg   redisconn.Config
		check func(error) bool
	}{
		{"without TLS", redisconntest.FromSecret(t, addr, "tlsTestPassword", redisconn.ConfigFrom), func(err error) bool { return err != nil }},
		{"system roots", redisconntest.FromTLSSecrets(t, addr, "tlsTestPassword", nil, redisconn.ConfigFrom),
			func(err error) bool { return errors.As(err, &unknown) }},
		{"wrong CA", redisconntest.FromTLSSecrets(t, addr, "tlsTestPassword", redisconntest.CA(t), redisconn.ConfigFrom),
			func(err error) bool { return errors.As(err, &unknown) }},
		{"name mismatch", redisconntest.FromTLSSecrets(t, "127.0.0.1:"+port, "tlsTestPassword", ca, redisconn.ConfigFrom),
			func(err error) bool { return errors.As(err, &hostname) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := client(tt.cfg).Ping(ctx).Err()
			if !tt.check(err) {
				t.Errorf("PING = %v, want the failure of a client %s", err, tt.name)
			}
		})
	}

	// A plain Redis reads the handshake as an unfinished command and never
	// answers: the dial times out.
	plain := redisconntest.Server(t, "")
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := client(redisconn.Config{Addr: plain, TLS: true, CA: ca}).Ping(tctx).Err(); err == nil {
		t.Error("a TLS client reached a plain Redis")
	}
}

// A certificate that fails verification fails the build, as a refused
// login does: Open's PING fails the handshake, and Open returns an error
// naming the problem (Refused: redis-ca, or REDIS_ADDR's host) and never the
// password, so /_/ready answers 503 and the rollout stalls where a client
// returned would have built a function whose every call fails. The error
// wraps the cause: Misconfigured and TLSFailed, not AuthFailed.
func TestACertificateThatFailsVerificationFailsTheBuild(t *testing.T) {
	addr, ca := redisconntest.TLSServer(t, "openTLSPassword")
	_, port, _ := strings.Cut(addr, ":")
	for _, tt := range []struct {
		name, addr string
		ca         []byte
	}{
		{"wrong CA", addr, redisconntest.CA(t)},
		{"name mismatch", "127.0.0.1:" + port, ca},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rdb, err := redisconn.Open(context.Background(), redisconn.Options(
				redisconntest.FromTLSSecrets(t, tt.addr, "openTLSPassword", tt.ca, redisconn.ConfigFrom)))
			if err == nil {
				_ = rdb.Close()
				t.Fatalf("Open with a certificate that fails verification returned a client, want an error")
			}
			if rdb != nil || !redisconn.TLSFailed(err) || redisconn.AuthFailed(err) ||
				!strings.Contains(err.Error(), redisconn.Refused(err)) || !strings.Contains(err.Error(), "redis-ca") ||
				strings.Contains(err.Error(), "openTLSPassword") {
				t.Errorf("Open = %v, %v; want no client and an error naming redis-ca, not the password", rdb, err)
			}
		})
	}
	rdb, err := redisconn.Open(context.Background(), redisconn.Options(
		redisconntest.FromTLSSecrets(t, addr, "openTLSPassword", ca, redisconn.ConfigFrom)))
	if err != nil {
		t.Fatalf("Open with its CA = %v, want a client", err)
	}
	_ = rdb.Close()
}
