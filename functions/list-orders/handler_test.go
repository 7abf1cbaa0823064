package function

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

type pageBody struct {
	Items      []orders.View `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

func TestListsOwnOrdersNewestFirstWithCursor(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	tokens := orderstest.Tokens(t)
	h := New(store, tokens, slog.New(slog.DiscardHandler))
	buyer := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	other := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	var want []uuid.UUID
	for range 5 {
		want = append([]uuid.UUID{orderstest.Seed(t, store, buyer.UserID, orders.Confirmed).ID}, want...)
	}
	orderstest.Seed(t, store, other.UserID, orders.Confirmed)

	get := func(u orderstest.User, query string) (*httptest.ResponseRecorder, pageBody) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, u.Authorize(httptest.NewRequest(http.MethodGet, "/api/v1/orders"+query, nil)))
		var p pageBody
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		return rec, p
	}
	var got []uuid.UUID
	query := "?limit=2"
	for pages := 0; ; pages++ {
		rec, p := get(buyer, query)
		if rec.Code != 200 || pages > 3 {
			t.Fatalf("page %d: %d %s", pages, rec.Code, rec.Body)
		}
		for _, v := range p.Items {
			got = append(got, v.ID)
		}
		if p.NextCursor == nil {
			break
		}
		query = "?limit=2&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("orders (-want +got):\n%s", diff)
	}

	rec, otherOwn := get(other, "")
	if rec.Code != 200 || len(otherOwn.Items) != 1 || otherOwn.NextCursor != nil {
		t.Fatalf("other user: %d %s", rec.Code, rec.Body)
	}
	// The buyer's id in the query and in headers is not read: the other
	// user still lists their one order.
	{
		r := other.Authorize(httptest.NewRequest(http.MethodGet, "/api/v1/orders"+fntest.PlantedQuery(buyer.UserID), nil))
		fntest.Plant(r, buyer.UserID)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if p := fntest.JSON[pageBody](t, rec, http.StatusOK); len(p.Items) != 1 || p.Items[0].ID != otherOwn.Items[0].ID {
			t.Fatalf("other user with the buyer's id planted in the query and headers: %s, want their own one order", rec.Body)
		}
	}
	if rec, p := get(orderstest.NewUser(t, tokens, auth.RoleCustomer), ""); rec.Code != 200 || p.Items == nil || len(p.Items) != 0 {
		t.Fatalf("no orders must be an empty list: %d %s", rec.Code, rec.Body)
	}
	buyerFirst := want[0].String()
	for q, code := range map[string]string{"?limit=0": "invalid_request", "?limit=101": "invalid_request",
		"?limit=x": "invalid_request", "?cursor=nope": "invalid_cursor",
		"?cursor=00000000-0000-0000-0000-000000000000": "invalid_cursor", // the zero id: the first page again
		// Spellings of an order's id the list never writes.
		"?cursor=" + strings.ToUpper(buyerFirst): "invalid_cursor", "?cursor=" + strings.ReplaceAll(buyerFirst, "-", ""): "invalid_cursor",
		"?cursor=%7B" + buyerFirst + "%7D": "invalid_cursor", "?cursor=urn:uuid:" + buyerFirst: "invalid_cursor"} {
		rec, _ := get(buyer, q)
		fntest.Problem(t, rec, 422, code)
	}
	if rec, _ := get(orderstest.User{}, ""); rec.Code != 401 {
		t.Fatalf("no token: %d", rec.Code)
	}
}

// The list is the caller's own orders, an admin's included (an admin reads
// another user's order by its id, get-order): an admin with orders of their
// own sees only those, and a cursor naming another user's order (the list
// reads any id written as it writes one) pages through the caller's orders
// only, never the other's.
func TestAnAdminListsOnlyTheirOwnOrders(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	tokens := orderstest.Tokens(t)
	h := New(store, tokens, slog.New(slog.DiscardHandler))
	buyer := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	admin := orderstest.NewUser(t, tokens, auth.RoleAdmin)
	theirs := orderstest.Seed(t, store, buyer.UserID, orders.Confirmed)
	own := orderstest.Seed(t, store, admin.UserID, orders.Confirmed)
	later := orderstest.Seed(t, store, buyer.UserID, orders.Confirmed)

	for _, query := range []string{"", "?cursor=" + later.ID.String(), "?cursor=ffffffff-ffff-7fff-bfff-ffffffffffff"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, admin.Authorize(httptest.NewRequest(http.MethodGet, "/api/v1/orders"+query, nil)))
		var p pageBody
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
			t.Fatalf("admin's list %q: %d %s", query, rec.Code, rec.Body)
		}
		var got []uuid.UUID
		for _, v := range p.Items {
			got = append(got, v.ID)
		}
		if diff := cmp.Diff([]uuid.UUID{own.ID}, got); diff != "" || p.NextCursor != nil {
			t.Errorf("admin's list %q (-want +got), next %v:\n%s", query, p.NextCursor, diff)
		}
		for _, id := range []uuid.UUID{theirs.ID, later.ID} {
			if strings.Contains(rec.Body.String(), id.String()) {
				t.Errorf("admin's list %q names another user's order %s: %s", query, id, rec.Body)
			}
		}
	}
}
