package security

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/cart"
)

// probeDomainRefusals brings about, once each, the refusals of state the
// document lists for the catalog, the cart, the stock and checkout that no
// other exchange of the suites gets (dev/contract's
// TestEveryListedAnswerWasSeen named them), and wants each answered with
// its status and code: a taken SKU on create and on update, a product of
// another currency in a cart, a cart the catalog made mixed, a product
// more than a cart holds, a checkout of an unknown product, of an empty
// cart, of a mixed cart, with a token the processor refuses, and with a reused
// Idempotency-Key, and a stock level below what an order holds. Each
// customer is a new one, so A's objects (API1 BOLA) are left as they were.
func (f *fixture) probeDomainRefusals(t *testing.T) {
	want := func(what string, a answer, status int, code string) {
		t.Helper()
		if a.Status != status || a.code() != code {
			t.Errorf("%s: %s, want %d %s", what, a, status, code)
		} else if why := a.problem(); why != "" {
			t.Errorf("%s: %s: %s", what, a, why)
		}
	}
	create := f.op(t, "create-product")
	newProduct := func(currency string) uuid.UUID {
		t.Helper()
		body := f.example(t, create)
		body["price"] = map[string]any{"amount": 100, "currency": currency}
		a := f.must(t, request{Method: http.MethodPost, URL: f.url(create, nil), Token: f.admin, Body: mustJSON(t, body)})
		var p struct{ ID uuid.UUID }
		if a.Status != http.StatusCreated || json.Unmarshal(a.Body, &p) != nil {
			t.Fatalf("create a %s product: %s", currency, a)
		}
		return p.ID
	}

	taken := f.example(t, create)
	taken["sku"] = f.product.SKU
	want("create-product with a taken SKU", f.must(t, request{Method: http.MethodPost, URL: f.url(create, nil),
		Token: f.admin, Body: mustJSON(t, taken)}), http.StatusConflict, "sku_taken")
	update := f.op(t, "update-product")
	want("update-product to a taken SKU", f.must(t, request{Method: http.MethodPatch, URL: f.url(update, f.values()),
		Token: f.admin, Body: mustJSON(t, map[string]any{"sku": f.product.SKU})}), http.StatusConflict, "sku_taken")

	cartItem := func(token string, product uuid.UUID) answer {
		return f.must(t, request{Method: http.MethodPut, URL: f.EdgeURL + "/api/v1/cart/items/" + product.String(),
			Token: token, Body: []byte(`{"quantity":1}`)})
	}
	mixed := f.Token(t, auth.RoleCustomer)
	if a := cartItem(mixed, newProduct("USD")); a.Status != http.StatusOK {
		t.Fatalf("a USD product into a new cart: %s", a)
	}
	want("set-cart-item of a EUR product into a USD cart", cartItem(mixed, newProduct("EUR")), http.StatusConflict, "currency_mismatch")
	// A cart of two USD products, one of them repriced in EUR since.
	repriced := newProduct("USD")
	if a := cartItem(mixed, repriced); a.Status != http.StatusOK {
		t.Fatalf("a second USD product into the cart: %s", a)
	}
	if a := f.must(t, request{Method: http.MethodPatch, URL: f.url(update, map[string]string{"id": repriced.String()}), Token: f.admin,
		Body: []byte(`{"price":{"amount":100,"currency":"EUR"}}`)}); a.Status != http.StatusOK {
		t.Fatalf("reprice a product of the cart in EUR: %s", a)
	}
	want("get-cart of a cart the catalog made mixed", f.must(t, request{Method: http.MethodGet, URL: f.EdgeURL + "/api/v1/cart",
		Token: mixed}), http.StatusConflict, "currency_mismatch")

	// A cart holds at most cart.MaxLines different products.
	full := f.Token(t, auth.RoleCustomer)
	for i := range cart.MaxLines {
		if a := cartItem(full, newProduct("USD")); a.Status != http.StatusOK {
			t.Fatalf("product %d into a new cart: %s", i+1, a)
		}
	}
	want("set-cart-item of one product more than a cart holds", cartItem(full, newProduct("USD")),
		http.StatusUnprocessableEntity, "cart_full")

	order := func(token, key string, body map[string]any) answer {
		h := map[string]string{}
		if key != "" {
			h["Idempotency-Key"] = key
		}
		return f.must(t, request{Method: http.MethodPost, URL: f.EdgeURL + "/api/v1/orders", Token: token, Header: h, Body: mustJSON(t, body)})
	}
	want("create-order of an unknown product", order(f.Token(t, auth.RoleCustomer), "", orderBody(uuid.Must(uuid.NewV7()), 1)),
		http.StatusUnprocessableEntity, "unknown_product")
	empty := orderBody(f.product.ID, 1)
	delete(empty, "items")
	want("create-order without items of an empty cart", order(f.Token(t, auth.RoleCustomer), "", empty),
		http.StatusUnprocessableEntity, "cart_empty")
	want("create-order without items of a cart the catalog made mixed", order(mixed, "", empty),
		http.StatusConflict, "currency_mismatch")
	refused := orderBody(f.product.ID, 1)
	refused["payment"] = map[string]any{"token": "tok_unknown"}
	want("create-order with a token the processor refuses", order(f.Token(t, auth.RoleCustomer), "", refused),
		http.StatusUnprocessableEntity, "invalid_payment_token")

	// A confirmed order holds its unit until the sweep settles it
	// (SETTLE_AFTER, 30 s): setting the stock below that hold at once is
	// refused.
	buyer, key := f.Token(t, auth.RoleCustomer), uuid.NewString()
	if a := order(buyer, key, orderBody(f.scratch.ID, 1)); a.Status != http.StatusCreated {
		t.Fatalf("an order of the scratch product: %s", a)
	}
	stock := f.must(t, request{Method: http.MethodGet, URL: f.EdgeURL + "/api/v1/inventory/" + f.scratch.ID.String(), Token: f.admin})
	var level struct{ Reserved int }
	if stock.Status != http.StatusOK || json.Unmarshal(stock.Body, &level) != nil || level.Reserved < 1 {
		t.Fatalf("the scratch product's stock right after an order: %s, want a unit reserved", stock)
	}
	want("set-stock below the units reserved", f.must(t, request{Method: http.MethodPut,
		URL: f.EdgeURL + "/api/v1/inventory/" + f.scratch.ID.String(), Token: f.admin,
		Header: map[string]string{"If-Match": stock.Header.Get("ETag")}, Body: []byte(`{"on_hand":0}`)}),
		http.StatusConflict, "below_reserved")
	want("create-order with a reused Idempotency-Key and another body", order(buyer, key, orderBody(f.scratch.ID, 2)),
		http.StatusConflict, "idempotency_key_reused")
}
