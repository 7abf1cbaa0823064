package function

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/cart/cartsvc"
	"github.com/shopfaas/shop/internal/catalogclient/catalogtest"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/ordersgw"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/ratelimit"
)

type fixture struct {
	h       http.Handler
	saga    *saga.Saga
	pool    *pgxpool.Pool
	svc     *orderstest.Server
	carts   *cartredis.Store
	cat     *catalogtest.Server
	tokens  *auth.Verifier
	product uuid.UUID
}

// setup wires the real saga over a fresh orders database, the internal
// contracts over HTTP, the catalog fake and real Redis carts; mod, when given,
// changes the saga's configuration first.
// cartCheckout is a checkout of the caller's cart (no items) paid with a
// card that is charged.
const cartCheckout = `{"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"S","postal_code":"1","country":"US"},"payment":{"token":"tok_visa"}}`

func setup(t *testing.T, mod ...func(*saga.Config)) *fixture {
	t.Helper()
	pool := pgtest.Open(t, ordersdb.Migrations())
	carts, _, _ := cartredistest.New(t, time.Hour)
	svc := orderstest.New(t)
	cat := catalogtest.New(t)
	p := cat.Add("SKU-1", 1299, "USD")
	svc.SetStock(p.ID, 10)
	gw, err := ordersgw.New(svc.URL, orderstest.Token, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg := saga.Config{Store: ordersdb.New(pool), Stock: gw, Payments: gw, Catalog: cat.Client(t),
		Cart: carts, Timeout: 10 * time.Second, RecoverAfter: time.Minute}
	for _, m := range mod {
		m(&cfg)
	}
	sg, err := saga.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tokens := orderstest.Tokens(t)
	return &fixture{h: New(sg, tokens, slog.New(slog.DiscardHandler)), saga: sg, pool: pool, svc: svc, carts: carts, cat: cat, tokens: tokens, product: p.ID}
}

func (f *fixture) body(qty int, token string) string {
	return `{"items":[{"product_id":"` + f.product.String() + `","quantity":` + itoa(qty) + `}],` +
		`"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
		`"payment":{"token":"` + token + `"}}`
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// nothingPlaced wants no order and no idempotency key written, and neither
// stock reserved nor a card charged: a checkout refused before its saga.
func (f *fixture) nothingPlaced(t *testing.T) {
	t.Helper()
	for _, q := range []string{`SELECT count(*) FROM orders`, `SELECT count(*) FROM idempotency_keys`} {
		var n int
		if err := f.pool.QueryRow(context.Background(), q).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d (%v), want 0", q, n, err)
		}
	}
	if c := f.svc.Counts(); c.Calls["reserve-stock"] != 0 || c.Charges != 0 {
		t.Errorf("services called: %+v, want none", c)
	}
}

func (f *fixture) post(u orderstest.User, body, key string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/orders", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, u.Authorize(r))
	return rec
}

func code(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var p struct{ Code string }
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	return p.Code
}

func TestRefusesBadRequests(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	good := f.body(1, "tok_visa")
	with := func(field string) string { return strings.Replace(good, `{"items"`, `{`+field+`,"items"`, 1) }
	tests := []struct {
		name   string
		user   orderstest.User
		body   string
		status int
		code   string
	}{
		{"no token", orderstest.User{}, good, 401, "unauthenticated"},
		{"client total", u, with(`"total":{"amount":1,"currency":"USD"}`), 400, "invalid_json"},
		{"client user_id", u, with(`"user_id":"` + uuid.NewString() + `"`), 400, "invalid_json"},
		{"client status", u, with(`"status":"confirmed"`), 400, "invalid_json"},
		{"client unit price", u, strings.Replace(good, `"quantity":1`, `"quantity":1,"unit_price":{"amount":1,"currency":"USD"}`, 1), 400, "invalid_json"},
		{"client price", u, strings.Replace(good, `"quantity":1`, `"quantity":1,"price":1`, 1), 400, "invalid_json"},
		{"malformed", u, `{"items":`, 400, "invalid_json"},
		{"quantity as string", u, strings.Replace(good, `"quantity":1`, `"quantity":"1"`, 1), 400, "invalid_json"},
		{"bad product id", u, strings.Replace(good, f.product.String(), "nope", 1), 400, "invalid_json"},
		// only the canonical form names a product, as in a path (until
		// 2026-12-05 these ordered the product)
		{"product id without hyphens", u, strings.Replace(good, f.product.String(), strings.ReplaceAll(f.product.String(), "-", ""), 1), 400, "invalid_json"},
		{"product id in braces", u, strings.Replace(good, f.product.String(), "{"+f.product.String()+"}", 1), 400, "invalid_json"},
		{"product id as a URN", u, strings.Replace(good, f.product.String(), "urn:uuid:"+f.product.String(), 1), 400, "invalid_json"},
		{"zero quantity", u, f.body(0, "tok_visa"), 422, "invalid_request"},
		{"huge quantity", u, f.body(1001, "tok_visa"), 422, "invalid_request"},
		{"card number", u, f.body(1, "4242424242424242"), 422, "invalid_request"},
		{"empty items", u, strings.Replace(good, `[{"product_id":"`+f.product.String()+`","quantity":1}]`, `[]`, 1), 422, "invalid_request"},
		{"no address", u, `{"items":[{"product_id":"` + f.product.String() + `","quantity":1}],"payment":{"token":"tok_visa"}}`, 422, "invalid_request"},
		{"unknown product", u, strings.Replace(good, f.product.String(), uuid.NewString(), 1), 422, "unknown_product"},
		// null is not a way to say "my cart" (the key left out is): a client
		// that wrote an empty list as null would order the whole cart
		{"null items", u, strings.Replace(good, `[{"product_id":"`+f.product.String()+`","quantity":1}]`, `null`, 1), 400, "invalid_json"},
		{"a line's unknown field", u, strings.Replace(good, `"quantity":1`, `"quantity":1,"discount":5`, 1), 400, "invalid_json"},
		{"empty cart", u, cartCheckout, 422, "cart_empty"},
		{"too large", u, with(`"x":"` + strings.Repeat("a", 70<<10) + `"`), 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.post(tt.user, tt.body, "")
			if rec.Code != tt.status || code(t, rec) != tt.code {
				t.Fatalf("got %d %s, want %d %s", rec.Code, rec.Body, tt.status, tt.code)
			}
		})
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d orders written by refused requests (%v)", n, err)
	}
}

// An Idempotency-Key sent empty or twice is refused before anything is
// placed: taken for no key, a client's retry would place the order again.
func TestRefusesAKeySentEmptyOrTwice(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	for name, keys := range map[string][]string{
		"empty":        {""},
		"twice":        {"k-1", "k-2"},
		"twice, alike": {"k-1", "k-1"},
		"not ASCII":    {"clé"},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/orders", strings.NewReader(f.body(1, "tok_visa")))
			r.Header.Set("Content-Type", "application/json")
			r.Header["Idempotency-Key"] = keys
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, u.Authorize(r))
			fntest.Problem(t, rec, http.StatusUnprocessableEntity, "invalid_request")
		})
	}
	var n int
	if err := f.pool.QueryRow(t.Context(), "SELECT count(*) FROM orders WHERE user_id = $1", u.UserID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d orders placed (%v), want none", n, err)
	}
}

// An order is placed for the token's subject alone: another user's id
// planted in the query and in headers is not read, and the order is the
// caller's (its row's user_id).
func TestAnOrderIsTheCallersWhateverIDIsPlanted(t *testing.T) {
	f := setup(t)
	buyer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	victim := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/orders"+fntest.PlantedQuery(victim.UserID), strings.NewReader(f.body(1, "tok_visa")))
	r.Header.Set("Content-Type", "application/json")
	fntest.Plant(r, victim.UserID)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, buyer.Authorize(r))
	if rec.Code != http.StatusCreated {
		t.Fatalf("an order with another user's id planted: %d %s, want 201", rec.Code, rec.Body)
	}
	var owners []uuid.UUID
	rows, err := f.pool.Query(context.Background(), `SELECT user_id FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var u uuid.UUID
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		owners = append(owners, u)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(owners) != 1 || owners[0] != buyer.UserID {
		t.Fatalf("orders' owners %v, want the caller %s alone (the planted id was %s)", owners, buyer.UserID, victim.UserID)
	}
}

func TestPlacesAndReplays(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	const n = 20
	// Each twin holds its 2 units for a moment (its reservation runs beside
	// its write, until the write finds the key taken): stock for all of them,
	// so the winner is never refused out_of_stock by a loser's hold
	// (docs/checkout.md, the documented undersell).
	f.svc.SetStock(f.product, 2*n)
	recs := make([]*httptest.ResponseRecorder, n)
	f.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 200 * time.Millisecond, 0, 0
		}
		return 0, 0, 0
	})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); recs[i] = f.post(u, f.body(2, "tok_visa"), "abc-123") }()
	}
	wg.Wait()
	for i, rec := range recs {
		if rec.Code != http.StatusCreated || rec.Body.String() != recs[0].Body.String() {
			t.Fatalf("response %d: %d %s; response 0: %d %s", i, rec.Code, rec.Body, recs[0].Code, recs[0].Body)
		}
	}
	var v orders.View
	if err := json.Unmarshal(recs[0].Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != orders.Confirmed || v.Total.Amount != 2598 || v.CreatedAt.IsZero() {
		t.Fatalf("order %+v", v)
	}
	if c := f.svc.Counts(); c.Charges != 1 {
		t.Fatalf("%d charges, want 1", c.Charges)
	}
	replay := f.post(u, f.body(2, "tok_visa"), "abc-123")
	if replay.Header().Get("Idempotent-Replayed") != "true" || replay.Body.String() != recs[0].Body.String() {
		t.Fatalf("replay %d %v %s", replay.Code, replay.Header(), replay.Body)
	}
	if rec := f.post(u, f.body(3, "tok_visa"), "abc-123"); rec.Code != 409 || code(t, rec) != "idempotency_key_reused" {
		t.Fatalf("other body: %d %s", rec.Code, rec.Body)
	}
}

