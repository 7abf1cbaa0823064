package cartredis_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

func TestLinesRoundTripAndTTL(t *testing.T) {
	s, rdb, cfg := cartredistest.New(t, time.Hour)
	ctx := context.Background()
	user := uuid.Must(uuid.NewV7())
	a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())

	if err := s.SetLine(ctx, user, b, 2, 50); err != nil {
		t.Fatal(err)
	}
	// Age the cart, then write again: the TTL must be restarted.
	if err := rdb.PExpire(ctx, cfg.KeyPrefix+user.String(), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLine(ctx, user, a, 1, 50); err != nil {
		t.Fatal(err)
	}
	if ttl, err := s.TTL(ctx, user); err != nil || ttl < 59*time.Minute {
		t.Fatalf("TTL after write = %v, %v; want about an hour", ttl, err)
	}
	// Garbage in the hash is ignored, not fatal.
	rdb.HSet(ctx, cfg.KeyPrefix+user.String(), "not-a-uuid", "3", uuid.NewString(), "lots")
	lines, err := s.Lines(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cart.Line{{ProductID: a, Quantity: 1}, {ProductID: b, Quantity: 2}}, lines); diff != "" {
		t.Fatalf("lines (-want +got):\n%s", diff)
	}
	if err := s.Remove(ctx, user, a); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLine(ctx, user, b, 0, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(ctx, user); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, cfg.KeyPrefix+user.String()).Val(); n != 0 {
		t.Fatal("cart key still exists after Clear")
	}
	if lines, err := s.Lines(ctx, user); err != nil || len(lines) != 0 {
		t.Fatalf("lines of a cleared cart = %v, %v", lines, err)
	}
}

