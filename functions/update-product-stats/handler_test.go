package function

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/cache"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/redisconn"
	"github.com/shopfaas/shop/internal/redisconn/redisconntest"
)

// credential is a caller update-product-stats accepts.
var credential = fntest.Caller("rabbitmq-connector")

func setup(t *testing.T) (*envtest.Env, http.Handler) {
	t.Helper()
	env := envtest.New(t, envtest.Options{})
	return env, New(env.Deps, fntest.Internal())
}

func orderEvent(t *testing.T, typ string, order uuid.UUID, lines ...orders.Line) string {
	t.Helper()
	data := orders.EventData{OrderID: order, UserID: uuid.New(), Status: orders.Confirmed, Items: lines,
		Total: orders.Money{Amount: 100, Currency: "USD"}}
	return fntest.Envelope(t, orders.Source, typ, data.OrderID.String(), data)
}

func deliver(t *testing.T, h http.Handler, body string) (int, Response) {
	t.Helper()
	w := envtest.Do(t, h, http.MethodPost, "/", body, "X-Internal-Token", credential, "Shop-Signature", fntest.Sign(body))
	var resp Response
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
	}
	return w.Code, resp
}

func sold(t *testing.T, env *envtest.Env, p catalog.Product) int64 {
	t.Helper()
	got, err := env.Store.Current(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got.SoldCount
}

func TestPlacedThenCancelledRestores(t *testing.T) {
	env, h := setup(t)
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	b := env.Create(t, "DESK-1", "Desk", "home", 5000)
	lines := []orders.Line{{ProductID: a.ID, Quantity: 2}, {ProductID: b.ID, Quantity: 1}}
	order := uuid.New()
	if code, resp := deliver(t, h, orderEvent(t, events.OrderPlaced, order, lines...)); code != 200 || resp.Updated != 2 {
		t.Fatalf("placed: %d %+v", code, resp)
	}
	if sold(t, env, a) != 2 || sold(t, env, b) != 1 {
		t.Fatalf("after placed: %d %d", sold(t, env, a), sold(t, env, b))
	}
	// The cache entry is the product at its new version.
	if _, v, _, err := env.Cache.Get(context.Background(), a.ID.String()); err != nil || v < 2 {
		t.Errorf("cache not updated: version %d, %v", v, err)
	}
	if code, _ := deliver(t, h, orderEvent(t, events.OrderCancelled, order, lines...)); code != 200 {
		t.Fatalf("cancelled: %d", code)
	}
	if sold(t, env, a) != 0 || sold(t, env, b) != 0 {
		t.Errorf("after cancelled: %d %d, want 0 0", sold(t, env, a), sold(t, env, b))
	}
}

// The order.cancelled.v1 of an order cancelled before it was placed (out of
// stock, or refused, at checkout or in its recovery: no order.placed.v1 ever
// comes) counts nothing: another order's sale stays counted.
func TestACancellationOfAnOrderNeverPlacedCountsNothing(t *testing.T) {
	env, h := setup(t)
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	if code, _ := deliver(t, h, orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 3})); code != 200 {
		t.Fatalf("placed: %d", code)
	}
	code, resp := deliver(t, h, orderEvent(t, events.OrderCancelled, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 2}))
	if code != 200 || resp.Updated != 0 {
		t.Fatalf("a cancellation of an order never placed: %d %+v; want 200, nothing updated", code, resp)
	}
	if got := sold(t, env, a); got != 3 {
		t.Errorf("sold %d after a cancellation of an order never placed, want the other order's 3", got)
	}
}

// TestASaleLeavesTheProductInTheCache: after a sale the product's cache entry
// is the product as the sale committed it, byte for byte what get-product
// would read and cache (so the next order's pricing reads no database), and
// never the entry of an archived product, which get-product must answer 404.
func TestASaleLeavesTheProductInTheCache(t *testing.T) {
	env, h := setup(t)
	ctx := context.Background()
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	if code, _ := deliver(t, h, orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 2})); code != 200 {
		t.Fatalf("placed: %d", code)
	}
	cacheHoldsLive(t, env, a.ID, "after the sale")

	archived, err := env.Store.Update(ctx, a.ID, func(p catalog.Product, now time.Time) (catalog.Product, error) {
		return catalog.Archive(p, now)
	})
	if err != nil {
		t.Fatal(err)
	}
	env.Committed(ctx, archived)
	if code, _ := deliver(t, h, orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 1})); code != 200 {
		t.Fatalf("placed after archiving: %d", code)
	}
	if sold(t, env, a) != 3 {
		t.Fatalf("sold count %d, want 3", sold(t, env, a))
	}
	if body, v, ok, err := env.Cache.Get(ctx, a.ID.String()); err != nil || ok {
		t.Errorf("an archived product is in the cache at version %d: %s (%v)", v, body, err)
	}
}

