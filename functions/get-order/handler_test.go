package function

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestGetOrder(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	tokens := orderstest.Tokens(t)
	h := New(store, tokens, slog.New(slog.DiscardHandler))
	owner := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	other := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	admin := orderstest.NewUser(t, tokens, auth.RoleAdmin)
	o := orderstest.Seed(t, store, owner.UserID, orders.Confirmed)
	path := "/api/v1/orders/" + o.ID.String()

	tests := []struct {
		name   string
		user   orderstest.User
		path   string
		status int
	}{
		{"owner", owner, path, 200},
		{"admin", admin, path, 200},
		{"another user", other, path, 404},
		{"no token", orderstest.User{}, path, 401},
		{"unknown order", owner, "/api/v1/orders/" + uuid.NewString(), 404},
		{"not a uuid", owner, "/api/v1/orders/xyz", 404},
		// One order, one path: the canonical id in either case, and no other
		// spelling uuid.Parse would read as the same id.
		{"the id upper-cased", owner, "/api/v1/orders/" + strings.ToUpper(o.ID.String()), 200},
		{"the id without hyphens", owner, "/api/v1/orders/" + strings.ReplaceAll(o.ID.String(), "-", ""), 404},
		{"the id in braces", owner, "/api/v1/orders/%7B" + o.ID.String() + "%7D", 404},
		{"the id as a URN", owner, "/api/v1/orders/urn:uuid:" + o.ID.String(), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.user.Authorize(httptest.NewRequest(http.MethodGet, tt.path, nil)))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status != 200 {
				return
			}
			var got orders.View
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			want, _ := store.Get(t.Context(), o.ID)
			if diff := cmp.Diff(want.View(), got); diff != "" {
				t.Fatalf("order (-want +got):\n%s", diff)
			}
		})
	}
}
