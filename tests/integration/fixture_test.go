package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/tests/stack"
)

// shop is the shared fixture of tests/stack with the helpers of this suite.
type shop struct {
	*stack.Shop
}

// startShop starts functions (and connectors) with a fresh database per
// service, random Redis key prefixes, no Meilisearch, and env on top.
func startShop(t *testing.T, functions, connectors []string, env map[string]string) *shop {
	t.Helper()
	return startTracedShop(t, functions, connectors, env, "")
}

// startTracedShop is startShop with every function, connector and the edge
// exporting their spans to the OTLP/HTTP receiver at otlp ("" exports none).
func startTracedShop(t *testing.T, functions, connectors []string, env map[string]string, otlp string) *shop {
	t.Helper()
	return &shop{stack.Start(t, stack.Options{Functions: functions, Connectors: connectors, Env: env, OTLPEndpoint: otlp})}
}

// token issues a token for a new user with role.
func (s *shop) token(t *testing.T, role string) string {
	t.Helper()
	return s.Token(t, role)
}

// product creates a product straight in the catalog database and stocks it
// for the first time through the edge (set-stock must be running).
func (s *shop) product(t *testing.T, sku string, price int64, onHand int) catalog.Product {
	t.Helper()
	p, err := catalog.NewProduct(catalog.Draft{SKU: sku, Name: "Item " + sku, Category: "test",
		Price: catalog.Money{Amount: price, Currency: "USD"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := openPool(t, s.DB["CATALOG_DATABASE_URL"], catalogdb.Migrations())
	if p, err = catalogdb.New(pool).Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if code, _ := callWith(t, http.MethodPut, s.EdgeURL+"/api/v1/inventory/"+p.ID.String(), s.token(t, auth.RoleAdmin),
		map[string]string{"If-None-Match": "*"}, map[string]int{"on_hand": onHand}, nil); code != http.StatusOK {
		t.Fatalf("set stock of %s: %d", sku, code)
	}
	return p
}

// orderBody is a create-order request for quantity units of product.
func orderBody(product uuid.UUID, quantity int) map[string]any {
	return map[string]any{
		"items":            []map[string]any{{"product_id": product, "quantity": quantity}},
		"shipping_address": map[string]string{"name": "Ada", "line1": "1 Loop Rd", "city": "Springfield", "postal_code": "12345", "country": "US"},
		"payment":          map[string]string{"token": "tok_visa"},
	}
}

// eventEnv gives a test its own exchange and queue names on the real broker
// (deleted when it ends) and the connector settings that keep it fast; pass
// the map to startShop with the outbox-relay and rabbitmq connectors.
func eventEnv(t *testing.T) (broker.Names, map[string]string) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	names := broker.Names{Prefix: "test-" + hex.EncodeToString(b) + "."}
	cleanupBroker(t, names)
	return names, map[string]string{
		"EXCHANGE_PREFIX":  names.Prefix,
		"RETRY_DELAY":      "1s",
		"MAX_ATTEMPTS":     "3",
		"REFRESH_INTERVAL": "500ms",
	}
}
