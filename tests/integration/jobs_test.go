package integration

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
)

// TestOrderListAndReservationExpiry runs list-orders and expire-reservations
// as processes: a customer's orders are listed newest first and paged, another
// customer sees none of them; a hold past its expiry is released by
// expire-reservations invoked through the gateway, as the scheduler does.
func TestOrderListAndReservationExpiry(t *testing.T) {
	s := startShop(t, []string{"get-product", "get-stock", "set-stock", "reserve-stock", "commit-stock", "release-stock",
		"expire-reservations", "charge-payment", "refund-payment", "create-order", "list-orders"}, nil, nil)
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
	var others page
	if code := call(t, http.MethodGet, s.EdgeURL+"/api/v1/orders", bob, nil, &others); code != http.StatusOK || len(others.Items) != 0 {
		t.Errorf("another customer's list: %d %+v, want 200 and no orders", code, others)
	}

	// A hold whose order never went further expires.
	credential := s.ReadSecret(t, "internal-token-create-order") // the saga's caller
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
	if call(t, http.MethodGet, stockURL, "", nil, &stock); stock.Reserved != 4 || stock.Available != 3 {
		t.Fatalf("after the hold: %+v, want 4 reserved and 3 available (7 on hand)", stock)
	}
	inventory := openPool(t, s.DB["INVENTORY_DATABASE_URL"], inventorydb.Migrations())
	if _, err := inventory.Exec(ctx, `UPDATE reservations SET expires_at = now() - interval '1 minute' WHERE order_id = $1`, order); err != nil {
		t.Fatal(err)
	}
	if code, out := internalCall(t, s.GatewayURL, "expire-reservations", "", map[string]any{}); code != http.StatusUnauthorized {
		t.Errorf("expire-reservations without the credential: %d %v", code, out)
	}
	if code, out := internalCall(t, s.GatewayURL, "expire-reservations", credential, map[string]any{}); code != http.StatusForbidden {
		t.Errorf("expire-reservations called as create-order: %d %v, want 403", code, out)
	}
	code, out := internalCall(t, s.GatewayURL, "expire-reservations", s.ReadSecret(t, "internal-token-scheduler"), map[string]any{})
	if code != http.StatusOK || out["expired"] != float64(1) {
		t.Fatalf("expire-reservations: %d %v, want 1 expired", code, out)
	}
	if call(t, http.MethodGet, stockURL, "", nil, &stock); stock.Reserved != 0 || stock.Available != 7 {
		t.Errorf("after expiry: %+v, want nothing reserved and 7 available", stock)
	}
}