// The same event delivered twice, then ten times concurrently, counts once.
func TestDuplicateDeliveryCountsOnce(t *testing.T) {
	env, h := setup(t)
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	body := orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 3})
	if code, resp := deliver(t, h, body); code != 200 || resp.Duplicate {
		t.Fatalf("first: %d %+v", code, resp)
	}
	if code, resp := deliver(t, h, body); code != 200 || !resp.Duplicate || resp.Updated != 0 {
		t.Fatalf("second: %d %+v", code, resp)
	}
	if n := sold(t, env, a); n != 3 {
		t.Fatalf("sold %d, want 3", n)
	}
	body = orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 1})
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, resp := deliver(t, h, body)
			if code != 200 {
				t.Errorf("concurrent delivery: %d", code)
			}
			mu.Lock()
			if !resp.Duplicate {
				firsts++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if n := sold(t, env, a); n != 4 || firsts != 1 {
		t.Errorf("sold %d (want 4), %d first deliveries (want 1)", n, firsts)
	}
}

func TestRefusals(t *testing.T) {
	env, h := setup(t)
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	good := orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 1})
	tests := []struct {
		name   string
		body   string
		header []string
		want   int
	}{
		{"no credential", good, nil, 401},
		{"wrong credential", good, []string{"X-Internal-Token", "nope"}, 401},
		// Per-caller credentials: a signed event from any caller but the
		// RabbitMQ connector is 403, even with a valid credential.
		{"create-order's credential", good, []string{"X-Internal-Token", fntest.Caller("create-order")}, 403},
		{"the scheduler's credential", good, []string{"X-Internal-Token", fntest.Caller("scheduler")}, 403},
		{"an operator's credential", good, []string{"X-Internal-Token", fntest.Caller("operator")}, 403},
		{"not json", `{"specversion":`, []string{"X-Internal-Token", credential}, 400},
		{"not an envelope", `{"order_id":"x"}`, []string{"X-Internal-Token", credential}, 400},
		{"id not a uuid", `{"specversion":"1.0","id":"7","source":"s","type":"order.placed.v1","data":{}}`,
			[]string{"X-Internal-Token", credential}, 400},
		{"no items", orderEvent(t, events.OrderPlaced, uuid.New()), []string{"X-Internal-Token", credential}, 400},
		{"other type", orderEvent(t, events.OrderPaymentFailed, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 1}),
			[]string{"X-Internal-Token", credential}, 422},
		// Issue 12, finding 5: the internal credential alone no longer makes
		// an event (sold_count went from 1 to 1,000,000 with a forged one).
		{"unsigned", orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 1000000}),
			[]string{"X-Internal-Token", credential, "Shop-Signature", ""}, 403},
		{"forged with a genuine event's signature", orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 1000000}),
			[]string{"X-Internal-Token", credential, "Shop-Signature", fntest.Sign(good)}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if len(header) == 2 { // the connector passes on the relay's signature
				header = append(header, "Shop-Signature", fntest.Sign(tt.body))
			}
			w := envtest.Do(t, h, http.MethodPost, "/", tt.body, header...)
			if w.Code != tt.want {
				t.Errorf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
		})
	}
	// Every caller but the RabbitMQ connector, with the genuine signature.
	fntest.RefusesOtherCallers(t, h, "update-product-stats", good, "Shop-Signature", fntest.Sign(good))
	if n := sold(t, env, a); n != 0 {
		t.Errorf("a refused delivery changed sold_count to %d", n)
	}
}

