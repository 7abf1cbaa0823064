package function

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/catalog/catalogenv/envtest"
	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/search"
)

// credential is a caller index-product accepts.
var credential = fntest.Caller("rabbitmq-connector")

func deliver(t *testing.T, h http.Handler, body string, want int) Response {
	t.Helper()
	w := envtest.Do(t, h, http.MethodPost, "/", body, "X-Internal-Token", credential, "Shop-Signature", fntest.Sign(body))
	if w.Code != want {
		t.Fatalf("status %d, want %d: %s", w.Code, want, w.Body)
	}
	var resp Response
	_ = json.Unmarshal(w.Body.Bytes(), &resp)
	return resp
}

func inStockHits(t *testing.T, env *envtest.Env) int {
	t.Helper()
	yes := true
	res, err := env.Search.Search(context.Background(), search.Query{InStock: &yes, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	return res.Total
}

func TestStockChangedOncePerEvent(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	ext := envtest.NewMeili()
	env.External = ext
	h := New(env.Deps, fntest.Internal())
	p := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	body := fntest.Envelope(t, inventory.Source, events.StockChanged, "", inventory.View{ProductID: p.ID, OnHand: 5, Available: 5, Version: 2})
	if resp := deliver(t, h, body, 200); resp.Duplicate || !resp.Indexed {
		t.Fatalf("first: %+v", resp)
	}
	if n := inStockHits(t, env); n != 1 {
		t.Errorf("%d in-stock search hits, want 1", n)
	}
	if d, _ := ext.Doc(p.ID); !d.InStock {
		t.Error("external index not updated")
	}
	// A later event says sold out; then the first one is redelivered: the
	// duplicate must not flip the product back.
	deliver(t, h, fntest.Envelope(t, inventory.Source, events.StockChanged, "", inventory.View{ProductID: p.ID, OnHand: 0, Version: 4}), 200)
	if resp := deliver(t, h, body, 200); !resp.Duplicate {
		t.Errorf("redelivery not recognised: %+v", resp)
	}
	cur, _ := env.Store.Current(context.Background(), p.ID)
	if cur.InStock || inStockHits(t, env) != 0 {
		t.Errorf("in_stock %v after sold out and a duplicate", cur.InStock)
	}
	// An older event (version 3) that was never delivered before arrives
	// late: it is claimed but must not flip the product back in stock.
	if resp := deliver(t, h, fntest.Envelope(t, inventory.Source, events.StockChanged, "", inventory.View{ProductID: p.ID, OnHand: 2, Available: 2, Version: 3}), 200); resp.Duplicate {
		t.Errorf("late event taken for a duplicate: %+v", resp)
	}
	if cur, _ := env.Store.Current(context.Background(), p.ID); cur.InStock {
		t.Error("a late, older stock event put the product back in stock")
	}
	if resp := deliver(t, h, fntest.Envelope(t, inventory.Source, events.StockChanged, "", inventory.View{ProductID: uuid.New(), Available: 1, Version: 1}), 200); resp.Skipped != "unknown_product" {
		t.Errorf("unknown product: %+v", resp)
	}
}

// A stock event whose push to the external index fails is still done (the
// change is committed, with the product.changed.v1 that pushes again), but
// its report says "indexed": false. Until 2026-12-07 it said true whenever
// there was an external index, the failed push only logged.
func TestStockChangedReportsAFailedPush(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	ext := envtest.NewMeili()
	env.External = ext
	h := New(env.Deps, fntest.Internal())
	p := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	ext.SetDown(true)
	body := fntest.Envelope(t, inventory.Source, events.StockChanged, "", inventory.View{ProductID: p.ID, OnHand: 5, Available: 5, Version: 2})
	if resp := deliver(t, h, body, 200); resp.Duplicate || resp.Indexed {
		t.Errorf("push failed: %+v, want indexed false", resp)
	}
	if cur, _ := env.Store.Current(context.Background(), p.ID); !cur.InStock {
		t.Error("the stock change was not recorded")
	}
	ext.SetDown(false)
	body = fntest.Envelope(t, inventory.Source, events.StockChanged, "", inventory.View{ProductID: p.ID, OnHand: 0, Version: 3})
	if resp := deliver(t, h, body, 200); !resp.Indexed {
		t.Errorf("push succeeded: %+v, want indexed true", resp)
	}
	if d, ok := ext.Doc(p.ID); !ok || d.InStock {
		t.Errorf("external document %+v (found %v), want it out of stock", d, ok)
	}
}

func TestProductChangedPushesCurrentState(t *testing.T) {
	ctx := context.Background()
	env := envtest.New(t, envtest.Options{})
	ext := envtest.NewMeili()
	env.External = ext
	h := New(env.Deps, fntest.Internal())
	p := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	stale := fntest.Envelope(t, catalogdb.Source, events.ProductChanged, "", p)
	if _, err := env.Store.SetSoldCount(ctx, p.ID, 7); err != nil {
		t.Fatal(err)
	}
	if resp := deliver(t, h, stale, 200); !resp.Indexed {
		t.Fatalf("not indexed: %+v", resp)
	}
	if got, _ := ext.Doc(p.ID); got.SoldCount != 7 {
		t.Errorf("indexed sold_count %d, want the current 7 (not the stale event's 0)", got.SoldCount)
	}
	if _, err := env.Store.Update(ctx, p.ID, func(p catalog.Product, now time.Time) (catalog.Product, error) {
		p.Archived, p.Version, p.UpdatedAt = true, p.Version+1, now
		return p, nil
	}); err != nil {
		t.Fatal(err)
	}
	deliver(t, h, stale, 200)
	if _, ok := ext.Doc(p.ID); ok {
		t.Error("archived product still in the external index")
	}
	ext.SetDown(true)
	deliver(t, h, stale, http.StatusServiceUnavailable)
}

// A writer that dies between its commit and its own cache invalidation
// (catalogenv.Committed) leaves the old product cached; its
// product.changed.v1 is in the outbox, committed with the change, and
// index-product invalidates the entry up to the event's version, with or
// without an external index. Until 2026-12-04 it only pushed to Meilisearch,
// and the old price (or an archived product) was served until the entry's
// TTL ran out.
func TestProductChangedRepairsTheCache(t *testing.T) {
	ctx := context.Background()
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps, fntest.Internal())
	p := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	env.Remember(ctx, p) // a GET cached version 1
	changed, err := env.Store.Update(ctx, p.ID, func(p catalog.Product, now time.Time) (catalog.Product, error) {
		p.Price.Amount, p.Version, p.UpdatedAt = 1500, p.Version+1, now
		return p, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// No Committed: the writer died. The event carries the new snapshot.
	deliver(t, h, fntest.Envelope(t, catalogdb.Source, events.ProductChanged, "", changed), 200)
	if _, v, ok, err := env.Cache.Get(ctx, catalogenv.CacheKey(p)); err != nil || (ok && v < changed.Version) {
		t.Fatalf("cache after the event: version %d (hit %v, %v), want no entry older than %d", v, ok, err, changed.Version)
	}
	// A redelivered older event never hides a newer entry.
	env.Remember(ctx, changed)
	deliver(t, h, fntest.Envelope(t, catalogdb.Source, events.ProductChanged, "", p), 200)
	if _, v, ok, err := env.Cache.Get(ctx, catalogenv.CacheKey(p)); err != nil || !ok || v != changed.Version {
		t.Errorf("cache after an older event: version %d (hit %v, %v), want version %d still cached", v, ok, err, changed.Version)
	}
	// Redis down: the failed marker is logged, the event still processed
	// (the entry's TTL bounds what it misses), never dead-lettered for it.
	down := envtest.New(t, envtest.Options{RedisAddr: "127.0.0.1:1"})
	q := down.Create(t, "LAMP-2", "Lamp", "home", 1000)
	deliver(t, New(down.Deps, fntest.Internal()), fntest.Envelope(t, catalogdb.Source, events.ProductChanged, "", q), http.StatusOK)
}

func TestRefusals(t *testing.T) {
	env := envtest.New(t, envtest.Options{})
	h := New(env.Deps, fntest.Internal())
	p := env.Create(t, "LAMP-1", "Lamp", "home", 1000)
	good := fntest.Envelope(t, inventory.Source, events.StockChanged, "", inventory.View{ProductID: p.ID, Available: 1, Version: 1})
	tests := []struct {
		name   string
		body   string
		header []string
		want   int
	}{
		{"no credential", good, nil, 401},
		{"another caller's valid credential", good, []string{"X-Internal-Token", fntest.Caller("scheduler")}, 403},
		{"an operator's valid credential", good, []string{"X-Internal-Token", fntest.Caller("operator")}, 403},
		{"malformed", `{`, []string{"X-Internal-Token", credential}, 400},
		{"stock without available", fntest.Envelope(t, "s", events.StockChanged, "", map[string]string{"product_id": p.ID.String()}),
			[]string{"X-Internal-Token", credential}, 400},
		{"product without id", fntest.Envelope(t, "s", events.ProductChanged, "", map[string]string{}), []string{"X-Internal-Token", credential}, 400},
		{"other type", fntest.Envelope(t, "s", events.OrderPlaced, "", map[string]string{}), []string{"X-Internal-Token", credential}, 422},
		{"unsigned", good, []string{"X-Internal-Token", credential, "Shop-Signature", ""}, 403},
		{"signature of another event", good, []string{"X-Internal-Token", credential, "Shop-Signature", fntest.Sign(`{}`)}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := tt.header
			if len(header) == 2 { // the connector passes on the relay's signature
				header = append(header, "Shop-Signature", fntest.Sign(tt.body))
			}
			if w := envtest.Do(t, h, http.MethodPost, "/", tt.body, header...); w.Code != tt.want {
				t.Errorf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
		})
	}
	// Every caller but the RabbitMQ connector, with the genuine signature.
	fntest.RefusesOtherCallers(t, h, "index-product", good, "Shop-Signature", fntest.Sign(good))
	if cur, _ := env.Store.Current(context.Background(), p.ID); cur.InStock {
		t.Error("a refused delivery changed in_stock")
	}
}