func TestCartIsEmptiedOnlyAfterConfirmation(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	cartBody := `{"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"S","postal_code":"1","country":"US"},"payment":{"token":"%s"}}`

	declined := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	if err := f.carts.SetLine(ctx, declined.UserID, f.product, 2, 50); err != nil {
		t.Fatal(err)
	}
	if rec := f.post(declined, strings.Replace(cartBody, "%s", "tok_chargeDeclined", 1), ""); rec.Code != http.StatusPaymentRequired {
		t.Fatalf("declined: %d %s", rec.Code, rec.Body)
	}
	if lines, err := f.carts.Lines(ctx, declined.UserID); err != nil || len(lines) != 1 {
		t.Fatalf("cart after a decline: %v %v", lines, err)
	}

	buyer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	if err := f.carts.SetLine(ctx, buyer.UserID, f.product, 3, 50); err != nil {
		t.Fatal(err)
	}
	rec := f.post(buyer, strings.Replace(cartBody, "%s", "tok_mastercard", 1), "")
	var v orders.View
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	if rec.Code != http.StatusCreated || len(v.Items) != 1 || v.Items[0].Quantity != 3 || v.Total.Amount != 3*1299 {
		t.Fatalf("cart order: %d %s", rec.Code, rec.Body)
	}
	if lines, err := f.carts.Lines(ctx, buyer.UserID); err != nil || len(lines) != 0 {
		t.Fatalf("cart after confirmation: %v %v", lines, err)
	}
}