// TestSoldCountsReachTheExternalIndexThroughRedelivery: a sale writes no
// product.changed.v1, so update-product-stats pushes the new counts to the
// external index itself. While the index is down the delivery fails (503)
// after the counts committed; the redelivery, a duplicate for the inbox,
// pushes the products' current counts and succeeds, and so does any later
// duplicate, without counting the sale twice.
func TestSoldCountsReachTheExternalIndexThroughRedelivery(t *testing.T) {
	env, h := setup(t)
	ext := envtest.NewMeili()
	env.External = ext
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	b := env.Create(t, "DESK-1", "Desk", "home", 5000)
	body := orderEvent(t, events.OrderPlaced, uuid.New(),
		orders.Line{ProductID: a.ID, Quantity: 2}, orders.Line{ProductID: b.ID, Quantity: 1})

	ext.SetDown(true)
	if code, _ := deliver(t, h, body); code != http.StatusServiceUnavailable {
		t.Fatalf("delivery while the index is down: %d, want 503 (the connector delivers again)", code)
	}
	if sold(t, env, a) != 2 || sold(t, env, b) != 1 {
		t.Fatalf("sold counts %d %d after the failed push, want 2 1 (committed)", sold(t, env, a), sold(t, env, b))
	}

	ext.SetDown(false)
	for i := range 2 {
		code, resp := deliver(t, h, body)
		if code != http.StatusOK || !resp.Duplicate {
			t.Fatalf("redelivery %d: %d %+v, want 200 duplicate", i+1, code, resp)
		}
		if d, ok := ext.Doc(a.ID); !ok || d.SoldCount != 2 {
			t.Errorf("redelivery %d: the index has sold_count %d (%v) for the lamp, want 2", i+1, d.SoldCount, ok)
		}
		if d, ok := ext.Doc(b.ID); !ok || d.SoldCount != 1 {
			t.Errorf("redelivery %d: the index has sold_count %d (%v) for the desk, want 1", i+1, d.SoldCount, ok)
		}
	}
	if sold(t, env, a) != 2 || sold(t, env, b) != 1 {
		t.Errorf("sold counts %d %d after the redeliveries, want 2 1", sold(t, env, a), sold(t, env, b))
	}

	// A sale delivered while the index is up reaches it at once.
	code, _ := deliver(t, h, orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 3}))
	if d, _ := ext.Doc(a.ID); code != http.StatusOK || d.SoldCount != 5 {
		t.Errorf("a sale with the index up: %d, index sold_count %d; want 200, 5", code, d.SoldCount)
	}
}

// TestASlowPushNeverLeavesTheIndexBehind: pushes to the external index race,
// and the index keeps the one that lands last. Here a sale's push is
// overtaken, before it lands, by another sale's push and then by an admin's
// archive and its removal from the index. The sale's push must still leave
// the index at the product's current state, not at what it read: not the
// archived lamp back in the results, not a sold count gone down.
func TestASlowPushNeverLeavesTheIndexBehind(t *testing.T) {
	for _, archive := range []bool{false, true} {
		t.Run(map[bool]string{false: "overtaken by a sale", true: "overtaken by an archive"}[archive], func(t *testing.T) {
			env, h := setup(t)
			ext := envtest.NewMeili()
			env.External = ext
			a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
			ext.BeforeNextUpsert(func() {
				if code, _ := deliver(t, h, orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 3})); code != http.StatusOK {
					t.Errorf("the overtaking sale: %d", code)
				}
				if !archive {
					return
				}
				p, err := env.Store.Update(context.Background(), a.ID, func(p catalog.Product, now time.Time) (catalog.Product, error) {
					p.Archived = true
					return p, nil
				})
				if err != nil {
					t.Fatal(err)
				}
				env.Committed(context.Background(), p)
			})
			if code, _ := deliver(t, h, orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 2})); code != http.StatusOK {
				t.Fatalf("the slow sale: %d", code)
			}
			d, ok := ext.Doc(a.ID)
			switch {
			case archive && ok:
				t.Errorf("the index has the archived lamp (sold_count %d), want it removed", d.SoldCount)
			case !archive && (!ok || d.SoldCount != 5):
				t.Errorf("the index has sold_count %d (%v), want 5 (both sales)", d.SoldCount, ok)
			}
		})
	}
}