// Many concurrent new lines never push a cart past the limit.
func TestLineLimitIsAtomic(t *testing.T) {
	s, _, _ := cartredistest.New(t, time.Hour)
	ctx := context.Background()
	user := uuid.Must(uuid.NewV7())
	const limit, writers = 5, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	full := 0
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.SetLine(ctx, user, uuid.Must(uuid.NewV7()), 1, limit)
			if err != nil && !fault.Is(err, fault.Invalid, "cart_full") {
				t.Errorf("SetLine: %v", err)
			}
			if err != nil {
				mu.Lock()
				full++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	lines, err := s.Lines(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != limit || full != writers-limit {
		t.Fatalf("%d lines, %d refused; want %d and %d", len(lines), full, limit, writers-limit)
	}
}

// SetLineIfUnchanged refuses only a line that a line added since the cart was
// read may mix with another currency: one not known to the caller while the
// cart's recorded currency is another (or none). Lines of the recorded
// currency are no obstacle, and a cart whose lines the caller all knew takes
// the caller's currency (the catalog may have changed one). The recorded
// currency is never a line, and does not count against the limit.
func TestSetLineIfUnchangedRefusesOnlyAnotherCurrency(t *testing.T) {
	s, _, _ := cartredistest.New(t, time.Hour)
	ctx := context.Background()
	user := uuid.Must(uuid.NewV7())
	a, b, c, d := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	// A line SetLine wrote has no recorded currency: an add that did not
	// know it is refused, whatever its currency.
	if err := s.SetLine(ctx, user, a, 1, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLineIfUnchanged(ctx, user, b, 1, 3, "USD", nil); err != cart.ErrChanged {
		t.Fatalf("add beside an unknown line of no recorded currency: %v, want ErrChanged", err)
	}
	if err := s.SetLineIfUnchanged(ctx, user, b, 1, 3, "USD", []uuid.UUID{a}); err != nil {
		t.Fatalf("add that knew the cart: %v", err)
	}
	// b recorded USD: an add of USD that knew neither line passes, one of
	// EUR is refused.
	if err := s.SetLineIfUnchanged(ctx, user, c, 2, 3, "USD", nil); err != nil {
		t.Fatalf("add of the recorded currency: %v", err)
	}
	if err := s.SetLineIfUnchanged(ctx, user, d, 1, 4, "EUR", []uuid.UUID{a, b}); err != cart.ErrChanged {
		t.Fatalf("add of another currency beside an unknown line: %v, want ErrChanged", err)
	}
	// The recorded currency does not count as a line: the cart of 3 is full.
	if err := s.SetLineIfUnchanged(ctx, user, d, 1, 3, "USD", nil); err != cart.ErrFull {
		t.Fatalf("a 4th line in a cart of 3: %v, want ErrFull", err)
	}
	// A caller that knew every line decides the currency (the catalog moved
	// them to EUR).
	if err := s.SetLineIfUnchanged(ctx, user, a, 5, 3, "EUR", []uuid.UUID{a, b, c}); err != nil {
		t.Fatalf("change by a caller that knew every line: %v", err)
	}
	if err := s.SetLineIfUnchanged(ctx, user, d, 1, 4, "EUR", nil); err != nil {
		t.Fatalf("add of the newly recorded currency: %v", err)
	}
	lines, err := s.Lines(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 4 {
		t.Fatalf("lines %v, want 4 (the recorded currency is not a line)", lines)
	}
	// Removing every line deletes the cart, its recorded currency too.
	for _, p := range []uuid.UUID{a, b, c, d} {
		if err := s.SetLine(ctx, user, p, 0, 4); err != nil {
			t.Fatal(err)
		}
	}
	if ttl, err := s.TTL(ctx, user); err != nil || ttl >= 0 {
		t.Fatalf("TTL of an emptied cart: %v, %v; want no cart", ttl, err)
	}
}

// Remove (cartsvc's drop of lines whose product left the catalog) deletes a
// cart whose last line it removes, its recorded currency too, and leaves a
// cart that still holds a line with its currency.
func TestRemovingTheLastLinesDeletesTheCart(t *testing.T) {
	s, rdb, cfg := cartredistest.New(t, time.Hour)
	ctx := context.Background()
	user := uuid.Must(uuid.NewV7())
	a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	for _, p := range []uuid.UUID{a, b} {
		if err := s.SetLineIfUnchanged(ctx, user, p, 1, 3, "USD", []uuid.UUID{a, b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Remove(ctx, user, a); err != nil {
		t.Fatal(err)
	}
	if got := rdb.HGetAll(ctx, cfg.KeyPrefix+user.String()).Val(); len(got) != 2 || got["currency"] != "USD" || got[b.String()] != "1" {
		t.Fatalf("cart after removing one of two lines: %v, want b's line and its currency", got)
	}
	if err := s.Remove(ctx, user, b, a); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, cfg.KeyPrefix+user.String()).Val(); n != 0 {
		t.Fatalf("cart after removing its last line still exists (%v)", rdb.HGetAll(ctx, cfg.KeyPrefix+user.String()).Val())
	}
}

// RemoveOrdered takes out only the lines that still hold the ordered
// quantity; once nothing is left, the cart is gone.
func TestRemoveOrderedLeavesWhatChanged(t *testing.T) {
	s, rdb, cfg := cartredistest.New(t, time.Hour)
	ctx := context.Background()
	user := uuid.Must(uuid.NewV7())
	ordered, changed, added := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	for _, l := range []cart.Line{{ProductID: ordered, Quantity: 2}, {ProductID: changed, Quantity: 5}, {ProductID: added, Quantity: 1}} {
		if err := s.SetLine(ctx, user, l.ProductID, l.Quantity, 50); err != nil {
			t.Fatal(err)
		}
	}
	// The order bought 2 of ordered and 3 of changed (set to 5 since), and a
	// product the cart no longer holds.
	gone := uuid.Must(uuid.NewV7())
	if err := s.RemoveOrdered(ctx, user, uuid.Must(uuid.NewV7()), []cart.Line{{ProductID: ordered, Quantity: 2}, {ProductID: changed, Quantity: 3}, {ProductID: gone, Quantity: 1}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	lines, err := s.Lines(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	want := []cart.Line{{ProductID: changed, Quantity: 5}, {ProductID: added, Quantity: 1}}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Fatalf("lines (-want +got):\n%s", diff)
	}
	// A quantity written in another form is still the ordered one.
	if err := rdb.HSet(ctx, cfg.KeyPrefix+user.String(), added.String(), "01").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveOrdered(ctx, user, uuid.Must(uuid.NewV7()), want, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, cfg.KeyPrefix+user.String()).Val(); n != 0 {
		t.Fatal("cart key still exists once every line was ordered")
	}
	if err := s.RemoveOrdered(ctx, user, uuid.Must(uuid.NewV7()), nil, time.Hour); err != nil {
		t.Fatal(err)
	}
}

// An order's lines are taken out of the cart once: a removal made again
// while its mark lives (its answer was lost, or its settlement not
// recorded, and recovery makes it again) takes nothing, so a line the
// customer set back to the ordered quantity since stays; another order's
// removal still takes it, and the mark lives as long as asked. Until
// 2026-12-05 the second removal took the line again.
func TestAnOrdersLinesAreTakenOutOnce(t *testing.T) {
	s, rdb, cfg := cartredistest.New(t, time.Hour)
	ctx := context.Background()
	user, order, product := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	ordered := []cart.Line{{ProductID: product, Quantity: 2}}
	set := func() {
		t.Helper()
		if err := s.SetLine(ctx, user, product, 2, 50); err != nil {
			t.Fatal(err)
		}
	}
	held := func() int {
		t.Helper()
		lines, err := s.Lines(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return len(lines)
	}
	set()
	if err := s.RemoveOrdered(ctx, user, order, ordered, time.Hour); err != nil || held() != 0 {
		t.Fatalf("first removal: %v, %d lines left; want none", err, held())
	}
	set() // the customer sets it back
	if err := s.RemoveOrdered(ctx, user, order, ordered, time.Hour); err != nil || held() != 1 {
		t.Fatalf("the same order's removal again: %v, %d lines left; want the line set back", err, held())
	}
	if err := s.RemoveOrdered(ctx, user, uuid.Must(uuid.NewV7()), ordered, time.Hour); err != nil || held() != 0 {
		t.Fatalf("another order's removal: %v, %d lines left; want none", err, held())
	}
	mark := cfg.KeyPrefix + "taken:" + order.String()
	ttl := rdb.PTTL(ctx, mark).Val()
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("the removal's mark lives %v; want the hour asked for", ttl)
	}
	// Once the removal is recorded as settled, the mark goes.
	if err := s.ForgetRemoval(ctx, order); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, mark).Val(); n != 0 {
		t.Fatal("the removal's mark is still there after ForgetRemoval")
	}
}

// A cart store read from the configuration works against a Redis that
// requires a password when the redis-password secret holds it; without the
// secret its client is not built: Redis refuses the login (NOAUTH), an error
// naming the secret, so the function's build fails (redisconn.Open). A
// login refused after the build (the password changed on Redis's side) is
// answered as the cart being unavailable.
func TestTheCartStoreLogsInWithTheRedisPasswordSecret(t *testing.T) {
	addr := redisconntest.Server(t, "cartTestPassword")
	ctx := context.Background()
	user, product := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	store := func(secret string) (*cartredis.Store, error) {
		cfg := redisconntest.FromSecret(t, addr, secret, cartredis.ConfigFrom)
		rdb, err := cartredis.NewClient(ctx, cfg.Redis)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = rdb.Close() })
		return cartredis.New(rdb, cfg), nil
	}

	if _, err := store(""); err == nil || !strings.Contains(err.Error(), "NOAUTH") || !strings.Contains(err.Error(), "redis-password") {
		t.Errorf("NewClient without the secret = %v, want an error naming NOAUTH and the redis-password secret", err)
	}

	with, err := store("cartTestPassword\n")
	if err != nil {
		t.Fatalf("NewClient with the secret: %v", err)
	}
	if err := with.SetLine(ctx, user, product, 2, 50); err != nil {
		t.Fatalf("SetLine with the secret: %v", err)
	}
	lines, err := with.Lines(ctx, user)
	if err != nil || !cmp.Equal(lines, []cart.Line{{ProductID: product, Quantity: 2}}) {
		t.Errorf("Lines with the secret = %v, %v", lines, err)
	}
	redisconntest.SetDefaultUser(t, addr, "cartTestPassword", "resetpass", ">rotatedPassword")
	err = with.SetLine(ctx, user, product, 3, 50)
	if !fault.Is(err, fault.Unavailable, fault.CodeUnavailable) || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("SetLine once the password changed = %v, want Unavailable naming WRONGPASS", err)
	}
}

// TestACartTTLBelowAMinuteIsRefused: CART_TTL under 1 minute (30s typed for
// 30d) is a configuration error naming the variable, not raised to 1 minute
// without a word; 1 minute and the default are accepted.
func TestACartTTLBelowAMinuteIsRefused(t *testing.T) {
	for _, tc := range []struct {
		ttl     string
		refused bool
	}{{"30s", true}, {"59", true}, {"1m", false}, {"", false}} {
		env := map[string]string{"REDIS_ADDR": "127.0.0.1:6379", "SECRETS_DIR": t.TempDir()}
		if tc.ttl != "" {
			env["CART_TTL"] = tc.ttl
		}
		c := config.New(config.Env(env))
		cfg := cartredis.ConfigFrom(c)
		err := c.Err()
		if tc.refused && (err == nil || !strings.Contains(err.Error(), "CART_TTL")) {
			t.Errorf("CART_TTL=%q: err %v (TTL %v), want one naming CART_TTL", tc.ttl, err, cfg.TTL)
		}
		if !tc.refused && (err != nil || cfg.TTL < time.Minute) {
			t.Errorf("CART_TTL=%q: err %v, TTL %v", tc.ttl, err, cfg.TTL)
		}
	}
}
