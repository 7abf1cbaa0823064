package function

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalogclient/catalogtest"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestSetStock(t *testing.T) {
	pool := pgtest.Open(t, inventorydb.Migrations())
	store := inventorydb.New(pool)
	h, cat, tokens := handler(t, store)
	product := cat.Add("MUG-1", 1299, "USD")
	reservedProduct := cat.Add("MUG-2", 1299, "USD")
	if _, err := store.SetOnHand(context.Background(), reservedProduct.ID, 10, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), `UPDATE stock SET reserved = 4 WHERE product_id = $1`, reservedProduct.ID); err != nil {
		t.Fatal(err)
	}
	archived := cat.Add("OLD-1", 500, "USD")
	cat.Archive(archived.ID)

	admin := fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	customer := fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	path := func(id uuid.UUID) string { return "/api/v1/inventory/" + id.String() }
	anyRow := map[string]string{"If-Match": "*"}
	newRow := map[string]string{"If-None-Match": "*"}
	tests := []struct {
		name       string
		auth       string
		path       string
		header     map[string]string
		body       string
		wantStatus int
		wantCode   string
		want       *inventory.View
	}{
		// The request is judged before its precondition: these send none.
		{"no token", "", path(product.ID), nil, `{"on_hand":5}`, 401, "unauthenticated", nil},
		{"forged token", "Bearer x.y.z", path(product.ID), nil, `{"on_hand":5}`, 401, "unauthenticated", nil},
		{"customer", customer, path(product.ID), nil, `{"on_hand":5}`, 403, "forbidden", nil},
		{"negative", admin, path(product.ID), nil, `{"on_hand":-1}`, 422, "invalid_request", nil},
		{"absurd", admin, path(product.ID), nil, `{"on_hand":1000001}`, 422, "invalid_request", nil},
		{"int64 max", admin, path(product.ID), nil, `{"on_hand":9223372036854775807}`, 422, "invalid_request", nil},
		// An integer too large for an int64 is no integer the API can read:
		// 400 invalid_json, as the product endpoints' decoder answers.
		{"huge", admin, path(product.ID), nil, `{"on_hand":99999999999999999999999}`, 400, "invalid_json", nil},
		// An integer with a fraction or an exponent is 400 invalid_json, as
		// api/openapi.yaml says and the product endpoints answer, even when
		// it is a whole number in range.
		{"fraction", admin, path(product.ID), nil, `{"on_hand":2.5}`, 400, "invalid_json", nil},
		{"whole fraction", admin, path(product.ID), nil, `{"on_hand":2.0}`, 400, "invalid_json", nil},
		{"exponent", admin, path(product.ID), nil, `{"on_hand":1e3}`, 400, "invalid_json", nil},
		{"missing", admin, path(product.ID), nil, `{}`, 422, "invalid_request", nil},
		{"string", admin, path(product.ID), nil, `{"on_hand":"5"}`, 400, "invalid_json", nil},
		{"unknown field", admin, path(product.ID), nil, `{"on_hand":5,"reserved":0}`, 400, "invalid_json", nil},
		{"not json", admin, path(product.ID), nil, `on_hand=5`, 400, "invalid_json", nil},
		{"bad id", admin, "/api/v1/inventory/nope", nil, `{"on_hand":5}`, 404, "not_found", nil},
		{"no precondition", admin, path(product.ID), nil, `{"on_hand":5}`, 428, "precondition_required", nil},
		// Sent empty, If-Match is a list that names no version: a condition
		// that holds for none (412), not a missing one (428).
		{"empty If-Match", admin, path(product.ID), map[string]string{"If-Match": ""}, `{"on_hand":5}`, 412, "precondition_failed", nil},
		{"blank If-Match", admin, path(product.ID), map[string]string{"If-Match": " "}, `{"on_hand":5}`, 412, "precondition_failed", nil},
		{"If-None-Match with a tag", admin, path(product.ID), map[string]string{"If-None-Match": `"x"`}, `{"on_hand":5}`, 422, "invalid_request", nil},
		{"If-None-Match sent empty", admin, path(product.ID), map[string]string{"If-None-Match": ""}, `{"on_hand":5}`, 422, "invalid_request", nil},
		{"unknown product", admin, path(uuid.Must(uuid.NewV7())), newRow, `{"on_hand":5}`, 404, "not_found", nil},
		// An id that names nothing is 404 before any precondition is asked for.
		{"unknown product, no precondition", admin, path(uuid.Nil), nil, `{"on_hand":5}`, 404, "not_found", nil},
		{"archived product", admin, path(archived.ID), newRow, `{"on_hand":5}`, 404, "not_found", nil},
		{"If-Match: * never stocked", admin, path(product.ID), anyRow, `{"on_hand":5}`, 412, "precondition_failed", nil},
		{"If-None-Match: * stocked", admin, path(reservedProduct.ID), newRow, `{"on_hand":5}`, 412, "precondition_failed", nil},
		{"below reserved", admin, path(reservedProduct.ID), anyRow, `{"on_hand":3}`, 409, "below_reserved", nil},
		{"at reserved", admin, path(reservedProduct.ID), anyRow, `{"on_hand":4}`, 200, "",
			&inventory.View{ProductID: reservedProduct.ID, OnHand: 4, Reserved: 4, Available: 0, Version: 3}},
		{"first stocking", admin, path(product.ID), newRow, `{"on_hand":1000000}`, 200, "",
			&inventory.View{ProductID: product.ID, OnHand: 1000000, Reserved: 0, Available: 1000000, Version: 1}},
		{"zero", admin, path(product.ID), map[string]string{"If-Match": `"stock-` + product.ID.String() + `-1"`}, `{"on_hand":0}`, 200, "",
			&inventory.View{ProductID: product.ID, OnHand: 0, Reserved: 0, Available: 0, Version: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPut, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode != "" {
				var p struct{ Code string }
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != tt.wantCode {
					t.Fatalf("problem code = %q (%v), want %q; body %s", p.Code, err, tt.wantCode, rec.Body)
				}
			}
			if tt.want != nil {
				var got inventory.View
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(*tt.want, got); diff != "" {
					t.Fatalf("body (-want +got):\n%s", diff)
				}
				if tag, want := rec.Header().Get("ETag"), (inventory.Stock{ProductID: got.ProductID, Version: got.Version}).ETag(); tag != want {
					t.Errorf("ETag %q, want %q", tag, want)
				}
			}
		})
	}

	// Only the three accepted changes (and the setup's one) wrote events.
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE type = 'stock.changed.v1'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("stock.changed.v1 events = %d, want 4", n)
	}
}

