package function

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/fntest"
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
	if code := del(""); code != http.StatusUnauthorized {
		t.Fatalf("without token: %d, want 401", code)
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
}
