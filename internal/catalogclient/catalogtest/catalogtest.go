// Package catalogtest serves the catalog's get-product contract over real
// HTTP for tests of services that read the catalog through the gateway:
// GET /function/get-product/api/v1/products/{id} answers the product's JSON,
// or get-product's 404 problem (naming the product in product_id) when the
// product is unknown or archived.
package catalogtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/gatewayurl"
)

// Server is a running fake gateway in front of a fake get-product. Its
// products can be changed while tests run.
type Server struct {
	// URL is the gateway URL to configure clients with.
	URL      string
	mu       sync.Mutex
	products map[uuid.UUID]catalogclient.Product
	archived map[uuid.UUID]bool
	down     atomic.Bool
	unrouted atomic.Bool
}

// New starts a server closed at the end of the test.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{products: map[uuid.UUID]catalogclient.Product{}, archived: map[uuid.UUID]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /function/get-product/api/v1/products/{id}", s.getProduct)
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Client returns a catalog client pointed at the server.
func (s *Server) Client(tb testing.TB) *catalogclient.Client {
	tb.Helper()
	c, err := catalogclient.New(catalogclient.Config{Locator: gatewayurl.Locator{Gateway: s.URL}})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Add creates a product for sale with a new UUIDv7 and returns it.
func (s *Server) Add(sku string, amount int64, currency string) catalogclient.Product {
	p := catalogclient.Product{ID: uuid.Must(uuid.NewV7()), SKU: sku, Name: "Product " + sku,
		Description: "Test product " + sku, Category: "test",
		Price: catalogclient.Money{Amount: amount, Currency: currency}}
	s.Put(p)
	return p
}

// Put creates or replaces a product (un-archiving it).
func (s *Server) Put(p catalogclient.Product) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.products[p.ID] = p
	delete(s.archived, p.ID)
}

// SetPrice changes a product's price.
func (s *Server) SetPrice(id uuid.UUID, amount int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.products[id]
	p.Price.Amount = amount
	s.products[id] = p
}

// Archive makes get-product answer 404 for the product, as the catalog does.
func (s *Server) Archive(id uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.archived[id] = true
}

// SetDown makes every request answer 503 while down is true.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// SetUnrouted makes every request answer, while unrouted is true, the 404
// of a function that serves no such route (fnhttp.Routes' not_found "no such
// route"), as a misconfigured locator meets: a 404 that is not get-product's
// answer for a product.
func (s *Server) SetUnrouted(unrouted bool) { s.unrouted.Store(unrouted) }

func (s *Server) getProduct(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		writeProblem(w, http.StatusServiceUnavailable, fault.CodeUnavailable, nil)
		return
	}
	if s.unrouted.Load() {
		fnhttp.Routes(http.NewServeMux()).ServeHTTP(w, r)
		return
	}
	id, canonical := fnhttp.PathID(r, "id") // as get-product reads it
	s.mu.Lock()
	p, ok := s.products[id]
	gone := s.archived[id]
	s.mu.Unlock()
	if !canonical {
		writeProblem(w, http.StatusNotFound, fault.CodeNotFound, nil)
		return
	}
	if !ok || gone {
		writeProblem(w, http.StatusNotFound, fault.CodeNotFound, map[string]any{"product_id": id})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p)
}

func writeProblem(w http.ResponseWriter, status int, code fault.Code, members map[string]any) {
	body := map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "code": code}
	for k, v := range members {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