func TestSetStockCatalogDown(t *testing.T) {
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	h, cat, tokens := handler(t, store)
	p := cat.Add("X-1", 100, "USD")
	cat.SetDown(true)
	req := httptest.NewRequest(http.MethodPut, "/api/v1/inventory/"+p.ID.String(), strings.NewReader(`{"on_hand":5}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleAdmin))
	req.Header.Set("If-None-Match", "*")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503; body %s", rec.Code, rec.Body)
	}
	if _, err := store.Get(context.Background(), p.ID); err == nil {
		t.Fatal("stock was written although the catalog could not confirm the product")
	}
}

// An administrator reads the level, the level moves (here a reservation),
// and the write decided on the old one is refused with 412, naming the
// version to read again; nothing is written. Read again, it goes through, and
// its answer's ETag is the next write's If-Match.
func TestSetStockOnAStaleETagIsRefused(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Open(t, inventorydb.Migrations())
	store := inventorydb.New(pool)
	h, cat, tokens := handler(t, store)
	p := cat.Add("MUG-3", 1299, "USD")
	if _, err := store.Init(ctx, p.ID, 10); err != nil {
		t.Fatal(err)
	}
	admin := fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	put := func(ifMatch string, onHand int) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(http.MethodPut, "/api/v1/inventory/"+p.ID.String(), strings.NewReader(fmt.Sprintf(`{"on_hand":%d}`, onHand)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", admin)
		req.Header.Set("If-Match", ifMatch)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	read, err := store.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	req, err := inventory.NewHoldRequest(uuid.Must(uuid.NewV7()), []inventory.Line{{ProductID: p.ID, Quantity: 3}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Reserve(ctx, req); err != nil {
		t.Fatal(err)
	}
	moved, err := store.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}

	rec := put(read.ETag(), 15)
	var problem struct{ Code, Detail string }
	if rec.Code != http.StatusPreconditionFailed || json.Unmarshal(rec.Body.Bytes(), &problem) != nil ||
		problem.Code != "precondition_failed" || !strings.Contains(problem.Detail, moved.ETag()) {
		t.Fatalf("PUT on the ETag read before the reservation: %d %s; want a 412 precondition_failed naming %s", rec.Code, rec.Body, moved.ETag())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("412 Content-Type %q", ct)
	}
	if now, err := store.Get(ctx, p.ID); err != nil || now.OnHand != 10 || now.Version != moved.Version {
		t.Fatalf("stock after the refused write: %+v, %v; want it untouched", now, err)
	}

	rec = put(`"other", `+moved.ETag(), 15)
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT on the current ETag (in a list): %d %s", rec.Code, rec.Body)
	}
	var v inventory.View
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.OnHand != 15 || v.Reserved != 3 || v.Version <= moved.Version {
		t.Fatalf("answer %s, %v", rec.Body, err)
	}
	next := rec.Header().Get("ETag")
	if rec = put(moved.ETag(), 16); rec.Code != http.StatusPreconditionFailed {
		t.Fatalf("PUT again on the ETag just used: %d %s, want 412", rec.Code, rec.Body)
	}
	if rec = put(next, 16); rec.Code != http.StatusOK {
		t.Fatalf("PUT on the ETag the last write answered: %d %s", rec.Code, rec.Body)
	}
}

// If-Match is RFC 9110's (§13.1.1), read as update-product reads it
// (fnhttp.ParseIfMatch): "*" or a list of entity tags over every field line,
// one of which is the current ETag exactly by the strong comparison. A field
// that is not such a list matches nothing, even when splitting it at its
// commas would find the current tag: 412, problem+json, nothing written. So
// does a field sent with no tag in it (empty, whitespace, commas): an empty
// list, a condition that holds for no version, not a missing one (428).
func TestSetStockIfMatchMatchesOnlyTheCurrentTagExactly(t *testing.T) {
	ctx := context.Background()
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	h, cat, tokens := handler(t, store)
	admin := fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	for i, c := range fntest.IfMatchCases() {
		t.Run(c.Name, func(t *testing.T) {
			p := cat.Add(fmt.Sprintf("IFM-%d", i), 1299, "USD")
			if _, err := store.Init(ctx, p.ID, 10); err != nil {
				t.Fatal(err)
			}
			before, err := store.Get(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPut, "/api/v1/inventory/"+p.ID.String(), strings.NewReader(`{"on_hand":7}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", admin)
			for _, line := range c.Lines(before.ETag()) {
				r.Header.Add("If-Match", line)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			status, want := http.StatusPreconditionFailed, 10
			if c.Holds {
				status, want = http.StatusOK, 7
			}
			if w.Code != status {
				t.Fatalf("If-Match %q on a level whose ETag is %s: %d, want %d: %s",
					r.Header.Values("If-Match"), before.ETag(), w.Code, status, w.Body)
			}
			if !c.Holds {
				pr := fntest.Problem(t, w, http.StatusPreconditionFailed, "precondition_failed")
				// An empty or malformed field is told apart from another version.
				if strings.Contains(pr.Detail, "names no entity tag") != c.NoTag {
					t.Errorf("If-Match %q: detail %q; want it to say the field names no entity tag: %v", r.Header.Values("If-Match"), pr.Detail, c.NoTag)
				}
			}
			if got, err := store.Get(ctx, p.ID); err != nil || got.OnHand != want {
				t.Errorf("stock after %d: on_hand %d, %v; want %d", w.Code, got.OnHand, err, want)
			}
		})
	}
}

