package function

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/cart/cartsvc"
	"github.com/shopfaas/shop/internal/catalogclient/catalogtest"
	"github.com/shopfaas/shop/internal/fntest"
)

type env struct {
	h       http.Handler
	svc     *cartsvc.Service
	store   *cartredis.Store
	catalog *catalogtest.Server
	tokens  *auth.Verifier
}

func setup(t *testing.T) env {
	t.Helper()
	store, _, _ := cartredistest.New(t, time.Hour)
	catalog := catalogtest.New(t)
	tokens := fntest.Tokens(t, 0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := cartsvc.New(store, catalog.Client(t), log)
	return env{h: New(svc, tokens, log), svc: svc, store: store, catalog: catalog, tokens: tokens}
}

func (e env) user(t *testing.T) (uuid.UUID, string) {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	return id, fntest.Bearer(t, e.tokens, id, auth.RoleCustomer)
}

func (e env) get(t *testing.T, authz string) (int, cart.View) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/cart", nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	var v cart.View
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("decode: %v; body %s", err, rec.Body)
		}
	}
	return rec.Code, v
}

func (e env) add(t *testing.T, user, product uuid.UUID, q int) {
	t.Helper()
	if _, err := e.svc.SetItem(context.Background(), user, product, q); err != nil {
		t.Fatal(err)
	}
}

func usd(n int64) cart.Money { return cart.Money{Amount: n, Currency: "USD"} }

func TestEmptyCart(t *testing.T) {
	e := setup(t)
	_, alice := e.user(t)
	status, v := e.get(t, alice)
	want := cart.View{Items: []cart.ItemView{}, Total: usd(0)}
	if diff := cmp.Diff(want, v); status != 200 || diff != "" {
		t.Fatalf("status %d (-want +got):\n%s", status, diff)
	}
	if status, _ := e.get(t, ""); status != http.StatusUnauthorized {
		t.Fatalf("without a token: status %d, want 401", status)
	}
}

func TestPricesComeFromTheCatalog(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	pen := e.catalog.Add("PEN", 250, "USD")
	aliceID, alice := e.user(t)
	e.add(t, aliceID, mug.ID, 2)
	e.add(t, aliceID, pen.ID, 4)

	_, v := e.get(t, alice)
	if v.Total != usd(2*1299+4*250) {
		t.Fatalf("total = %+v", v.Total)
	}
	e.catalog.SetPrice(mug.ID, 999)
	_, v = e.get(t, alice)
	want := cart.View{Items: []cart.ItemView{
		{ProductID: mug.ID, Quantity: 2, UnitPrice: usd(999), LineTotal: usd(1998)},
		{ProductID: pen.ID, Quantity: 4, UnitPrice: usd(250), LineTotal: usd(1000)},
	}, Total: usd(2998)}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Fatalf("after the catalog's price change (-want +got):\n%s", diff)
	}
}

func TestArchivedProductDisappears(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	pen := e.catalog.Add("PEN", 250, "USD")
	aliceID, alice := e.user(t)
	e.add(t, aliceID, mug.ID, 1)
	e.add(t, aliceID, pen.ID, 1)
	e.catalog.Archive(mug.ID)

	status, v := e.get(t, alice)
	want := cart.View{Items: []cart.ItemView{{ProductID: pen.ID, Quantity: 1, UnitPrice: usd(250), LineTotal: usd(250)}}, Total: usd(250)}
	if diff := cmp.Diff(want, v); status != 200 || diff != "" {
		t.Fatalf("status %d (-want +got):\n%s", status, diff)
	}
	// It is gone from the stored cart too, so it does not come back if the
	// catalog is restored.
	lines, err := e.store.Lines(context.Background(), aliceID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cart.Line{{ProductID: pen.ID, Quantity: 1}}, lines); diff != "" {
		t.Fatalf("stored lines (-want +got):\n%s", diff)
	}
}

func TestUsersSeeOnlyTheirOwnCart(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	pen := e.catalog.Add("PEN", 250, "USD")
	aliceID, alice := e.user(t)
	bobID, bob := e.user(t)
	e.add(t, aliceID, mug.ID, 1)
	e.add(t, bobID, pen.ID, 7)

	_, va := e.get(t, alice)
	_, vb := e.get(t, bob)
	if len(va.Items) != 1 || va.Items[0].ProductID != mug.ID {
		t.Fatalf("alice sees %+v", va)
	}
	if len(vb.Items) != 1 || vb.Items[0].ProductID != pen.ID || vb.Items[0].Quantity != 7 {
		t.Fatalf("bob sees %+v", vb)
	}
	// Alice's id in the query and in headers is not read: bob still sees
	// his own cart, and nothing of alice's.
	planted := fntest.JSON[cart.View](t, fntest.Do(t, e.h, http.MethodGet, "/api/v1/cart"+fntest.PlantedQuery(aliceID), "", "",
		append([]string{"Authorization", bob}, fntest.PlantedHeaders(aliceID)...)...), http.StatusOK)
	if diff := cmp.Diff(vb, planted); diff != "" {
		t.Fatalf("bob with alice's id planted in the query and headers (-his own cart +got):\n%s", diff)
	}
	// A token for another user id signed with another key is refused.
	other, _, _ := auth.NewTestKeys(0)
	forged, _ := other.Issue(aliceID, auth.RoleCustomer)
	fntest.Problem(t, fntest.Do(t, e.h, http.MethodGet, "/api/v1/cart", "", "", "Authorization", "Bearer "+forged),
		http.StatusUnauthorized, "unauthenticated")
}

