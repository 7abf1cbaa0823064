package ordersenv_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersenv"
	"github.com/shopfaas/shop/internal/ratelimit"
)

type countingPlacer struct{ n int }

func (c *countingPlacer) Place(context.Context, auth.Identity, orders.PlaceRequest, string) (orders.Checkout, error) {
	c.n++
	return orders.Checkout{}, nil
}

// TestCheckoutLimitIsPerVerifiedSubject: the limit counts the token's
// subject, so however a client writes its Authorization header (finding 2 of
// issue 12 got one bucket per spelling at the edge) one customer has one
// budget, and another customer has their own.
func TestCheckoutLimitIsPerVerifiedSubject(t *testing.T) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "test:" + hex.EncodeToString(b) + ":checkout:"
	rdb := redis.NewClient(&redis.Options{Addr: cartredistest.Addr()})
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	limit, err := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Limit: 3, Window: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	next := &countingPlacer{}
	p := &ordersenv.LimitedPlacer{Next: next, Limit: limit}
	tokens := fntest.Tokens(t, 0)
	alice, bob := uuid.New(), uuid.New()
	token := fntest.Issue(t, tokens, alice, auth.RoleCustomer)
	h := fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
		who, err := tokens.FromRequest(r)
		if err != nil {
			return err
		}
		_, err = p.Place(r.Context(), who, orders.PlaceRequest{}, "")
		return err
	})
	var codes []int
	for _, header := range []string{"Bearer " + token, "bearer " + token, "BEARER  " + token, "Bearer " + token + " ", "bEaReR " + token} {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/orders", nil)
		r.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		h(rec, r)
		codes = append(codes, rec.Code)
		if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if want := []int{200, 200, 200, 429, 429}; !slices.Equal(codes, want) || next.n != 3 {
		t.Errorf("answers %v (checkouts run %d), want %v and 3", codes, next.n, want)
	}
	if _, err := p.Place(context.Background(), auth.Identity{UserID: bob, Role: auth.RoleCustomer}, orders.PlaceRequest{}, ""); err != nil {
		t.Errorf("another customer is limited by the first one's checkouts: %v", err)
	}
	_, err = p.Place(context.Background(), auth.Identity{UserID: alice, Role: auth.RoleCustomer}, orders.PlaceRequest{}, "")
	if !fault.Is(err, fault.RateLimited, fault.CodeRateLimited) {
		t.Errorf("past the limit: %v, want rate_limited", err)
	}
}
