package function

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/cart/cartredis"
	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
	"github.com/shopfaas/shop/internal/cart/cartsvc"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/catalogclient/catalogtest"
	"github.com/shopfaas/shop/internal/fntest"
)

type env struct {
	h       http.Handler
	store   *cartredis.Store
	rdb     *redis.Client
	cfg     cartredis.Config
	catalog *catalogtest.Server
	tokens  *auth.Verifier
}

func setup(t *testing.T) env {
	t.Helper()
	store, rdb, cfg := cartredistest.New(t, time.Hour)
	catalog := catalogtest.New(t)
	tokens := fntest.Tokens(t, 0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return env{h: New(cartsvc.New(store, catalog.Client(t), log), tokens, log), store: store, rdb: rdb, cfg: cfg, catalog: catalog, tokens: tokens}
}

// user returns a new user id and its bearer header.
func (e env) user(t *testing.T) (uuid.UUID, string) {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	return id, fntest.Bearer(t, e.tokens, id, auth.RoleCustomer)
}

// send sends the request and returns the recorded answer.
func (e env) send(t *testing.T, authz string, product string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPut, "/api/v1/cart/items/"+product, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// put sends the request and returns the status, the problem code (if any) and the cart.
func (e env) put(t *testing.T, authz string, product string, body string) (int, string, cart.View) {
	t.Helper()
	rec := e.send(t, authz, product, body)
	var v cart.View
	var p struct{ Code string }
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("decode cart: %v; body %s", err, rec.Body)
		}
	} else if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode problem: %v; body %s", err, rec.Body)
	}
	return rec.Code, p.Code, v
}

func usd(n int64) cart.Money { return cart.Money{Amount: n, Currency: "USD"} }

func TestAddChangeRemove(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	pen := e.catalog.Add("PEN", 250, "USD")
	_, alice := e.user(t)

	status, code, v := e.put(t, alice, mug.ID.String(), `{"quantity":2}`)
	if status != 200 {
		t.Fatalf("add: status %d code %s", status, code)
	}
	want := cart.View{Items: []cart.ItemView{{ProductID: mug.ID, Quantity: 2, UnitPrice: usd(1299), LineTotal: usd(2598)}}, Total: usd(2598)}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Fatalf("after add (-want +got):\n%s", diff)
	}

	e.put(t, alice, pen.ID.String(), `{"quantity":3}`)
	status, _, v = e.put(t, alice, mug.ID.String(), `{"quantity":99}`)
	want = cart.View{Items: []cart.ItemView{
		{ProductID: mug.ID, Quantity: 99, UnitPrice: usd(1299), LineTotal: usd(128601)},
		{ProductID: pen.ID, Quantity: 3, UnitPrice: usd(250), LineTotal: usd(750)},
	}, Total: usd(129351)}
	if diff := cmp.Diff(want, v); status != 200 || diff != "" {
		t.Fatalf("after change: status %d (-want +got):\n%s", status, diff)
	}

	status, _, v = e.put(t, alice, mug.ID.String(), `{"quantity":0}`)
	want = cart.View{Items: []cart.ItemView{{ProductID: pen.ID, Quantity: 3, UnitPrice: usd(250), LineTotal: usd(750)}}, Total: usd(750)}
	if diff := cmp.Diff(want, v); status != 200 || diff != "" {
		t.Fatalf("after remove: status %d (-want +got):\n%s", status, diff)
	}
	// Removing a line that is not there is fine and changes nothing.
	status, _, v2 := e.put(t, alice, uuid.Must(uuid.NewV7()).String(), `{"quantity":0}`)
	if diff := cmp.Diff(want, v2); status != 200 || diff != "" {
		t.Fatalf("remove absent line: status %d (-want +got):\n%s", status, diff)
	}
}