// The product's own ETag (update-product's If-Match) names the catalog's
// version, not the level's: sent to set-stock it matches nothing, even when
// the two versions are equal (it did while the two tags had one format).
func TestSetStockRefusesTheProductsETag(t *testing.T) {
	ctx := context.Background()
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	h, cat, tokens := handler(t, store)
	p := cat.Add("MUG-9", 1299, "USD")
	if _, err := store.Init(ctx, p.ID, 10); err != nil {
		t.Fatal(err)
	}
	level, err := store.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The product at the level's version, as get-product would tag it.
	productETag := catalog.Product{ID: p.ID, Version: level.Version}.ETag()
	r := httptest.NewRequest(http.MethodPut, "/api/v1/inventory/"+p.ID.String(), strings.NewReader(`{"on_hand":7}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleAdmin))
	r.Header.Set("If-Match", productETag)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fntest.Problem(t, w, http.StatusPreconditionFailed, "precondition_failed")
	if got, err := store.Get(ctx, p.ID); err != nil || got.OnHand != 10 {
		t.Errorf("on_hand %d (%v) after a write on the product's ETag; want 10, untouched", got.OnHand, err)
	}
}

// handler is set-stock over store, a catalog stand-in and a token verifier,
// logging nowhere.
func handler(t *testing.T, store *inventorydb.Store) (http.Handler, *catalogtest.Server, *auth.Verifier) {
	t.Helper()
	cat := catalogtest.New(t)
	tokens := fntest.Tokens(t, 0)
	return New(cat.Client(t), store, tokens, slog.New(slog.DiscardHandler)), cat, tokens
}

// TestRefusesABodyWithoutContentType: a body sent without a Content-Type is
// 400 unsupported_media_type, however JSON it looks, as on every operation
// that takes one, so a client that forgets the header learns it at once.
func TestRefusesABodyWithoutContentType(t *testing.T) {
	h, cat, tokens := handler(t, inventorydb.New(pgtest.Open(t, inventorydb.Migrations())))
	product := cat.Add("MUG-1", 1299, "USD")
	admin := fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	w := fntest.Do(t, h, http.MethodPut, "/api/v1/inventory/"+product.ID.String(), "", `{"on_hand":5}`, "Authorization", admin, "If-None-Match", "*")
	fntest.Problem(t, w, http.StatusBadRequest, "unsupported_media_type")
}