func TestCatalogDownIsUnavailable(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	aliceID, alice := e.user(t)
	e.add(t, aliceID, mug.ID, 1)
	e.catalog.SetDown(true)
	fntest.Problem(t, fntest.Do(t, e.h, http.MethodGet, "/api/v1/cart", "", "", "Authorization", alice),
		http.StatusServiceUnavailable, "unavailable")
	// Nothing was dropped because the catalog was down.
	e.catalog.SetDown(false)
	if _, v := e.get(t, alice); len(v.Items) != 1 {
		t.Fatalf("cart after outage = %+v", v)
	}
}

// A catalog that answers 404 without being get-product's answer for the
// product (a misconfigured locator meeting a function's "no such route") is
// an outage: 503, and no line is dropped from the stored cart.
func TestACatalog404ThatIsNotGetProductsDropsNothing(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	aliceID, alice := e.user(t)
	e.add(t, aliceID, mug.ID, 2)
	e.catalog.SetUnrouted(true)
	fntest.Problem(t, fntest.Do(t, e.h, http.MethodGet, "/api/v1/cart", "", "", "Authorization", alice),
		http.StatusServiceUnavailable, "unavailable")
	lines, err := e.store.Lines(context.Background(), aliceID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cart.Line{{ProductID: mug.ID, Quantity: 2}}, lines); diff != "" {
		t.Fatalf("stored lines after the catalog's route 404 (-want +got):\n%s", diff)
	}
	e.catalog.SetUnrouted(false)
	if status, v := e.get(t, alice); status != http.StatusOK || len(v.Items) != 1 || v.Total != usd(2*1299) {
		t.Fatalf("once the catalog is reached again: %d %+v", status, v)
	}
}

// A cart left mixed by a catalog currency change answers 409 naming the
// products of each currency, in the detail and in the "currencies" member, so
// the client knows which lines to remove.
func TestAMixedCartNamesTheProductsOfEachCurrency(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	tasse := e.catalog.Add("TASSE", 1100, "USD")
	aliceID, alice := e.user(t)
	e.add(t, aliceID, mug.ID, 1)
	e.add(t, aliceID, tasse.ID, 1)
	tasse.Price.Currency = "EUR"
	e.catalog.Put(tasse)

	req := httptest.NewRequest(http.MethodGet, "/api/v1/cart", nil)
	req.Header.Set("Authorization", alice)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	var p struct {
		Code       string                 `json:"code"`
		Detail     string                 `json:"detail"`
		Currencies map[string][]uuid.UUID `json:"currencies"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode: %v; body %s", err, rec.Body)
	}
	if rec.Code != http.StatusConflict || p.Code != "currency_mismatch" {
		t.Fatalf("got %d %q, want 409 currency_mismatch", rec.Code, p.Code)
	}
	want := map[string][]uuid.UUID{"USD": {mug.ID}, "EUR": {tasse.ID}}
	if diff := cmp.Diff(want, p.Currencies); diff != "" {
		t.Errorf("currencies (-want +got):\n%s", diff)
	}
	if !strings.Contains(p.Detail, "USD: "+mug.ID.String()) || !strings.Contains(p.Detail, "EUR: "+tasse.ID.String()) {
		t.Errorf("detail %q does not name the products of each currency", p.Detail)
	}
}

// While the cart store's Redis is away (stopped: every connection closed, new
// ones refused) get-cart answers 503 unavailable, never an empty cart; once
// Redis is back (restarted) the same handler, not rebuilt, answers the cart
// as it was.
func TestARedisOutageIsUnavailableNotAnEmptyCart(t *testing.T) {
	store, proxy, _ := cartredistest.Proxied(t, time.Hour)
	catalog := catalogtest.New(t)
	tokens := fntest.Tokens(t, 0)
	log := slog.New(slog.DiscardHandler)
	svc := cartsvc.New(store, catalog.Client(t), log)
	h := New(svc, tokens, log)
	mug := catalog.Add("MUG", 1299, "USD")
	id := uuid.Must(uuid.NewV7())
	alice := fntest.Bearer(t, tokens, id, auth.RoleCustomer)
	if _, err := svc.SetItem(context.Background(), id, mug.ID, 2); err != nil {
		t.Fatal(err)
	}
	get := func() *httptest.ResponseRecorder {
		return fntest.Do(t, h, http.MethodGet, "/api/v1/cart", "", "", "Authorization", alice)
	}

	proxy.Cut()
	fntest.Problem(t, get(), http.StatusServiceUnavailable, "unavailable")

	proxy.Restore()
	want := cart.View{Items: []cart.ItemView{{ProductID: mug.ID, Quantity: 2, UnitPrice: usd(1299), LineTotal: usd(2598)}}, Total: usd(2598)}
	if diff := cmp.Diff(want, fntest.JSON[cart.View](t, get(), http.StatusOK)); diff != "" {
		t.Errorf("the cart once Redis is back (-want +got):\n%s", diff)
	}
}