func TestRefusals(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	euro := e.catalog.Add("EUR-MUG", 1100, "EUR")
	archived := e.catalog.Add("OLD", 100, "USD")
	userID, alice := e.user(t)
	for _, p := range []uuid.UUID{mug.ID, archived.ID} {
		if status, code, _ := e.put(t, alice, p.String(), `{"quantity":1}`); status != 200 {
			t.Fatalf("setup: %d %s", status, code)
		}
	}
	// A line whose product left the catalog since: a refusal removes it no
	// more than it writes anything else.
	e.catalog.Archive(archived.ID)

	tests := []struct {
		name, auth, product, body string
		wantStatus                int
		wantCode                  string
	}{
		{"no token", "", mug.ID.String(), `{"quantity":1}`, 401, "unauthenticated"},
		{"quantity 100", alice, mug.ID.String(), `{"quantity":100}`, 422, "invalid_quantity"},
		{"negative", alice, mug.ID.String(), `{"quantity":-1}`, 422, "invalid_quantity"},
		{"int64 max", alice, mug.ID.String(), `{"quantity":9223372036854775807}`, 422, "invalid_quantity"},
		// An integer too large for an int64 is no integer the API can read:
		// 400 invalid_json, as checkout's decoder answers.
		{"huge", alice, mug.ID.String(), `{"quantity":99999999999999999999}`, 400, "invalid_json"},
		// An integer with a fraction or an exponent is 400 invalid_json, as
		// api/openapi.yaml says and checkout answers, even when it is a
		// whole number in range.
		{"fraction", alice, mug.ID.String(), `{"quantity":1.5}`, 400, "invalid_json"},
		{"whole fraction", alice, mug.ID.String(), `{"quantity":2.0}`, 400, "invalid_json"},
		{"exponent", alice, mug.ID.String(), `{"quantity":1e1}`, 400, "invalid_json"},
		{"missing", alice, mug.ID.String(), `{}`, 422, "invalid_request"},
		{"string", alice, mug.ID.String(), `{"quantity":"2"}`, 400, "invalid_json"},
		{"client price", alice, mug.ID.String(), `{"quantity":1,"unit_price":{"amount":1,"currency":"USD"}}`, 400, "invalid_json"},
		// A field's name is written exactly, once (encoding/json alone read
		// these as quantity 3, 4 and 8).
		{"capitalised name", alice, mug.ID.String(), `{"Quantity":3}`, 400, "invalid_json"},
		{"upper-case name", alice, mug.ID.String(), `{"QUANTITY":4}`, 400, "invalid_json"},
		{"name twice", alice, mug.ID.String(), `{"quantity":1,"Quantity":8}`, 400, "invalid_json"},
		{"unknown product", alice, uuid.Must(uuid.NewV7()).String(), `{"quantity":1}`, 404, "not_found"},
		{"archived product", alice, archived.ID.String(), `{"quantity":1}`, 404, "not_found"},
		{"not a uuid", alice, "mug", `{"quantity":1}`, 404, "not_found"},
		{"other currency", alice, euro.ID.String(), `{"quantity":1}`, 409, "currency_mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code, _ := e.put(t, tt.auth, tt.product, tt.body)
			if status != tt.wantStatus || code != tt.wantCode {
				t.Fatalf("got %d %q, want %d %q", status, code, tt.wantStatus, tt.wantCode)
			}
		})
	}
	// Nothing refused was written.
	lines, err := e.store.Lines(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cart.Line{{ProductID: mug.ID, Quantity: 1}, {ProductID: archived.ID, Quantity: 1}}, lines); diff != "" {
		t.Fatalf("stored lines (-want +got):\n%s", diff)
	}
}

// The cart written is the token subject's alone: alice's id planted in the
// query and in headers of bob's request is not read, and alice's cart stays
// as it was.
func TestAnotherUsersIDPlantedInTheRequestIsNotRead(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	aliceID, alice := e.user(t)
	bobID, bob := e.user(t)
	if status, code, _ := e.put(t, alice, mug.ID.String(), `{"quantity":1}`); status != 200 {
		t.Fatalf("alice's line: %d %s", status, code)
	}
	w := fntest.Do(t, e.h, http.MethodPut, "/api/v1/cart/items/"+mug.ID.String()+fntest.PlantedQuery(aliceID), "application/json",
		`{"quantity":5}`, append([]string{"Authorization", bob}, fntest.PlantedHeaders(aliceID)...)...)
	if w.Code != http.StatusOK {
		t.Fatalf("bob's line with alice's id planted: %d %s, want 200", w.Code, w.Body)
	}
	for _, c := range []struct {
		who  string
		user uuid.UUID
		want int
	}{{"alice", aliceID, 1}, {"bob", bobID, 5}} {
		lines, err := e.store.Lines(context.Background(), c.user)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]cart.Line{{ProductID: mug.ID, Quantity: c.want}}, lines); diff != "" {
			t.Errorf("%s's cart after bob's request with alice's id planted (-want +got):\n%s", c.who, diff)
		}
	}
}