// A product that changes again before every push lands fails the delivery
// after a bounded number of pushes (the connector delivers it again), instead
// of chasing it for ever.
func TestAPushGivesUpOnAProductThatKeepsChanging(t *testing.T) {
	env, h := setup(t)
	ext := envtest.NewMeili()
	env.External = ext
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	pushes := 0
	var change func()
	change = func() {
		pushes++
		if _, err := env.Store.SetSoldCount(context.Background(), a.ID, int64(100+pushes)); err != nil {
			t.Error(err)
		}
		ext.BeforeNextUpsert(change)
	}
	ext.BeforeNextUpsert(change)
	if code, _ := deliver(t, h, orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 2})); code != http.StatusServiceUnavailable {
		t.Errorf("delivery: %d, want 503", code)
	}
	if pushes < 2 || pushes > 10 {
		t.Errorf("%d pushes, want a few and a bound", pushes)
	}
}

// TestASaleWhosePushWaitsInMeilisearchsQueueFailsWithinItsBound: a
// Meilisearch that accepts the push but leaves its task queued held the
// delivery for ever (the work after the commit had no deadline), past the
// connector's INVOKE_TIMEOUT, so every redelivery hung the same way until the
// event was dead-lettered. The delivery must fail (503, delivered again)
// within the bound, with the sale committed, and stop polling.
func TestASaleWhosePushWaitsInMeilisearchsQueueFailsWithinItsBound(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	ext := envtest.NewQueuedMeili(t)
	env.External = ext
	h := newHandler(env.Deps, fntest.Internal(), 200*time.Millisecond)
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	body := orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 2})
	type answer struct {
		code int
		took time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		start := time.Now()
		code, _ := deliver(t, h, body)
		done <- answer{code, time.Since(start)}
	}()
	var got answer
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("the delivery is still waiting for the Meilisearch task 10 s later (bound 200 ms; %d polls)", ext.Polls())
	}
	if got.code != http.StatusServiceUnavailable {
		t.Errorf("delivery: %d, want 503 (the connector delivers it again)", got.code)
	}
	if got.took > 3*time.Second {
		t.Errorf("the delivery took %v, want about its bound of 200 ms", got.took)
	}
	if ext.Polls() == 0 {
		t.Fatal("the push never polled its task: the test shows nothing")
	}
	if n := sold(t, env, a); n != 2 {
		t.Errorf("sold_count %d after the push was cut short, want 2 (committed)", n)
	}
	polls := ext.Polls()
	time.Sleep(100 * time.Millisecond)
	if n := ext.Polls(); n != polls {
		t.Errorf("the task was polled %d more times after the delivery was answered", n-polls)
	}
	if AfterCommitTimeout >= 30*time.Second {
		t.Errorf("AfterCommitTimeout %v, want below exec_timeout (30 s) and INVOKE_TIMEOUT (35 s)", AfterCommitTimeout)
	}
}

// TestADuplicateRefreshesTheCacheTheFirstDeliveryMissed: a sale whose cache
// write was lost (Redis failed, the function crashed after the commit, or the
// commit's answer was lost and the delivery failed) left get-product serving
// the old sold_count and version, so the old ETag, until PRODUCT_CACHE_TTL.
// The connector's redelivery, a duplicate for the inbox, must write the
// products' current rows to the cache.
func TestADuplicateRefreshesTheCacheTheFirstDeliveryMissed(t *testing.T) {
	env, h := setup(t)
	ctx := context.Background()
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	env.Remember(ctx, a) // get-product cached the lamp before the sale
	body := orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 2})

	// The first delivery commits, but writes nothing to the cache.
	noCache := New(&catalogenv.Deps{Store: env.Store, Events: env.Events, Log: env.Log}, fntest.Internal())
	if code, resp := deliver(t, noCache, body); code != http.StatusOK || resp.Duplicate {
		t.Fatalf("first delivery: %d %+v", code, resp)
	}
	if _, v, _, err := env.Cache.Get(ctx, a.ID.String()); err != nil || v != a.Version {
		t.Fatalf("after the first delivery the cache holds version %d (%v), want the old %d: the test shows nothing", v, err, a.Version)
	}

	if code, resp := deliver(t, h, body); code != http.StatusOK || !resp.Duplicate {
		t.Fatalf("redelivery: %d %+v, want 200 duplicate", code, resp)
	}
	cacheHoldsLive(t, env, a.ID, "after the redelivery")
}

