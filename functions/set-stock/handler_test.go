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

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/catalogclient/catalogtest"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

const testKey = "test-jwt-key-0123456789abcdef0123456789"

func TestSetStock(t *testing.T) {
	pool := pgtest.Open(t, inventorydb.Migrations())
	store := inventorydb.New(pool)
	catalog := catalogtest.New(t)
	tokens, err := auth.NewTokens(testKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	h := New(tokens, catalog.Client(t), store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	product := catalog.Add("MUG-1", 1299, "USD")
	reservedProduct := catalog.Add("MUG-2", 1299, "USD")
	if _, err := store.SetOnHand(context.Background(), reservedProduct.ID, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), `UPDATE stock SET reserved = 4 WHERE product_id = $1`, reservedProduct.ID); err != nil {
		t.Fatal(err)
	}
	archived := catalog.Add("OLD-1", 500, "USD")
	catalog.Archive(archived.ID)

	admin := fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	customer := fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	path := func(id uuid.UUID) string { return "/api/v1/inventory/" + id.String() }
	tests := []struct {
		name       string
		auth       string
		path       string
		body       string
		wantStatus int
		wantCode   string
		want       *inventory.View
	}{
		{"no token", "", path(product.ID), `{"on_hand":5}`, 401, "unauthenticated", nil},
		{"forged token", "Bearer x.y.z", path(product.ID), `{"on_hand":5}`, 401, "unauthenticated", nil},
		{"customer", customer, path(product.ID), `{"on_hand":5}`, 403, "forbidden", nil},
		{"negative", admin, path(product.ID), `{"on_hand":-1}`, 422, "invalid_request", nil},
		{"absurd", admin, path(product.ID), `{"on_hand":1000001}`, 422, "invalid_request", nil},
		{"huge", admin, path(product.ID), `{"on_hand":99999999999999999999999}`, 422, "invalid_request", nil},
		{"fraction", admin, path(product.ID), `{"on_hand":2.5}`, 422, "invalid_request", nil},
		{"exponent", admin, path(product.ID), `{"on_hand":1e3}`, 422, "invalid_request", nil},
		{"missing", admin, path(product.ID), `{}`, 422, "invalid_request", nil},
		{"string", admin, path(product.ID), `{"on_hand":"5"}`, 400, "invalid_json", nil},
		{"unknown field", admin, path(product.ID), `{"on_hand":5,"reserved":0}`, 400, "invalid_json", nil},
		{"not json", admin, path(product.ID), `on_hand=5`, 400, "invalid_json", nil},
		{"unknown product", admin, path(uuid.Must(uuid.NewV7())), `{"on_hand":5}`, 404, "not_found", nil},
		{"archived product", admin, path(archived.ID), `{"on_hand":5}`, 404, "not_found", nil},
		{"bad id", admin, "/api/v1/inventory/nope", `{"on_hand":5}`, 404, "not_found", nil},
		{"below reserved", admin, path(reservedProduct.ID), `{"on_hand":3}`, 409, "below_reserved", nil},
		{"at reserved", admin, path(reservedProduct.ID), `{"on_hand":4}`, 200, "",
			&inventory.View{ProductID: reservedProduct.ID, OnHand: 4, Reserved: 4, Available: 0}},
		{"ok", admin, path(product.ID), `{"on_hand":1000000}`, 200, "",
			&inventory.View{ProductID: product.ID, OnHand: 1000000, Reserved: 0, Available: 1000000}},
		{"zero", admin, path(product.ID), `{"on_hand":0}`, 200, "",
			&inventory.View{ProductID: product.ID, OnHand: 0, Reserved: 0, Available: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPut, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
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
	catalog := catalogtest.New(t)
	tokens, _ := auth.NewTokens(testKey, 0)
	h := New(tokens, catalog.Client(t), store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p := catalog.Add("X-1", 100, "USD")
	catalog.SetDown(true)
	req := httptest.NewRequest(http.MethodPut, "/api/v1/inventory/"+p.ID.String(), strings.NewReader(`{"on_hand":5}`))
	req.Header.Set("Authorization", fntest.Bearer(t, tokens, uuid.Must(uuid.NewV7()), auth.RoleAdmin))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503; body %s", rec.Code, rec.Body)
	}
	if _, err := store.Get(context.Background(), p.ID); err == nil {
		t.Fatal("stock was written although the catalog could not confirm the product")
	}
}