func TestFiftyFirstLineIsRefused(t *testing.T) {
	e := setup(t)
	_, alice := e.user(t)
	var ids []uuid.UUID
	for i := range cart.MaxLines + 1 {
		ids = append(ids, e.catalog.Add(fmt.Sprintf("SKU-%02d", i), 100, "USD").ID)
	}
	for i, id := range ids[:cart.MaxLines] {
		if status, code, _ := e.put(t, alice, id.String(), `{"quantity":1}`); status != 200 {
			t.Fatalf("line %d: %d %s", i+1, status, code)
		}
	}
	status, code, _ := e.put(t, alice, ids[cart.MaxLines].String(), `{"quantity":1}`)
	if status != 422 || code != "cart_full" {
		t.Fatalf("51st line: %d %q, want 422 cart_full", status, code)
	}
	// Changing an existing line of a full cart is still allowed.
	status, _, v := e.put(t, alice, ids[0].String(), `{"quantity":5}`)
	if status != 200 || len(v.Items) != cart.MaxLines || v.Total.Amount != 100*(cart.MaxLines+4) {
		t.Fatalf("change in full cart: %d, %d items, total %+v", status, len(v.Items), v.Total)
	}
	// Once a product is archived its line no longer counts: the new line fits.
	e.catalog.Archive(ids[1])
	status, code, v = e.put(t, alice, ids[cart.MaxLines].String(), `{"quantity":1}`)
	if status != 200 || len(v.Items) != cart.MaxLines {
		t.Fatalf("after archiving one: %d %q, %d items", status, code, len(v.Items))
	}
}

// racingStore lets another add land between a SetItem's read of the cart and
// its write, as a concurrent request would.
type racingStore struct {
	*cartredis.Store
	race   func()
	always bool // every write is raced, not only the first
}

func (s *racingStore) SetLineIfUnchanged(ctx context.Context, user, product uuid.UUID, quantity, maxLines int, currency string, known []uuid.UUID) error {
	if race := s.race; race != nil {
		if !s.always {
			s.race = nil
		}
		race()
	}
	return s.Store.SetLineIfUnchanged(ctx, user, product, quantity, maxLines, currency, known)
}