// A cart checkout orders the lines get-cart shows: a line whose product
// get-product answers its 404 for (archived, or never in the catalog) is
// skipped, not refused as unknown_product, so a customer whose cart shows
// one valid line can check it out. The order, its total, its hold and its
// charge hold only what get-cart prices; the skipped lines are neither
// reserved nor charged, and the confirmation takes only the ordered line out
// of the cart (the others stay, for get-cart to drop as it does).
func TestACartCheckoutSkipsLinesOfProductsNoLongerForSale(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	buyer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	archived := f.cat.Add("SKU-GONE", 500, "USD")
	f.svc.SetStock(archived.ID, 10)
	f.cat.Archive(archived.ID)
	unknown := uuid.Must(uuid.NewV7())
	cartLines := []cart.Line{{ProductID: f.product, Quantity: 2}, {ProductID: archived.ID, Quantity: 1}, {ProductID: unknown, Quantity: 4}}
	for _, l := range cartLines {
		if err := f.carts.SetLine(ctx, buyer.UserID, l.ProductID, l.Quantity, 50); err != nil {
			t.Fatal(err)
		}
	}
	// What get-cart shows for the same lines (another customer's cart:
	// reading it drops the skipped lines from the cart it reads).
	viewer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	for _, l := range cartLines {
		if err := f.carts.SetLine(ctx, viewer.UserID, l.ProductID, l.Quantity, 50); err != nil {
			t.Fatal(err)
		}
	}
	shown, err := cartsvc.New(f.carts, f.cat.Client(t), slog.New(slog.DiscardHandler)).Get(ctx, viewer.UserID)
	if err != nil {
		t.Fatal(err)
	}

	rec := f.post(buyer, cartCheckout, "skip-gone")
	if rec.Code != http.StatusCreated {
		t.Fatalf("cart order: %d %s; want 201 with the line for sale", rec.Code, rec.Body)
	}
	var v orders.View
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	var ordered []cart.ItemView
	for _, l := range v.Items {
		ordered = append(ordered, cart.ItemView{ProductID: l.ProductID, Quantity: l.Quantity, UnitPrice: cart.Money(l.UnitPrice),
			LineTotal: cart.Money{Amount: l.UnitPrice.Amount * int64(l.Quantity), Currency: l.UnitPrice.Currency}})
	}
	if diff := cmp.Diff(shown.Items, ordered); diff != "" {
		t.Errorf("ordered lines differ from the cart get-cart shows (-shown +ordered):\n%s", diff)
	}
	if cart.Money(v.Total) != shown.Total || v.Total.Amount != 2*1299 {
		t.Errorf("order total %+v, get-cart's %+v; want 2 × 1299 USD", v.Total, shown.Total)
	}
	if got := f.svc.Charged(v.ID); got != v.Total {
		t.Errorf("charged %+v, want the order's total %+v", got, v.Total)
	}
	if diff := cmp.Diff(map[uuid.UUID]int{f.product: 2}, f.svc.Held(v.ID)); diff != "" {
		t.Errorf("the order's hold (-want +got):\n%s", diff)
	}
	if _, reserved := f.svc.Stock(archived.ID); reserved != 0 {
		t.Errorf("%d units of the archived product reserved, want 0", reserved)
	}
	lines, err := f.carts.Lines(ctx, buyer.UserID)
	if err != nil {
		t.Fatal(err)
	}
	want := []cart.Line{{ProductID: archived.ID, Quantity: 1}, {ProductID: unknown, Quantity: 4}}
	sortLines := cmpopts.SortSlices(func(a, b cart.Line) bool { return a.ProductID.String() < b.ProductID.String() })
	if diff := cmp.Diff(want, lines, sortLines); diff != "" {
		t.Errorf("cart after the order (-want +got): only the ordered line leaves it\n%s", diff)
	}
	// The owner reading the timeline sees which lines were left out.
	var created string
	if err := f.pool.QueryRow(ctx, `SELECT detail FROM order_events WHERE order_id = $1 AND step = $2`, v.ID, orders.StepCreated).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(created, "2 cart line(s) skipped") || !strings.Contains(created, archived.ID.String()) || !strings.Contains(created, unknown.String()) {
		t.Errorf("order.created entry %q does not name the skipped lines %s and %s", created, archived.ID, unknown)
	}
}

