package function

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestTimeline(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	tokens := orderstest.Tokens(t)
	h := New(tokens, store, slog.New(slog.DiscardHandler))
	owner := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	other := orderstest.NewUser(t, tokens, auth.RoleCustomer)
	admin := orderstest.NewUser(t, tokens, auth.RoleAdmin)
	o := orderstest.Seed(t, store, owner.UserID, orders.Confirmed)
	if err := store.Record(t.Context(), o.ID, orders.StepRefund, orders.StepOK, "note"); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/orders/" + o.ID.String() + "/timeline"
	for _, tt := range []struct {
		name   string
		user   orderstest.User
		status int
	}{{"owner", owner, 200}, {"admin", admin, 200}, {"another user", other, 404}, {"no token", orderstest.User{}, 401}} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.user.Authorize(httptest.NewRequest(http.MethodGet, path, nil)))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status != 200 {
				return
			}
			var got struct{ Steps []orders.Step }
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, s := range got.Steps {
				names = append(names, s.Step+":"+s.Outcome)
				if s.At.IsZero() || (i > 0 && s.At.Before(got.Steps[i-1].At)) {
					t.Fatalf("step %d at %v is out of order", i, s.At)
				}
			}
			want := []string{"order.created:ok", "order.confirmed:ok", "payment.refund:ok"}
			if diff := cmp.Diff(want, names); diff != "" {
				t.Fatalf("steps (-want +got):\n%s", diff)
			}
		})
	}
}