// raced serves e's handler over a racingStore whose race adds product to the
// user's cart (a new product each time when product is nil), before the first
// write only or before every write.
func (e *env) raced(t *testing.T, user uuid.UUID, product *catalogclient.Product, always bool) {
	t.Helper()
	racing := &racingStore{Store: e.store, always: always, race: func() {
		p := product
		if p == nil {
			q := e.catalog.Add("PEN-"+uuid.NewString()[:8], 250, "USD")
			p = &q
		}
		if err := e.store.SetLine(context.Background(), user, p.ID, 1, cart.MaxLines); err != nil {
			t.Error(err)
		}
	}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.h = New(cartsvc.New(racing, e.catalog.Client(t), log), e.tokens, log)
}

func (e env) lines(t *testing.T, user uuid.UUID) []cart.Line {
	t.Helper()
	lines, err := e.store.Lines(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// Two adds of products in different currencies race: the one decided on the
// cart before the other landed is decided again, and refused, so the cart
// never holds two currencies (each add alone checked an empty cart and both
// were written).
func TestRacingAddsNeverMixCurrencies(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	euro := e.catalog.Add("TASSE", 1100, "EUR")
	id, alice := e.user(t)
	e.raced(t, id, &euro, false)
	if status, code, _ := e.put(t, alice, mug.ID.String(), `{"quantity":1}`); status != http.StatusConflict || code != "currency_mismatch" {
		t.Errorf("the add that lost the race: %d %q, want 409 currency_mismatch", status, code)
	}
	if diff := cmp.Diff([]cart.Line{{ProductID: euro.ID, Quantity: 1}}, e.lines(t, id)); diff != "" {
		t.Errorf("stored cart (-want +got):\n%s", diff)
	}
}

// Parallel adds of distinct products of one currency all succeed and all
// their lines are stored: another line landing between an add's read and its
// write is no reason to refuse it when it cannot mix currencies (each add
// checked the cart without the others; until 2026-12-07 most of 20 such adds
// answered 503).
func TestParallelAddsOfOneCurrencyAllSucceed(t *testing.T) {
	e := setup(t)
	const n = 20
	products := make([]uuid.UUID, n)
	for i := range products {
		products[i] = e.catalog.Add(fmt.Sprintf("PEN-%02d", i), 250, "USD").ID
	}
	id, alice := e.user(t)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i, p := range products {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.send(t, alice, p.String(), `{"quantity":1}`).Code
		}()
	}
	wg.Wait()
	for i, status := range statuses {
		if status != http.StatusOK {
			t.Errorf("add %d of %d: %d, want 200", i+1, n, status)
		}
	}
	if lines := e.lines(t, id); len(lines) != n {
		t.Errorf("stored cart has %d lines, want the %d added", len(lines), n)
	}
}

// A field of the cart's hash that is not a line (not a product id in its
// canonical lower-case form, or a quantity outside 1..99) is neither shown nor
// in the way: adds and changes
// of that cart succeed, and it does not count towards the line limit (it was
// never among the lines an add had read, so every add answered 503 until the
// cart expired).
func TestAFieldThatIsNotALineIsNotInTheWay(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	pen := e.catalog.Add("PEN", 250, "USD")
	id, alice := e.user(t)
	key := e.cfg.KeyPrefix + id.String()
	if err := e.rdb.HSet(context.Background(), key, "not-a-uuid", "3", uuid.NewString(), "100", strings.ToUpper(mug.ID.String()), "2").Err(); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		product uuid.UUID
		body    string
		items   int
	}{{mug.ID, `{"quantity":1}`, 1}, {pen.ID, `{"quantity":2}`, 2}, {mug.ID, `{"quantity":3}`, 2}} {
		if status, code, v := e.put(t, alice, step.product.String(), step.body); status != http.StatusOK || len(v.Items) != step.items {
			t.Errorf("PUT %s %s: %d %q, %d items; want 200, %d items", step.product, step.body, status, code, len(v.Items), step.items)
		}
	}
	// With the junk gone, 48 more lines fill the cart to its 50.
	for i := range cart.MaxLines - 2 {
		p := e.catalog.Add(fmt.Sprintf("SKU-%02d", i), 100, "USD")
		if status, code, _ := e.put(t, alice, p.ID.String(), `{"quantity":1}`); status != http.StatusOK {
			t.Fatalf("line %d: %d %q, want 200", i+3, status, code)
		}
	}
	if n := len(e.lines(t, id)); n != cart.MaxLines {
		t.Errorf("stored cart has %d lines, want %d", n, cart.MaxLines)
	}
}

// A cart that gains a line before every write is given up on after
// setTries: 503, which the client may retry, and the line is not written.
func TestACartThatKeepsChangingIsUnavailable(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	id, alice := e.user(t)
	e.raced(t, id, nil, true)
	if status, code, _ := e.put(t, alice, mug.ID.String(), `{"quantity":1}`); status != http.StatusServiceUnavailable || code != "unavailable" {
		t.Errorf("a cart changing under every try: %d %q, want 503 unavailable", status, code)
	}
	// One new pen raced in before each of cartsvc's three tries (setTries),
	// and nothing else.
	lines := e.lines(t, id)
	if len(lines) != 3 {
		t.Errorf("stored cart %v, want the 3 pens raced in before the 3 tries", lines)
	}
	for _, l := range lines {
		if l.ProductID == mug.ID {
			t.Error("the mug was written to a cart that changed under every try")
		} else if l.Quantity != 1 {
			t.Errorf("raced line %v, want quantity 1", l)
		}
	}
}

// TestRefusesABodyWithoutContentType: a body sent without a Content-Type is
// 400 unsupported_media_type, however JSON it looks, as on every operation
// that takes one, so a client that forgets the header learns it at once.
func TestRefusesABodyWithoutContentType(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	_, alice := e.user(t)
	w := fntest.Do(t, e.h, http.MethodPut, "/api/v1/cart/items/"+mug.ID.String(), "", `{"quantity":1}`, "Authorization", alice)
	fntest.Problem(t, w, http.StatusBadRequest, "unsupported_media_type")
}

// mismatch is a currency_mismatch problem with its extension member.
type mismatch struct {
	Status     int                    `json:"status"`
	Code       string                 `json:"code"`
	Detail     string                 `json:"detail"`
	Currencies map[string][]uuid.UUID `json:"currencies"`
}

func decodeMismatch(t *testing.T, rec *httptest.ResponseRecorder) mismatch {
	t.Helper()
	var p mismatch
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode problem: %v; body %s", err, rec.Body)
	}
	return p
}