// A cart whose every line is of a product no longer for sale orders nothing:
// 422 cart_empty, as get-cart shows it empty, with no order, hold, charge or
// key written, and the cart as it was.
func TestACartWithNothingForSaleIsCartEmpty(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	buyer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	f.cat.Archive(f.product)
	if err := f.carts.SetLine(ctx, buyer.UserID, f.product, 2, 50); err != nil {
		t.Fatal(err)
	}
	rec := f.post(buyer, cartCheckout, "nothing-for-sale")
	if rec.Code != http.StatusUnprocessableEntity || code(t, rec) != "cart_empty" {
		t.Fatalf("cart of archived products: %d %s; want 422 cart_empty", rec.Code, rec.Body)
	}
	f.nothingPlaced(t)
	if lines, err := f.carts.Lines(ctx, buyer.UserID); err != nil || !slices.Equal(lines, []cart.Line{{ProductID: f.product, Quantity: 2}}) {
		t.Errorf("cart after the refusal: %v %v, want it as it was", lines, err)
	}
}

// A checkout of a cart the catalog left mixed (a product repriced in another
// currency) answers what get-cart answers for that cart: 409
// currency_mismatch naming the products of each currency (the lines of
// products no longer for sale left out, as both skip them), in the detail and
// in "currencies", so the shopper knows which lines to remove. Nothing is
// written, held or charged, and the cart stays as it was.
func TestACheckoutOfAMixedCartIsGetCartsCurrencyMismatch(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	buyer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	repriced := f.cat.Add("SKU-EUR", 1100, "USD")
	gone := f.cat.Add("SKU-GONE", 500, "USD")
	cartLines := []cart.Line{{ProductID: f.product, Quantity: 1}, {ProductID: gone.ID, Quantity: 1}, {ProductID: repriced.ID, Quantity: 2}}
	for _, l := range cartLines {
		if err := f.carts.SetLine(ctx, buyer.UserID, l.ProductID, l.Quantity, 50); err != nil {
			t.Fatal(err)
		}
	}
	repriced.Price.Currency = "EUR"
	f.cat.Put(repriced)
	f.cat.Archive(gone.ID)
	// What get-cart answers for the same lines (another customer's cart:
	// reading it drops the archived line from the cart it reads).
	viewer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	for _, l := range cartLines {
		if err := f.carts.SetLine(ctx, viewer.UserID, l.ProductID, l.Quantity, 50); err != nil {
			t.Fatal(err)
		}
	}
	_, err := cartsvc.New(f.carts, f.cat.Client(t), slog.New(slog.DiscardHandler)).Get(ctx, viewer.UserID)
	shown, ok := cart.MixedCurrencies(err)
	if !ok {
		t.Fatalf("get-cart of the mixed cart: %v, want currency_mismatch", err)
	}

	rec := f.post(buyer, cartCheckout, "mixed")
	var p struct {
		Code       string                 `json:"code"`
		Detail     string                 `json:"detail"`
		Currencies map[string][]uuid.UUID `json:"currencies"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode: %v; body %s", err, rec.Body)
	}
	if rec.Code != http.StatusConflict || p.Code != "currency_mismatch" {
		t.Fatalf("checkout of a mixed cart: %d %s; want 409 currency_mismatch", rec.Code, rec.Body)
	}
	want := map[string][]uuid.UUID{"USD": {f.product}, "EUR": {repriced.ID}}
	if diff := cmp.Diff(want, p.Currencies); diff != "" {
		t.Errorf("currencies (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(shown, p.Currencies); diff != "" {
		t.Errorf("currencies differ from get-cart's (-get-cart +checkout):\n%s", diff)
	}
	if !strings.Contains(p.Detail, "USD: "+f.product.String()) || !strings.Contains(p.Detail, "EUR: "+repriced.ID.String()) {
		t.Errorf("detail %q does not name the products of each currency", p.Detail)
	}
	f.nothingPlaced(t)
	lines, err := f.carts.Lines(ctx, buyer.UserID)
	sortLines := cmpopts.SortSlices(func(a, b cart.Line) bool { return a.ProductID.String() < b.ProductID.String() })
	if diff := cmp.Diff(cartLines, lines, sortLines); err != nil || diff != "" {
		t.Errorf("cart after the refusal (%v), want it as it was (-want +got):\n%s", err, diff)
	}
}

// Skipping is for a cart's lines alone, and for get-product's own 404 alone:
// an order that names an archived product is still 422 unknown_product, and
// a cart checkout while the catalog fails is 503 with nothing skipped or
// written.
func TestOnlyACartSkipsAndOnlyWhatTheCatalogSaysIsGone(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	buyer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	archived := f.cat.Add("SKU-GONE", 500, "USD")
	f.svc.SetStock(archived.ID, 10)
	f.cat.Archive(archived.ID)
	items := `{"items":[{"product_id":"` + f.product.String() + `","quantity":1},{"product_id":"` + archived.ID.String() + `","quantity":1}],` +
		`"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"S","postal_code":"1","country":"US"},"payment":{"token":"tok_visa"}}`
	if rec := f.post(buyer, items, ""); rec.Code != http.StatusUnprocessableEntity || code(t, rec) != "unknown_product" {
		t.Errorf("items naming an archived product: %d %s; want 422 unknown_product", rec.Code, rec.Body)
	}

	if err := f.carts.SetLine(ctx, buyer.UserID, f.product, 1, 50); err != nil {
		t.Fatal(err)
	}
	f.cat.SetDown(true)
	if rec := f.post(buyer, cartCheckout, ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("cart checkout with the catalog down: %d %s; want 503", rec.Code, rec.Body)
	}
	f.cat.SetDown(false)
	f.cat.SetUnrouted(true)
	if rec := f.post(buyer, cartCheckout, ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("cart checkout with a 404 that is not get-product's: %d %s; want 503", rec.Code, rec.Body)
	}
	f.cat.SetUnrouted(false)
	var n int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d orders (%v), want 0", n, err)
	}
	if lines, err := f.carts.Lines(ctx, buyer.UserID); err != nil || !slices.Equal(lines, []cart.Line{{ProductID: f.product, Quantity: 1}}) {
		t.Errorf("cart after the failures: %v %v, want it as it was", lines, err)
	}
}

// A cart checkout retried with its Idempotency-Key replays its first answer
// and takes nothing more from the cart: retried once the cart is empty it is
// the replayed 201, not 422 cart_empty, and retried after the customer set
// the ordered line again (the same quantity) that line stays, with one order
// and one charge in all.
func TestACartCheckoutRetriedWithItsKeyTakesTheCartOnce(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	buyer := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	body := cartCheckout
	stored := func() []cart.Line {
		t.Helper()
		lines, err := f.carts.Lines(ctx, buyer.UserID)
		if err != nil {
			t.Fatal(err)
		}
		return lines
	}
	if err := f.carts.SetLine(ctx, buyer.UserID, f.product, 3, 50); err != nil {
		t.Fatal(err)
	}
	first := f.post(buyer, body, "cart-once")
	if first.Code != http.StatusCreated {
		t.Fatalf("cart order: %d %s", first.Code, first.Body)
	}
	if lines := stored(); len(lines) != 0 {
		t.Fatalf("cart after the order: %v, want it empty", lines)
	}
	replayed := func(when string) {
		t.Helper()
		rec := f.post(buyer, body, "cart-once")
		if rec.Code != http.StatusCreated || rec.Body.String() != first.Body.String() || rec.Header().Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry %s: %d %v %s; want the first answer replayed: %s", when, rec.Code, rec.Header(), rec.Body, first.Body)
		}
	}
	replayed("with the cart empty")
	if err := f.carts.SetLine(ctx, buyer.UserID, f.product, 3, 50); err != nil {
		t.Fatal(err)
	}
	replayed("with the ordered line set again")
	if diff := cmp.Diff([]cart.Line{{ProductID: f.product, Quantity: 3}}, stored()); diff != "" {
		t.Errorf("cart after the retries (-want +got):\n%s", diff)
	}
	var n int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d orders (%v), want 1", n, err)
	}
	if c := f.svc.Counts(); c.Charges != 1 {
		t.Errorf("%d charges, want 1", c.Charges)
	}
}

