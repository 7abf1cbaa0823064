package integration

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
)

// TestOrderListAndReservationExpiry runs list-orders, order-statuses and
// expire-reservations as processes: a customer's orders are listed newest
// first and paged, another customer sees none of them; order-statuses answers
// only expire-reservations' credential, with the status of each order it
// knows; expire-reservations invoked through the gateway, as the scheduler
// does, gives back a hold whose order does not exist once past its expiry,
// leaves the confirmed orders' fresh holds alone (SETTLE_AFTER), and sells
// them when told to settle at once; an administrator's set-stock on the ETag
// read before that sale is refused (412), so the units sold are not put back
// on hand to be sold twice.
func TestOrderListAndReservationExpiry(t *testing.T) {
	s := startShop(t, []string{"get-product", "get-stock", "set-stock", "reserve-stock", "commit-stock", "release-stock",
		"expire-reservations", "order-statuses", "charge-payment", "refund-payment", "create-order", "list-orders"}, nil, nil)
	ctx := context.Background()
	p := s.product(t, "JOB-CUP-1", 800, 10)
	stockURL := s.EdgeURL + "/api/v1/inventory/" + p.ID.String()
	alice, bob := s.token(t, auth.RoleCustomer), s.token(t, auth.RoleCustomer)
	var placed []string
	for range 3 {
		var o struct {
			ID string `json:"id"`
		}
		if code := call(t, http.MethodPost, s.EdgeURL+"/api/v1/orders", alice, orderBody(p.ID, 1), &o); code != http.StatusCreated {
			t.Fatalf("create order: %d", code)
		}
		placed = append(placed, o.ID)
	}

	type page struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
		NextCursor *string `json:"next_cursor"`
	}
	var first, second page
	if code := call(t, http.MethodGet, s.EdgeURL+"/api/v1/orders?limit=2", alice, nil, &first); code != http.StatusOK {
		t.Fatalf("list orders: %d", code)
	}
	if len(first.Items) != 2 || first.NextCursor == nil || first.Items[0].ID != placed[2] || first.Items[1].ID != placed[1] {
		t.Fatalf("first page %+v, want the two newest of %v and a cursor", first, placed)
	}
	if code := call(t, http.MethodGet, s.EdgeURL+"/api/v1/orders?limit=2&cursor="+*first.NextCursor, alice, nil, &second); code != http.StatusOK {
		t.Fatalf("second page: %d", code)
	}
	if len(second.Items) != 1 || second.Items[0].ID != placed[0] || second.NextCursor != nil {
		t.Errorf("second page %+v, want only %s and no cursor", second, placed[0])
	}
	badCursor(t, s.EdgeURL+"/api/v1/orders?limit=2", alice)
	var others page
	if code := call(t, http.MethodGet, s.EdgeURL+"/api/v1/orders", bob, nil, &others); code != http.StatusOK || len(others.Items) != 0 {
		t.Errorf("another customer's list: %d %+v, want 200 and no orders", code, others)
	}

	// order-statuses answers the sweep only, with the statuses it knows.
	credential := s.ReadSecret(t, "internal-token-create-order") // the saga's caller
	sweeper := s.ReadSecret(t, "internal-token-expire-reservations")
	absent := uuid.NewString()
	asked := map[string]any{"order_ids": append(append([]string{}, placed...), absent)}
	if code, out := internalCall(t, s.GatewayURL, "order-statuses", "", asked); code != http.StatusUnauthorized {
		t.Errorf("order-statuses without the credential: %d %v", code, out)
	}
	if code, out := internalCall(t, s.GatewayURL, "order-statuses", credential, asked); code != http.StatusForbidden {
		t.Errorf("order-statuses called as create-order: %d %v, want 403", code, out)
	}
	if code, out := internalCall(t, s.GatewayURL, "order-statuses", sweeper, map[string]any{"order_ids": []string{"not-a-uuid"}}); code != http.StatusBadRequest {
		t.Errorf("order-statuses of a bad id: %d %v, want 400", code, out)
	}
	code, out := internalCall(t, s.GatewayURL, "order-statuses", sweeper, asked)
	statuses, _ := out["statuses"].(map[string]any)
	if code != http.StatusOK || len(statuses) != len(placed) {
		t.Fatalf("order-statuses: %d %v, want the %d placed orders", code, out, len(placed))
	}
	for _, id := range placed {
		if statuses[id] != "confirmed" {
			t.Errorf("order %s: %v, want confirmed", id, statuses[id])
		}
	}

	// A hold whose order never went further expires.
	order := uuid.Must(uuid.NewV7())
	if code, out := internalCall(t, s.GatewayURL, "reserve-stock", credential, map[string]any{
		"order_id": order, "lines": []map[string]any{{"product_id": p.ID, "quantity": 4}},
	}); code != http.StatusOK {
		t.Fatalf("reserve: %d %v", code, out)
	}
	var stock struct {
		OnHand    int `json:"on_hand"`
		Reserved  int `json:"reserved"`
		Available int `json:"available"`
	}
	// The 3 confirmed orders' holds are not sold yet: the sweep does that.
	if code := call(t, http.MethodGet, stockURL, "", nil, &stock); code != http.StatusOK || stock.OnHand != 10 || stock.Reserved != 7 || stock.Available != 3 {
		t.Fatalf("after the hold: %d %+v, want 200, 10 on hand, 7 reserved and 3 available", code, stock)
	}
	inventory := openPool(t, s.DB["INVENTORY_DATABASE_URL"], inventorydb.Migrations())
	if _, err := inventory.Exec(ctx, `UPDATE reservations SET expires_at = now() - interval '1 minute', created_at = now() - interval '2 minutes' WHERE order_id = $1`, order); err != nil {
		t.Fatal(err)
	}
	if code, out := internalCall(t, s.GatewayURL, "expire-reservations", "", map[string]any{}); code != http.StatusUnauthorized {
		t.Errorf("expire-reservations without the credential: %d %v", code, out)
	}
	if code, out := internalCall(t, s.GatewayURL, "expire-reservations", credential, map[string]any{}); code != http.StatusForbidden {
		t.Errorf("expire-reservations called as create-order: %d %v, want 403", code, out)
	}
	scheduler := s.ReadSecret(t, "internal-token-scheduler")
	code, out = internalCall(t, s.GatewayURL, "expire-reservations", scheduler, map[string]any{})
	if code != http.StatusOK || out["expired"] != float64(1) || out["settled"] != float64(0) || out["released"] != float64(0) {
		t.Fatalf("expire-reservations: %d %v, want 1 expired, nothing else (the orders' holds are younger than SETTLE_AFTER)", code, out)
	}
	// An administrator reads the level now (10 on hand, 3 reserved), and
	// will write "10 + 5 received" after the sweep has sold the 3.
	code, h := callWith(t, http.MethodGet, stockURL, "", nil, nil, &stock)
	read := h.Get("ETag")
	if code != http.StatusOK || read == "" {
		t.Fatalf("get-stock after expiry: %d, ETag %q, want 200 and an ETag", code, read)
	}
	if stock.OnHand != 10 || stock.Reserved != 3 || stock.Available != 7 {
		t.Errorf("after expiry: %+v, want 10 on hand, 3 reserved and 7 available", stock)
	}
	code, out = internalCall(t, s.GatewayURL, "expire-reservations?settle_after_seconds=0", scheduler, map[string]any{})
	if code != http.StatusOK || out["settled"] != float64(3) || out["expired"] != float64(0) {
		t.Fatalf("expire-reservations at once: %d %v, want the 3 confirmed orders' holds settled", code, out)
	}
	if code := call(t, http.MethodGet, stockURL, "", nil, &stock); code != http.StatusOK || stock.OnHand != 7 || stock.Reserved != 0 || stock.Available != 7 {
		t.Errorf("after settlement: %d %+v, want 200, 7 on hand, nothing reserved and 7 available", code, stock)
	}
	// Written, 15 would put the 3 units sold back on hand, to be sold twice.
	if code, _ := callWith(t, http.MethodPut, stockURL, s.token(t, auth.RoleAdmin), map[string]string{"If-Match": read},
		map[string]int{"on_hand": 15}, nil); code != http.StatusPreconditionFailed {
		t.Errorf("set-stock on the ETag read before the sale: %d, want 412", code)
	}
	if code := call(t, http.MethodGet, stockURL, "", nil, &stock); code != http.StatusOK || stock.OnHand != 7 || stock.Reserved != 0 {
		t.Errorf("after the stale write: %d %+v, want 200, 7 on hand, nothing reserved", code, stock)
	}
}