// A refused add names the products of each currency, so the client can tell
// which lines stand in the way.
func TestACurrencyMismatchNamesTheProductsOfEachCurrency(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	pen := e.catalog.Add("PEN", 250, "USD")
	euro := e.catalog.Add("EUR-MUG", 1100, "EUR")
	_, alice := e.user(t)
	for _, p := range []uuid.UUID{mug.ID, pen.ID} {
		if status, code, _ := e.put(t, alice, p.String(), `{"quantity":1}`); status != 200 {
			t.Fatalf("add: %d %s", status, code)
		}
	}
	p := decodeMismatch(t, e.send(t, alice, euro.ID.String(), `{"quantity":1}`))
	if p.Status != http.StatusConflict || p.Code != "currency_mismatch" {
		t.Fatalf("got %d %q, want 409 currency_mismatch", p.Status, p.Code)
	}
	want := map[string][]uuid.UUID{"USD": {mug.ID, pen.ID}, "EUR": {euro.ID}}
	if diff := cmp.Diff(want, p.Currencies); diff != "" {
		t.Errorf("currencies (-want +got):\n%s", diff)
	}
	for _, id := range []uuid.UUID{mug.ID, pen.ID, euro.ID} {
		if !strings.Contains(p.Detail, id.String()) {
			t.Errorf("detail %q does not name %s", p.Detail, id)
		}
	}
}

// A catalog currency change (PATCH price.currency) can leave a cart mixed.
// Removing a line is written all the same and never answered as if it had
// not been: 200 with the cart once the rest shares a currency, otherwise a 409
// that says the line was removed and names the products of each currency.
func TestRemovingALineOfAMixedCartIsAnsweredAsWritten(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	pen := e.catalog.Add("PEN", 250, "USD")
	tasse := e.catalog.Add("TASSE", 1100, "USD")
	userID, alice := e.user(t)
	for _, p := range []uuid.UUID{mug.ID, pen.ID, tasse.ID} {
		if status, code, _ := e.put(t, alice, p.String(), `{"quantity":1}`); status != 200 {
			t.Fatalf("add: %d %s", status, code)
		}
	}
	tasse.Price.Currency = "EUR"
	e.catalog.Put(tasse)

	p := decodeMismatch(t, e.send(t, alice, pen.ID.String(), `{"quantity":0}`))
	if p.Status != http.StatusConflict || p.Code != "currency_mismatch" {
		t.Fatalf("removing an unrelated line: got %d %q, want 409 currency_mismatch", p.Status, p.Code)
	}

	want := map[string][]uuid.UUID{"USD": {mug.ID}, "EUR": {tasse.ID}}
	if diff := cmp.Diff(want, p.Currencies); diff != "" {
		t.Errorf("currencies (-want +got):\n%s", diff)
	}
	if !strings.Contains(p.Detail, pen.ID.String()+" is no longer in the cart") ||
		!strings.Contains(p.Detail, mug.ID.String()) || !strings.Contains(p.Detail, tasse.ID.String()) {
		t.Errorf("detail %q does not say the line was removed and which products keep the cart mixed", p.Detail)
	}
	lines, err := e.store.Lines(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cart.Line{{ProductID: mug.ID, Quantity: 1}, {ProductID: tasse.ID, Quantity: 1}}, lines); diff != "" {
		t.Fatalf("stored lines (-want +got):\n%s", diff)
	}

	status, code, v := e.put(t, alice, tasse.ID.String(), `{"quantity":0}`)
	wantView := cart.View{Items: []cart.ItemView{{ProductID: mug.ID, Quantity: 1, UnitPrice: usd(1299), LineTotal: usd(1299)}}, Total: usd(1299)}
	if diff := cmp.Diff(wantView, v); status != 200 || diff != "" {
		t.Fatalf("removing the other currency's line: %d %q (-want +got):\n%s", status, code, diff)
	}
}