func TestClientThatHangsUpDoesNotStopTheSaga(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	charged := make(chan struct{}, 1)
	f.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			charged <- struct{}{}
			return 500 * time.Millisecond, 0, 0
		}
		return 0, 0, 0
	})
	srv := httptest.NewServer(f.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v1/orders", bytes.NewBufferString(f.body(1, "tok_visa")))
	req.Header.Set("Content-Type", "application/json")
	u.Authorize(req)
	go func() { <-charged; cancel() }() // hang up while the charge is in flight
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Fatalf("the request finished (%d) before the client hung up; the test proves nothing", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var status string
		err := f.pool.QueryRow(context.Background(), `SELECT status FROM orders`).Scan(&status)
		if err == nil && status == string(orders.Confirmed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order not confirmed after the client hung up: %q %v", status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Captured once; the stock stays held for the sweep (no commit-stock).
	if c := f.svc.Counts(); c.Commits != 0 || c.Captures != 1 || c.Calls["reserve-stock"] != 1 {
		t.Fatalf("commits %d captures %d reserves %d, want 0 1 1", c.Commits, c.Captures, c.Calls["reserve-stock"])
	}
}

// A replay answers what the first request was answered, even after the order
// changed since: a cancelled order's key still replays its 201 confirmed.
func TestReplayAnswersTheFirstAnswerAfterTheOrderChanged(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	first := f.post(u, f.body(1, "tok_visa"), "k-cancel")
	var v orders.View
	if err := json.Unmarshal(first.Body.Bytes(), &v); err != nil || first.Code != http.StatusCreated {
		t.Fatalf("place: %d %s", first.Code, first.Body)
	}
	if _, err := f.saga.Cancel(context.Background(), u.Identity, v.ID); err != nil {
		t.Fatal(err)
	}
	replay := f.post(u, f.body(1, "tok_visa"), "k-cancel")
	if replay.Code != http.StatusCreated || replay.Body.String() != first.Body.String() ||
		replay.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay %d %s, first answer %s", replay.Code, replay.Body, first.Body)
	}
}

// A checkout answered 202 (the processor stayed unavailable) is replayed for
// its key: the same request again gets 202 with the order as it stands, marked
// Idempotent-Replayed, without a second order, a second charge sequence or a
// second hold. Until 2026-12-06 it waited KeyWait and answered 409
// request_in_progress until recovery ended the order.
func TestARetryOfACheckoutAnsweredPendingReplaysIt(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	f.svc.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 0, http.StatusServiceUnavailable, 0
		}
		return 0, 0, 0
	})
	first := f.post(u, f.body(2, "tok_visa"), "k-pending")
	if first.Code != http.StatusAccepted {
		t.Fatalf("first: %d %s, want 202", first.Code, first.Body)
	}
	charges := f.svc.Counts().Calls["charge-payment"]
	start := time.Now()
	replay := f.post(u, f.body(2, "tok_visa"), "k-pending")
	if replay.Code != http.StatusAccepted || replay.Header().Get("Idempotent-Replayed") != "true" ||
		replay.Body.String() != first.Body.String() {
		t.Fatalf("replay after %s: %d %v %s, first answer %s", time.Since(start), replay.Code, replay.Header(), replay.Body, first.Body)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("the replay waited %s for a request that had finished", waited)
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d orders (%v), want 1", n, err)
	}
	if c := f.svc.Counts(); c.Calls["charge-payment"] != charges || c.Charges != 0 {
		t.Fatalf("charge calls %d after the replay, %d before; charges %d", c.Calls["charge-payment"], charges, c.Charges)
	}
	f.svc.Idle(t)
	if _, reserved := f.svc.Stock(f.product); reserved != 2 {
		t.Fatalf("%d units reserved, want the pending order's 2", reserved)
	}
}

