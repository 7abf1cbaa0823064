package function

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

func TestClearCart(t *testing.T) {
	store, _, _ := cartredistest.New(t, time.Hour)
	tokens := fntest.Tokens(t, 0)
	h := New(store, tokens, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	alice, bob := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	product := uuid.Must(uuid.NewV7())
	for _, u := range []uuid.UUID{alice, bob} {
		if err := store.SetLine(ctx, u, product, 3, 50); err != nil {
			t.Fatal(err)
		}
	}
	tok := fntest.Issue(t, tokens, alice, auth.RoleCustomer)

	del := func(authz string) int {
		req := httptest.NewRequest(http.MethodDelete, "/api/v1/cart", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	fntest.Problem(t, fntest.Do(t, h, http.MethodDelete, "/api/v1/cart", "", ""), http.StatusUnauthorized, "unauthenticated")
	if lines, err := store.Lines(ctx, alice); err != nil || len(lines) != 1 {
		t.Fatalf("alice's cart after a clear without a token = %v, %v; want it kept", lines, err)
	}
	if code := del("Bearer " + tok); code != http.StatusNoContent {
		t.Fatalf("clear: %d, want 204", code)
	}
	if lines, err := store.Lines(ctx, alice); err != nil || len(lines) != 0 {
		t.Fatalf("alice's cart after clear = %v, %v; want empty", lines, err)
	}
	if lines, err := store.Lines(ctx, bob); err != nil || len(lines) != 1 {
		t.Fatalf("bob's cart = %v, %v; clearing alice's must not touch it", lines, err)
	}
	if code := del("Bearer " + tok); code != http.StatusNoContent {
		t.Fatalf("clearing an empty cart: %d, want 204", code)
	}
	// Alice's id in the query and in headers is not read: bob's clear
	// empties bob's cart, and alice's stays.
	if err := store.SetLine(ctx, alice, product, 3, 50); err != nil {
		t.Fatal(err)
	}
	w := fntest.Do(t, h, http.MethodDelete, "/api/v1/cart"+fntest.PlantedQuery(alice), "", "",
		append([]string{"Authorization", fntest.Bearer(t, tokens, bob, auth.RoleCustomer)}, fntest.PlantedHeaders(alice)...)...)
	if w.Code != http.StatusNoContent {
		t.Fatalf("bob's clear with alice's id planted: %d %s, want 204", w.Code, w.Body)
	}
	if lines, err := store.Lines(ctx, alice); err != nil || len(lines) != 1 {
		t.Fatalf("alice's cart after bob's clear with her id planted = %v, %v; want it kept", lines, err)
	}
	if lines, err := store.Lines(ctx, bob); err != nil || len(lines) != 0 {
		t.Fatalf("bob's cart after his clear = %v, %v; want empty", lines, err)
	}
}

// Built from its configuration for a Redis that accepts only TLS
// (REDIS_TLS=true, the redis-ca secret, the redis-password secret), the
// function clears a cart there; with a redis-ca that did not issue Redis's
// certificate its build fails (redisconn.Open), so it is not ready, its log
// names redis-ca and never the password, it answers 503 and the cart stays:
// the failed verification is never a plain-text fallback, nor a ready
// function whose every call fails.
func TestClearCartReachesATLSRedisOnlyWithItsCA(t *testing.T) {
	addr, ca := redisconntest.TLSServer(t, "clearCartPassword")
	ctx := context.Background()
	cfg := redisconntest.FromTLSSecrets(t, addr, "clearCartPassword", ca, cartredis.ConfigFrom)
	rdb, err := cartredis.NewClient(ctx, cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	store := cartredis.New(rdb, cfg)
	alice, product := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	tokens := fntest.Tokens(t, 0)
	bearer := fntest.Bearer(t, tokens, alice, auth.RoleCustomer)

	lazy := func(ca []byte, log io.Writer) *fnhttp.Lazy {
		dir := t.TempDir()
		for name, content := range map[string][]byte{"jwt-verify-key": []byte(fntest.JWTVerifyKey),
			redisconn.PasswordSecret: []byte("clearCartPassword"), redisconn.CASecret: ca} {
			if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return fnhttp.NewLazy(Build, config.New(config.Env(map[string]string{config.SecretsDirEnv: dir, "REDIS_ADDR": addr,
			redisconn.TLSEnv: "true"})), slog.New(slog.NewTextHandler(log, nil)))
	}
	for _, tt := range []struct {
		name       string
		ca         []byte
		ready      bool
		want, kept int
	}{
		{"wrong CA", redisconntest.CA(t), false, http.StatusServiceUnavailable, 1},
		{"its CA", ca, true, http.StatusNoContent, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := store.SetLine(ctx, alice, product, 2, 50); err != nil {
				t.Fatal(err)
			}
			var logged bytes.Buffer
			h := lazy(tt.ca, &logged)
			err := h.Ready(ctx)
			if ready := err == nil; ready != tt.ready {
				t.Fatalf("Ready = %v, want ready %v; logged:\n%s", err, tt.ready, logged.String())
			}
			if !tt.ready && (!strings.Contains(logged.String(), "redis-ca") || strings.Contains(logged.String(), "clearCartPassword")) {
				t.Errorf("logged %q: want redis-ca named and the password not", logged.String())
			}
			if w := fntest.Do(t, h, http.MethodDelete, "/api/v1/cart", "", "", "Authorization", bearer); w.Code != tt.want {
				t.Errorf("DELETE /api/v1/cart = %d %s, want %d", w.Code, w.Body, tt.want)
			}
			if lines, err := store.Lines(ctx, alice); err != nil || len(lines) != tt.kept {
				t.Errorf("the cart after = %v, %v; want %d lines", lines, err, tt.kept)
			}
		})
	}
}

// While the cart store's Redis is away (stopped: every connection closed, new
// ones refused) clear-cart answers 503 unavailable, never 204, and the cart
// stays; once Redis is back (restarted) the same handler, not rebuilt,
// empties it.
func TestARedisOutageIsUnavailableNotCleared(t *testing.T) {
	store, proxy, direct := cartredistest.Proxied(t, time.Hour)
	tokens := fntest.Tokens(t, 0)
	h := New(store, tokens, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	alice, product := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	if err := direct.SetLine(ctx, alice, product, 3, 50); err != nil {
		t.Fatal(err)
	}
	bearer := fntest.Bearer(t, tokens, alice, auth.RoleCustomer)
	del := func() *httptest.ResponseRecorder {
		return fntest.Do(t, h, http.MethodDelete, "/api/v1/cart", "", "", "Authorization", bearer)
	}

	proxy.Cut()
	fntest.Problem(t, del(), http.StatusServiceUnavailable, "unavailable")
	if lines, err := direct.Lines(ctx, alice); err != nil || len(lines) != 1 {
		t.Fatalf("the cart after a refused clear = %v, %v; want its line", lines, err)
	}

	proxy.Restore()
	if w := del(); w.Code != http.StatusNoContent {
		t.Fatalf("clear once Redis is back: %d %s, want 204", w.Code, w.Body)
	}
	if lines, err := direct.Lines(ctx, alice); err != nil || len(lines) != 0 {
		t.Fatalf("the cart after the clear = %v, %v; want none", lines, err)
	}
}