// A catalog that answers 404 without being get-product's answer for the
// product (a misconfigured locator meeting a function's "no such route") is
// an outage: adding a product is 503, not 404, and neither that line nor the
// lines already in the cart are written or dropped.
func TestACatalog404ThatIsNotGetProductsWritesNothing(t *testing.T) {
	e := setup(t)
	mug := e.catalog.Add("MUG", 1299, "USD")
	pen := e.catalog.Add("PEN", 250, "USD")
	userID, alice := e.user(t)
	if status, code, _ := e.put(t, alice, mug.ID.String(), `{"quantity":2}`); status != http.StatusOK {
		t.Fatalf("setup: %d %s", status, code)
	}
	e.catalog.SetUnrouted(true)
	for _, p := range []uuid.UUID{pen.ID, mug.ID} {
		fntest.Problem(t, e.send(t, alice, p.String(), `{"quantity":3}`), http.StatusServiceUnavailable, "unavailable")
	}
	lines, err := e.store.Lines(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]cart.Line{{ProductID: mug.ID, Quantity: 2}}, lines); diff != "" {
		t.Fatalf("stored lines after the catalog's route 404 (-want +got):\n%s", diff)
	}
}

// While the cart store's Redis is away (stopped: every connection closed, new
// ones refused) an add, a change and a removal each answer 503 unavailable
// and leave the stored cart as it was; once Redis is back (restarted) the
// same handler, not rebuilt, writes again.
func TestARedisOutageIsUnavailableAndWritesNothing(t *testing.T) {
	store, proxy, direct := cartredistest.Proxied(t, time.Hour)
	catalog := catalogtest.New(t)
	tokens := fntest.Tokens(t, 0)
	log := slog.New(slog.DiscardHandler)
	h := New(cartsvc.New(store, catalog.Client(t), log), tokens, log)
	mug := catalog.Add("MUG", 1299, "USD")
	pen := catalog.Add("PEN", 250, "USD")
	id := uuid.Must(uuid.NewV7())
	alice := fntest.Bearer(t, tokens, id, auth.RoleCustomer)
	put := func(product uuid.UUID, body string) *httptest.ResponseRecorder {
		return fntest.Do(t, h, http.MethodPut, "/api/v1/cart/items/"+product.String(), "application/json", body, "Authorization", alice)
	}
	stored := func() []cart.Line {
		t.Helper()
		lines, err := direct.Lines(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return lines
	}
	fntest.JSON[cart.View](t, put(mug.ID, `{"quantity":2}`), http.StatusOK)
	want := []cart.Line{{ProductID: mug.ID, Quantity: 2}}

	proxy.Cut()
	for _, tt := range []struct {
		name    string
		product uuid.UUID
		body    string
	}{{"add", pen.ID, `{"quantity":1}`}, {"change", mug.ID, `{"quantity":5}`}, {"remove", mug.ID, `{"quantity":0}`}} {
		t.Run(tt.name, func(t *testing.T) {
			fntest.Problem(t, put(tt.product, tt.body), http.StatusServiceUnavailable, "unavailable")
			if diff := cmp.Diff(want, stored()); diff != "" {
				t.Errorf("stored cart after a refused %s (-want +got):\n%s", tt.name, diff)
			}
		})
	}

	proxy.Restore()
	v := fntest.JSON[cart.View](t, put(pen.ID, `{"quantity":1}`), http.StatusOK)
	want = []cart.Line{{ProductID: mug.ID, Quantity: 2}, {ProductID: pen.ID, Quantity: 1}}
	if len(v.Items) != 2 || v.Total != usd(2*1299+250) {
		t.Errorf("the cart answered once Redis is back: %+v, want the mug and the pen", v)
	}
	got := stored()
	slices.SortFunc(want, func(a, b cart.Line) int { return slices.Compare(a.ProductID[:], b.ProductID[:]) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored cart once Redis is back (-want +got):\n%s", diff)
	}
}
