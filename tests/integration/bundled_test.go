package integration

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// TestBundledStackThroughTheEdge runs the faasd-CE stack (stack.ce.yml: one
// function per service) behind gateway/kong.ce.yml: a customer registers,
// logs in, reads their account, browses the catalog and places an order whose
// saga reaches reserve-stock and charge-payment as members of the inventory
// and payments bundles (/function/<service>/_fn/<member>), set-stock reads
// the product from the catalog bundle the same way, and the sweep
// (expire-reservations, a member of the inventory bundle) sells the order's
// hold after asking order-statuses, a member of the orders bundle.
func TestBundledStackThroughTheEdge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local runtime; -short was asked for")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "test:bundled:" + hex.EncodeToString(b) + ":"
	rt := runtimetest.Start(t, runtimetest.Options{
		StackFile: "stack.ce.yml",
		KongFile:  "gateway/kong.ce.yml",
		Functions: []string{"users", "catalog", "inventory", "cart", "orders", "payments"},
		Env: map[string]string{
			"USERS_DATABASE_URL":     pgtest.NewDatabase(t),
			"CATALOG_DATABASE_URL":   pgtest.NewDatabase(t),
			"INVENTORY_DATABASE_URL": pgtest.NewDatabase(t),
			"PAYMENTS_DATABASE_URL":  pgtest.NewDatabase(t),
			"ORDERS_DATABASE_URL":    pgtest.NewDatabase(t),
			"REDIS_ADDR":             "127.0.0.1:6379",
			"CART_KEY_PREFIX":        prefix + "cart:",
			"PRODUCT_CACHE_PREFIX":   prefix + "product:",
			"MEILI_URL":              "",
		},
		ReadyTimeout: 3 * time.Minute,
	})
	edge := rt.EdgeURL + "/api/v1"

	// The gateway knows the bundles, not their members, with the union of
	// the members' topics and the scheduled member's schedule.
	req, err := http.NewRequest(http.MethodGet, rt.GatewayURL+"/system/functions", nil)
	if err != nil {
		t.Fatal(err)
	}
	rt.Authorize(req)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var fns []struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	}
	err = json.NewDecoder(res.Body).Decode(&fns)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fns {
		names = append(names, f.Name)
		if f.Name == "catalog" && f.Annotations["topic"] != "order.placed.v1,order.cancelled.v1,product.changed.v1,stock.changed.v1" {
			t.Errorf("catalog bundle topic annotation %q", f.Annotations["topic"])
		}
		if f.Name == "inventory" && f.Annotations["schedule"] == "" {
			t.Errorf("inventory bundle has no schedule annotation: %v", f.Annotations)
		}
	}
	slices.Sort(names)
	if want := []string{"cart", "catalog", "inventory", "orders", "payments", "users"}; !slices.Equal(names, want) {
		t.Errorf("deployed functions %v, want %v", names, want)
	}

	// Register, log in, read the account.
	status, _, user := usersCall(t, http.MethodPost, edge+"/users", "",
		`{"email":"bundled@example.com","password":"bundled-password","name":"Bundled Buyer"}`)
	if status != http.StatusCreated || user["email"] != "bundled@example.com" {
		t.Fatalf("register: %d %v", status, user)
	}
	status, _, tok := usersCall(t, http.MethodPost, edge+"/auth/login", "", `{"email":"bundled@example.com","password":"bundled-password"}`)
	access, _ := tok["access_token"].(string)
	if status != http.StatusOK || access == "" {
		t.Fatalf("login: %d %v", status, tok)
	}
	status, _, me := usersCall(t, http.MethodGet, edge+"/users/me", access, "")
	if status != http.StatusOK || me["id"] != user["id"] {
		t.Fatalf("get me: %d %v", status, me)
	}
	if status, _, _ := usersCall(t, http.MethodGet, edge+"/users/me", "", ""); status != http.StatusUnauthorized {
		t.Fatalf("get me without a token: %d, want 401", status)
	}

	// An admin lists a product and stocks it (set-stock → catalog bundle).
	tokens, err := auth.ParseSigner(rt.ReadSecret(t, "jwt-signing-key"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := tokens.Issue(uuid.Must(uuid.NewV7()), auth.RoleAdmin)
	var product struct {
		ID uuid.UUID `json:"id"`
	}
	if code := call(t, http.MethodPost, edge+"/products", admin, map[string]any{"sku": "BUNDLE-MUG-" + hex.EncodeToString(b),
		"name": "Bundled mug", "description": "A mug", "category": "bundled",
		"price": map[string]any{"amount": 1299, "currency": "USD"}}, &product); code != http.StatusCreated {
		t.Fatalf("create product: %d", code)
	}
	if code, _ := callWith(t, http.MethodPut, edge+"/inventory/"+product.ID.String(), admin, map[string]string{"If-None-Match": "*"},
		map[string]int{"on_hand": 5}, nil); code != http.StatusOK {
		t.Fatalf("set stock: %d", code)
	}

	// Browse.
	var list struct {
		Items []struct {
			ID uuid.UUID `json:"id"`
		} `json:"items"`
	}
	if code := call(t, http.MethodGet, edge+"/products?category=bundled", "", nil, &list); code != http.StatusOK ||
		!slices.ContainsFunc(list.Items, func(p struct {
			ID uuid.UUID `json:"id"`
		}) bool {
			return p.ID == product.ID
		}) {
		t.Fatalf("list products: %d %+v", code, list)
	}
	if code := call(t, http.MethodGet, edge+"/products/"+product.ID.String(), "", nil, nil); code != http.StatusOK {
		t.Fatalf("get product: %d", code)
	}

	// Order: the saga's internal calls go through the bundles.
	var order struct {
		ID     uuid.UUID `json:"id"`
		Status string    `json:"status"`
	}
	body := map[string]any{
		"items":            []map[string]any{{"product_id": product.ID, "quantity": 2}},
		"shipping_address": map[string]string{"name": "Ada", "line1": "1 Loop Rd", "city": "Springfield", "postal_code": "12345", "country": "US"},
		"payment":          map[string]string{"token": "tok_visa"},
	}
	if code := call(t, http.MethodPost, edge+"/orders", access, body, &order); code != http.StatusCreated || order.Status != "confirmed" {
		t.Fatalf("create order: %d %+v", code, order)
	}
	var stock struct {
		OnHand   int `json:"on_hand"`
		Reserved int `json:"reserved"`
	}
	if code := call(t, http.MethodGet, edge+"/inventory/"+product.ID.String(), "", nil, &stock); code != http.StatusOK || stock.OnHand != 5 || stock.Reserved != 2 {
		t.Fatalf("stock after the order: %d %+v, want on_hand 5, reserved 2 (held until the sweep)", code, stock)
	}
	if code, out := internalCall(t, rt.GatewayURL, "inventory/_fn/expire-reservations?settle_after_seconds=0", rt.ReadSecret(t, "internal-token-scheduler"), map[string]any{}); code != http.StatusOK || out["settled"] != float64(1) {
		t.Fatalf("sweep through the bundles: %d %v, want the order's hold settled", code, out)
	}
	if code := call(t, http.MethodGet, edge+"/inventory/"+product.ID.String(), "", nil, &stock); code != http.StatusOK || stock.OnHand != 3 || stock.Reserved != 0 {
		t.Fatalf("stock after the sweep: %d %+v, want on_hand 3, reserved 0", code, stock)
	}
	var pay struct {
		Status string `json:"status"`
	}
	if code := call(t, http.MethodGet, edge+"/orders/"+order.ID.String()+"/payment", access, nil, &pay); code != http.StatusOK || pay.Status != "captured" {
		t.Fatalf("payment: %d %+v", code, pay)
	}

	// Members keep their own checks: the reserved internal prefix is not
	// routed by the edge, and through the gateway it still needs the
	// internal credential.
	if code := call(t, http.MethodPost, rt.EdgeURL+"/_fn/reserve-stock", "", map[string]any{}, nil); code != http.StatusNotFound {
		t.Errorf("internal prefix through the edge: %d, want 404", code)
	}
	res, err = http.Post(rt.GatewayURL+"/function/inventory/_fn/reserve-stock", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
		t.Errorf("internal call without the credential: %d, want 401 or 403", res.StatusCode)
	}
	if code := call(t, http.MethodGet, rt.GatewayURL+"/function/orders/api/v1/no-such-route", "", nil, nil); code != http.StatusNotFound {
		t.Errorf("unknown route in a bundle: %d, want 404", code)
	}
}
