package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
)

// TestCheckoutThroughTheEdge runs the whole checkout as processes behind the
// local gateway and edge: 50 buyers race for a product with 10 units, each
// through create-order → reserve-stock → charge-payment. Exactly 10 orders
// are confirmed and 40 are refused out_of_stock; the 10 units stay reserved
// until the sweep (expire-reservations, asking order-statuses) sells them.
// One order cancelled before the sweep gets its unit back as a release and is
// not sold; the sweep sells the other 9 and the stock ends at zero on hand
// beyond that unit, with nothing left reserved. A cancellation after the
// sweep restocks one more unit.
func TestCheckoutThroughTheEdge(t *testing.T) {
	s := startShop(t, []string{"get-product", "get-stock", "set-stock", "reserve-stock", "commit-stock", "release-stock",
		"charge-payment", "refund-payment", "create-order", "get-order", "get-order-timeline", "cancel-order",
		"expire-reservations", "order-statuses"}, nil, nil)
	rt, tokens := s.Runtime, s.Tokens
	p := s.product(t, "IT-LAMP-1", 3499, 10)
	stockPath := rt.EdgeURL + "/api/v1/inventory/" + p.ID.String()

	body := `{"items":[{"product_id":"` + p.ID.String() + `","quantity":1}],` +
		`"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},` +
		`"payment":{"token":"tok_visa"}}`
	type result struct {
		status int
		code   string
		id     uuid.UUID
		token  string
	}
	const buyers = 50
	results := make([]result, buyers)
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, _ := tokens.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
			req, _ := http.NewRequest(http.MethodPost, rt.EdgeURL+"/api/v1/orders", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Idempotency-Key", uuid.NewString())
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("buyer %d: %v", i, err)
				return
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			var out struct {
				ID     uuid.UUID `json:"id"`
				Status string    `json:"status"`
				Code   string    `json:"code"`
			}
			_ = json.Unmarshal(raw, &out)
			results[i] = result{status: res.StatusCode, code: out.Code, id: out.ID, token: tok}
			if res.StatusCode == http.StatusCreated && out.Status != "confirmed" {
				t.Errorf("buyer %d: 201 with status %q", i, out.Status)
			}
		}()
	}
	wg.Wait()
	confirmed, outOfStock := 0, 0
	var first, second result
	for i, r := range results {
		switch {
		case r.status == http.StatusCreated:
			confirmed++
			first, second = r, first
		case r.status == http.StatusConflict && r.code == "out_of_stock":
			outOfStock++
		default:
			t.Errorf("buyer %d: %d %s", i, r.status, r.code)
		}
	}
	if confirmed != 10 || outOfStock != 40 {
		t.Fatalf("%d confirmed and %d out_of_stock, want 10 and 40", confirmed, outOfStock)
	}
	var stock struct {
		OnHand   int `json:"on_hand"`
		Reserved int `json:"reserved"`
	}
	if code := call(t, http.MethodGet, stockPath, "", nil, &stock); code != http.StatusOK {
		t.Fatalf("get stock: %d", code)
	}
	if stock.OnHand != 10 || stock.Reserved != 10 {
		t.Fatalf("stock after the race: on_hand %d reserved %d, want 10 10 (sold by the sweep)", stock.OnHand, stock.Reserved)
	}

	// The timeline shows every step; a stranger sees nothing.
	var tl struct {
		Steps []struct{ Step, Outcome string } `json:"steps"`
	}
	orderPath := rt.EdgeURL + "/api/v1/orders/" + first.id.String()
	if code := call(t, http.MethodGet, orderPath+"/timeline", first.token, nil, &tl); code != http.StatusOK || len(tl.Steps) < 5 {
		t.Fatalf("timeline: %d %+v", code, tl)
	}
	stranger, _ := tokens.Issue(uuid.Must(uuid.NewV7()), auth.RoleCustomer)
	if code := call(t, http.MethodGet, orderPath, stranger, nil, nil); code != http.StatusNotFound {
		t.Fatalf("stranger reads an order: %d", code)
	}
	// Cancelling before the sweep gives the unit back (a release); cancelling
	// again is refused.
	if code := call(t, http.MethodPost, orderPath+"/cancel", first.token, nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	if code := call(t, http.MethodPost, orderPath+"/cancel", first.token, nil, nil); code != http.StatusConflict {
		t.Fatalf("second cancel: %d", code)
	}
	if code := call(t, http.MethodGet, stockPath, "", nil, &stock); code != http.StatusOK || stock.OnHand != 10 || stock.Reserved != 9 {
		t.Fatalf("stock after a cancel: %d %+v, want on_hand 10 reserved 9", code, stock)
	}
	// The sweep sells the 9 confirmed orders' holds, not the cancelled one.
	code, out := internalCall(t, rt.GatewayURL, "expire-reservations?settle_after_seconds=0", s.ReadSecret(t, "internal-token-scheduler"), map[string]any{})
	if code != http.StatusOK || out["settled"] != float64(9) || out["released"] != float64(0) || out["expired"] != float64(0) {
		t.Fatalf("sweep: %d %v, want 9 settled", code, out)
	}
	if code := call(t, http.MethodGet, stockPath, "", nil, &stock); code != http.StatusOK || stock.OnHand != 1 || stock.Reserved != 0 {
		t.Fatalf("stock after the sweep: %d %+v, want on_hand 1 reserved 0", code, stock)
	}
	// Cancelling a sold order restocks its unit.
	if code := call(t, http.MethodPost, rt.EdgeURL+"/api/v1/orders/"+second.id.String()+"/cancel", second.token, nil, nil); code != http.StatusOK {
		t.Fatalf("cancel after the sweep: %d", code)
	}
	if code := call(t, http.MethodGet, stockPath, "", nil, &stock); code != http.StatusOK || stock.OnHand != 2 || stock.Reserved != 0 {
		t.Fatalf("stock after a cancel of a sold order: %d %+v, want on_hand 2 reserved 0", code, stock)
	}
}