// cacheHoldsLive checks that the product cache holds product id exactly as
// the catalog has it now, after a sale of 2 units (sold_count 2).
func cacheHoldsLive(t *testing.T, env *envtest.Env, id uuid.UUID, when string) {
	t.Helper()
	ctx := context.Background()
	live, err := env.Store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(live)
	if err != nil {
		t.Fatal(err)
	}
	got, v, ok, err := env.Cache.Get(ctx, id.String())
	if err != nil || !ok || v != live.Version || string(got) != string(want) || live.SoldCount != 2 {
		t.Errorf("%s the cache holds version %d (ok %v, %v):\n%s\nwant version %d:\n%s", when, v, ok, err, got, live.Version, want)
	}
}

// TestASaleWhoseCacheWriteFailedIsDeliveredAgain: a sale that committed but
// could not write its products to the cache (Redis refused or timed out
// while the entry of the old version stayed there) must fail its delivery,
// so that the connector's redelivery, a duplicate for the inbox, caches the
// products' current rows; answered 200, get-product served the old
// sold_count and ETag until PRODUCT_CACHE_TTL. Nothing is counted twice.
func TestASaleWhoseCacheWriteFailedIsDeliveredAgain(t *testing.T) {
	env, h := setup(t)
	ctx := context.Background()
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	env.Remember(ctx, a) // get-product cached the lamp before the sale
	body := orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 2})

	down, err := cache.New(cache.Config{Redis: redisconn.Config{Addr: "127.0.0.1:1"}, Prefix: env.Prefix, TTL: time.Minute,
		Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { down.Close() })
	failing := New(&catalogenv.Deps{Store: env.Store, Cache: down, Events: env.Events, Log: env.Log}, fntest.Internal())
	if code, _ := deliver(t, failing, body); code != http.StatusServiceUnavailable {
		t.Fatalf("a sale whose cache write failed: %d, want 503 (delivered again)", code)
	}
	if _, v, _, err := env.Cache.Get(ctx, a.ID.String()); err != nil || v != a.Version {
		t.Fatalf("after the failed delivery the cache holds version %d (%v), want the old %d: the test shows nothing", v, err, a.Version)
	}
	// The duplicate of a failing cache fails too: it repairs nothing.
	if code, _ := deliver(t, failing, body); code != http.StatusServiceUnavailable {
		t.Fatalf("a duplicate whose cache write failed: %d, want 503", code)
	}

	if code, resp := deliver(t, h, body); code != http.StatusOK || !resp.Duplicate {
		t.Fatalf("redelivery with Redis back: %d %+v, want 200 duplicate", code, resp)
	}
	cacheHoldsLive(t, env, a.ID, "after the redelivery")
}

// TestASaleIsNotRetriedForARedisThatRefusesTheShop: a cache write Redis
// refuses (a wrong redis-password, an ACL that denies the command) fails
// the same way on every redelivery, so the sale is answered 200, the
// refusal logged at error level by catalogenv: failing it would only send
// every sale to the dead letters until an operator fixes the secret.
func TestASaleIsNotRetriedForARedisThatRefusesTheShop(t *testing.T) {
	env, _ := setup(t)
	a := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	addr := redisconntest.Server(t, "statsCachePassword")
	refusing, err := cache.New(cache.Config{Redis: redisconntest.FromSecret(t, addr, "notThePassword", redisconn.ConfigFrom),
		Prefix: env.Prefix, TTL: time.Minute, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { refusing.Close() })
	h := New(&catalogenv.Deps{Store: env.Store, Cache: refusing, Events: env.Events, Log: env.Log}, fntest.Internal())
	body := orderEvent(t, events.OrderPlaced, uuid.New(), orders.Line{ProductID: a.ID, Quantity: 2})
	if code, resp := deliver(t, h, body); code != http.StatusOK || resp.Updated != 1 {
		t.Fatalf("a sale whose cache write Redis refused: %d %+v, want 200, one product updated", code, resp)
	}
	if got := sold(t, env, a); got != 2 {
		t.Errorf("sold %d, want 2", got)
	}
}