// legacyAnswer is an answer stored by the version that kept rendered bytes in
// idempotency_keys (captured from it), with the order it answered.
type legacyAnswer struct {
	key, status, reason, created, updated string
	order                                 uuid.UUID
	quantity                              int
	httpStatus                            int
	body                                  string
}

// Answers settled before migration 0002 replay byte for byte after it.
func TestAnswersStoredBeforeTheUpgradeReplayByteForByte(t *testing.T) {
	user := uuid.MustParse("01a22ad6-5703-79e5-bd25-06df75abd8e6")
	product := uuid.MustParse("01a22ad6-5703-79e9-b9f1-f06080880343")
	addr := `{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"}`
	answers := []legacyAnswer{
		{"k-confirmed", "confirmed", "", "2026-11-30T05:03:39.802362Z", "2026-11-30T05:03:39.838168Z",
			uuid.MustParse("01a22ad6-571a-7596-9d1b-5add9b830f28"), 2, 201,
			`{"id":"01a22ad6-571a-7596-9d1b-5add9b830f28","status":"confirmed","items":[{"product_id":"01a22ad6-5703-79e9-b9f1-f06080880343","quantity":2,"unit_price":{"amount":1299,"currency":"USD"}}],"total":{"amount":2598,"currency":"USD"},"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},"created_at":"2026-11-30T05:03:39.802362Z","updated_at":"2026-11-30T05:03:39.838168Z"}`},
		{"k-declined", "payment_failed", "payment_declined", "2026-11-30T05:03:39.869132Z", "2026-11-30T05:03:39.88851Z",
			uuid.MustParse("01a22ad6-575d-7214-996c-b5416f902359"), 1, 402,
			`{"type":"about:blank","title":"Payment Required","status":402,"code":"payment_declined","detail":"the payment was declined","instance":"/api/v1/orders/01a22ad6-575d-7214-996c-b5416f902359"}`},
		{"k-oos", "cancelled", "out_of_stock", "2026-11-30T05:03:39.903964Z", "2026-11-30T05:03:39.912785Z",
			uuid.MustParse("01a22ad6-577f-7ee2-9cb8-3142189f5347"), 9, 409,
			`{"type":"about:blank","title":"Conflict","status":409,"code":"out_of_stock","detail":"not enough stock of product 01a22ad6-5703-79e9-b9f1-f06080880343","instance":"/api/v1/orders/01a22ad6-577f-7ee2-9cb8-3142189f5347"}`},
		{"k-token", "payment_failed", "invalid_payment_token", "2026-11-30T05:03:39.931657Z", "2026-11-30T05:03:39.942809Z",
			uuid.MustParse("01a22ad6-579b-7a19-9265-af4a045bea52"), 1, 422,
			`{"type":"about:blank","title":"Unprocessable Entity","status":422,"code":"invalid_payment_token","detail":"the payment token was refused","instance":"/api/v1/orders/01a22ad6-579b-7a19-9265-af4a045bea52"}`},
	}
	ctx := context.Background()
	pool := pgtest.Open(t, fstest.MapFS{"0001_init.sql": mustRead(t, ordersdb.Migrations(), "0001_init.sql")})
	for _, a := range answers {
		for _, sql := range []struct {
			q    string
			args []any
		}{
			{`INSERT INTO orders (id, user_id, status, reason, total_amount, currency, shipping_address, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, 'USD', $6, $7, $8)`, []any{a.order, user, a.status, a.reason, 1299 * a.quantity, addr, a.created, a.updated}},
			{`INSERT INTO order_items (order_id, position, product_id, quantity, unit_amount) VALUES ($1, 0, $2, $3, 1299)`,
				[]any{a.order, product, a.quantity}},
			{`INSERT INTO idempotency_keys (user_id, key, request_hash, order_id, response_status, response_body, expires_at)
				VALUES ($1, $2, 'h', $3, $4, convert_to($5, 'UTF8'), now() + interval '1 day')`,
				[]any{user, a.key, a.order, a.httpStatus, a.body + "\n"}},
		} {
			if _, err := pool.Exec(ctx, sql.q, sql.args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := postgres.Migrate(ctx, pool, ordersdb.Migrations()); err != nil {
		t.Fatal(err)
	}
	store := ordersdb.New(pool)
	for _, a := range answers {
		c, err := store.CheckKey(ctx, user, a.key, "h", 0)
		if err != nil || c == nil {
			t.Fatalf("%s: claim %v %v, want the stored answer", a.key, c, err)
		}
		rec := httptest.NewRecorder()
		if err := answer(rec, *c); err != nil {
			t.Fatal(err)
		}
		if rec.Code != a.httpStatus || rec.Body.String() != a.body+"\n" {
			t.Errorf("%s: replays %d\n%s\nwant %d\n%s", a.key, rec.Code, rec.Body, a.httpStatus, a.body)
		}
	}
}

func mustRead(t *testing.T, fsys fs.FS, name string) *fstest.MapFile {
	t.Helper()
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	return &fstest.MapFile{Data: b}
}

// TestCheckoutLimitIsPerVerifiedSubject: the limit counts the token's
// subject, so however a client writes its Authorization header (finding 2 of
// issue 12 got one bucket per spelling at the edge) one customer has one
// budget, and another customer has their own. A refused checkout writes
// nothing, and the limit is answered before anything else, even for a request
// that is invalid too (as when the limit ran before the saga).
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
	f := setup(t, func(c *saga.Config) { c.Limit = limit })
	alice, bob := orderstest.NewUser(t, f.tokens, auth.RoleCustomer), orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	post := func(header, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/orders", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, r)
		return rec
	}
	// Other spellings of the header are refused 401 before anything is
	// counted or written (auth.FromRequest), so they neither reach the
	// saga nor open a budget of their own at the edge.
	var codes []int
	for _, header := range []string{"bearer " + alice.Token, "BEARER  " + alice.Token, "Bearer " + alice.Token + " ",
		"bEaReR " + alice.Token, "Bearer " + alice.Token, "Bearer " + alice.Token, "Bearer " + alice.Token, "Bearer " + alice.Token} {
		rec := post(header, f.body(1, "tok_visa"))
		codes = append(codes, rec.Code)
		if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if want := []int{401, 401, 401, 401, 201, 201, 201, 429}; !slices.Equal(codes, want) {
		t.Errorf("answers %v, want %v", codes, want)
	}
	if rec := post("Bearer "+alice.Token, f.body(0, "tok_visa")); rec.Code != http.StatusTooManyRequests {
		t.Errorf("an invalid request past the limit: %d %s, want 429", rec.Code, rec.Body)
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE user_id = $1`, alice.UserID).Scan(&n); err != nil || n != 3 {
		t.Errorf("%d orders of the limited customer (%v), want 3", n, err)
	}
	if rec := post("Bearer "+bob.Token, f.body(1, "tok_visa")); rec.Code != http.StatusCreated {
		t.Errorf("another customer is limited by the first one's checkouts: %d %s", rec.Code, rec.Body)
	}
	// A client that hangs up at once is counted all the same: its checkout
	// runs detached from it. Until 2026-12-05 the count failed with the
	// client's context and let the request through uncounted.
	carol := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/orders", strings.NewReader(f.body(1, "tok_visa"))).WithContext(gone)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+carol.Token)
		f.h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE user_id = $1`, carol.UserID).Scan(&n); err != nil || n != 3 {
		t.Errorf("%d orders of a customer who hung up on every checkout (%v), want 3", n, err)
	}
}

// TestRefusesABodyWithoutContentType: a body sent without a Content-Type is
// 400 unsupported_media_type, however JSON it looks, as on every operation
// that takes one, so a client that forgets the header learns it at once.
func TestRefusesABodyWithoutContentType(t *testing.T) {
	f := setup(t)
	u := orderstest.NewUser(t, f.tokens, auth.RoleCustomer)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/orders", strings.NewReader(f.body(1, "tok_visa")))
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, u.Authorize(r))
	fntest.Problem(t, rec, http.StatusBadRequest, "unsupported_media_type")
}
