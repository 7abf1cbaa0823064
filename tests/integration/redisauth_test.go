package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/dev/faaslocal"
	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// The cart functions and get-product, served by the local runtime as on
// faasd, work against a Redis that requires a password when the runtime
// holds it as the redis-password secret (what the functions declare in
// stack.yml): the cart lives in that Redis, and get-product's cache entry
// too. With the secret empty, as in development, the same functions are
// refused by that Redis and the cart answers 503. The edge's rate limit
// counts in that Redis too, as Kong's ACL user kong (made with
// docker-compose.yml's rules for it) with the
// redis-kong-password secret (Kong's username: kong and
// {vault://env/shop-redis-kong-password}): with the secrets the first cart write of a token carries RateLimit-Remaining
// 119 of set-cart-item's 120 a minute; without it the count fails, the
// request is let through (fault_tolerant) and no RateLimit header is sent,
// so a 200 alone never shows the edge logged in.
func TestTheCartWorksOnARedisThatRequiresThePasswordSecret(t *testing.T) {
	const password = "itestRedisPassword"
	const kongPassword = "itestRedisKongPassword"
	addr := redisconntest.Server(t, password)
	redisconntest.ComposeUser(t, addr, password, "kong", kongPassword)
	catalogURL := pgtest.NewDatabase(t)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, postgres.Config{URL: catalogURL, Migrations: catalogdb.Migrations(), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p, err := catalog.NewProduct(catalog.Draft{SKU: "IT-AUTH-1", Name: "Item", Category: "test",
		Price: catalog.Money{Amount: 700, Currency: "USD"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p, err = catalogdb.New(pool).Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CATALOG_DATABASE_URL": catalogURL, "REDIS_ADDR": addr,
		"CART_KEY_PREFIX": "cart:", "PRODUCT_CACHE_PREFIX": "product:"}
	// start runs the functions with secret as redis-password (and the
	// edge with kongSecret as redis-kong-password) and returns
	// the edge's API and a customer's token (each runtime has its own keys).
	start := func(secret, kongSecret string, user uuid.UUID) (edge, token string) {
		rt := runtimetest.Start(t, runtimetest.Options{
			Functions:    []string{"get-product", "get-cart", "set-cart-item"},
			Env:          env,
			Secrets:      map[string]string{redisconn.PasswordSecret: secret, faaslocal.KongRedisPasswordSecret: kongSecret},
			ReadyTimeout: 3 * time.Minute,
		})
		signer, err := auth.ParseSigner(rt.ReadSecret(t, "jwt-signing-key"), 0)
		if err != nil {
			t.Fatal(err)
		}
		token, err = signer.Issue(user, auth.RoleCustomer)
		if err != nil {
			t.Fatal(err)
		}
		return rt.EdgeURL + "/api/v1", token
	}

	user := uuid.Must(uuid.NewV7())
	edge, token := start(password, kongPassword, user)
	var v cart.View
	got, h := callWith(t, http.MethodPut, edge+"/cart/items/"+p.ID.String(), token, nil, map[string]any{"quantity": 2}, &v)
	if got != 200 {
		t.Fatalf("set-cart-item with the secret: %d, want 200", got)
	}
	if limit, remaining := h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"); limit != "120" || remaining != "119" {
		t.Errorf("set-cart-item with the secret: RateLimit-Limit %q, RateLimit-Remaining %q; want 120 and 119 (the edge counted in Redis)",
			limit, remaining)
	}
	if got := call(t, http.MethodGet, edge+"/cart", token, nil, &v); got != 200 || len(v.Items) != 1 || v.Total.Amount != 1400 {
		t.Fatalf("get-cart with the secret: %d %+v", got, v)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password})
	defer rdb.Close()
	if n, err := rdb.Exists(ctx, "cart:"+user.String(), "product:"+p.ID.String()).Result(); err != nil || n != 2 {
		t.Errorf("the cart and the cached product in the password-protected Redis: %d of 2 keys (%v)", n, err)
	}

	edge, token = start("", "", user)
	if got := call(t, http.MethodGet, edge+"/cart", token, nil, nil); got != http.StatusServiceUnavailable {
		t.Errorf("get-cart without the secret: %d, want 503 (Redis refuses it: NOAUTH)", got)
	}
	got, h = callWith(t, http.MethodPut, edge+"/cart/items/"+p.ID.String(), token, nil, map[string]any{"quantity": 1}, nil)
	if got != http.StatusServiceUnavailable {
		t.Errorf("set-cart-item without the secret: %d, want 503 (Redis refuses the function: NOAUTH)", got)
	}
	if r := h.Get("RateLimit-Remaining"); r != "" {
		t.Errorf("set-cart-item without the secret: RateLimit-Remaining %q, want none (the edge's count is refused too)", r)
	}
}
