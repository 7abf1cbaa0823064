package function

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestGetStock(t *testing.T) {
	store := inventorydb.New(pgtest.Open(t, inventorydb.Migrations()))
	h := New(store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	stocked := uuid.Must(uuid.NewV7())
	if _, err := store.SetOnHand(context.Background(), stocked, 25, inventory.IfAbsent()); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantCode   string
		want       *inventory.View
	}{
		{"stocked", http.MethodGet, "/api/v1/inventory/" + stocked.String(), 200, "",
			&inventory.View{ProductID: stocked, OnHand: 25, Reserved: 0, Available: 25, Version: 1}},
		{"never stocked", http.MethodGet, "/api/v1/inventory/" + uuid.Must(uuid.NewV7()).String(), 404, "not_found", nil},
		{"not a uuid", http.MethodGet, "/api/v1/inventory/abc", 404, "not_found", nil},
		{"wrong method", http.MethodPost, "/api/v1/inventory/" + stocked.String(), 405, "method_not_allowed", nil},
		{"other path", http.MethodGet, "/api/v1/other", 404, "not_found", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
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
				// The ETag is set-stock's If-Match: strong, of the version in the body.
				if tag, want := rec.Header().Get("ETag"), `"stock-`+got.ProductID.String()+`-1"`; tag != want {
					t.Errorf("ETag %q, want %q", tag, want)
				}
			}
		})
	}
}
