package catalogclient_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fntest"
)

// With get-product at its own address (FUNCTION_URLS, read by ConfigFrom)
// the client calls it there with the function's own path, not the gateway.
func TestGetProductDirect(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	gw := fntest.NewUnusedGateway(t)
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/products/"+id.String() {
			http.Error(w, "wrong route "+r.URL.Path, http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "sku": "MUG-001", "name": "Mug", "description": "",
			"category": "kitchen", "price": map[string]any{"amount": 1299, "currency": "USD"}, "sold_count": 0})
	}))
	t.Cleanup(direct.Close)
	c := config.New(config.Env(map[string]string{"GATEWAY_URL": gw.URL, "FUNCTION_URLS": "get-product=" + direct.URL}))
	cfg := catalogclient.ConfigFrom(c)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	client, err := catalogclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.GetProduct(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != id {
		t.Errorf("product %v, want %v", p.ID, id)
	}
}
