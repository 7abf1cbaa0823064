package function

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestCancel(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	co := orderstest.NewCheckout(t, store, 10)
	tokens := orderstest.Tokens(t)
	h := New(co.Saga, tokens, slog.New(slog.DiscardHandler))
	owner := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	other := orderstest.NewUser(t, tokens, auth.RoleCustomer)

	place := func() uuid.UUID {
		res, err := co.Saga.Place(t.Context(), owner.Identity, co.Request(2, "tok_visa"), "")
		if err != nil || res.Outcome() != orders.OutcomeConfirmed {
			t.Fatalf("place: %+v %v", res, err)
		}
		return res.Order.ID
	}
	cancel := func(u orderstest.User, id string) (*httptest.ResponseRecorder, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, u.Authorize(httptest.NewRequest(http.MethodPost, "/api/v1/orders/"+id+"/cancel", nil)))
		var p struct{ Code, Status string }
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		return rec, p.Code + p.Status
	}

	id := place()
	if rec, got := cancel(other, id.String()); rec.Code != 404 || got != "not_found" {
		t.Fatalf("another user: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := cancel(orderstest.User{}, id.String()); rec.Code != 401 {
		t.Fatalf("no token: %d", rec.Code)
	}
	if rec, _ := cancel(owner, "nope"); rec.Code != 404 {
		t.Fatalf("bad id: %d", rec.Code)
	}
	if c := co.Server.Counts(); c.Refunds != 0 || c.Releases != 0 {
		t.Fatalf("refused cancels refunded or restocked: %+v", c)
	}
	if rec, got := cancel(owner, id.String()); rec.Code != 200 || got != "cancelled" {
		t.Fatalf("owner: %d %s", rec.Code, rec.Body)
	}
	if rec, got := cancel(owner, id.String()); rec.Code != 409 || got != "not_cancellable" {
		t.Fatalf("second cancel: %d %s", rec.Code, rec.Body)
	}
	if c := co.Server.Counts(); c.Refunds != 1 || c.Releases != 1 {
		t.Fatalf("refunds %d releases %d, want 1 1", c.Refunds, c.Releases)
	}
	if onHand, reserved := co.Server.Stock(co.Product); onHand != 10 || reserved != 0 {
		t.Fatalf("stock %d/%d after restock, want 10/0", onHand, reserved)
	}
	if got := co.Server.Payment(id); got != "refunded" {
		t.Fatalf("payment %q", got)
	}
}

// Another user's cancel is 404 whatever the order's status, never the 409
// not_cancellable its owner gets for an order that is not confirmed (that
// would tell a stranger the order exists, and its status), and changes
// nothing; an admin cancels any user's confirmed order (the document's
// "owner or admin") and gets the owner's 409 for one that is not confirmed.
func TestAnotherUsersCancelIsNotFoundWhateverTheStatus(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	co := orderstest.NewCheckout(t, store, 10)
	tokens := orderstest.Tokens(t)
	h := New(co.Saga, tokens, slog.New(slog.DiscardHandler))
	owner := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	other := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	admin := orderstest.NewUser(t, tokens, auth.RoleAdmin)
	cancel := func(u orderstest.User, id uuid.UUID) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, u.Authorize(httptest.NewRequest(http.MethodPost, "/api/v1/orders/"+id.String()+"/cancel", nil)))
		return rec
	}
	for _, status := range []orders.Status{orders.Pending, orders.PaymentFailed, orders.Cancelled, orders.Confirmed} {
		var o orders.Order
		if status == orders.Confirmed {
			// Placed through the saga, so the admin's cancel has a charge to refund.
			res, err := co.Saga.Place(t.Context(), owner.Identity, co.Request(1, "tok_visa"), "")
			if err != nil || res.Outcome() != orders.OutcomeConfirmed {
				t.Fatalf("place: %+v %v", res, err)
			}
			o = res.Order
		} else {
			o = orderstest.Seed(t, store, owner.UserID, status)
		}
		rec := cancel(other, o.ID)
		fntest.Problem(t, rec, http.StatusNotFound, "not_found", o.ID.String(), string(status))
		if got, err := store.Get(t.Context(), o.ID); err != nil || got.Status != status {
			t.Errorf("%s order after another user's cancel: %s %v", status, got.Status, err)
		}
		rec = cancel(admin, o.ID)
		if status == orders.Confirmed {
			var v orders.View
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &v) != nil || v.ID != o.ID || v.Status != orders.Cancelled {
				t.Errorf("admin's cancel of a confirmed order: %d %s, want 200 cancelled", rec.Code, rec.Body)
			}
			continue
		}
		fntest.Problem(t, rec, http.StatusConflict, "not_cancellable")
	}
	if c := co.Server.Counts(); c.Refunds != 1 || c.Releases != 1 {
		t.Errorf("refunds %d releases %d, want 1 1 (the admin's cancel alone)", c.Refunds, c.Releases)
	}
}
