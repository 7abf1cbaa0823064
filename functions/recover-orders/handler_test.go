package function

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/orders/saga"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestRecoversPendingOrders(t *testing.T) {
	pool := pgtest.Open(t, ordersdb.Migrations())
	store := ordersdb.New(pool)
	co := orderstest.NewCheckout(t, store, 10)
	h := New(co.Saga, fntest.Internal(), slog.New(slog.DiscardHandler))
	user := auth.Identity{UserID: uuid.Must(uuid.NewV7()), Role: auth.RoleCustomer}

	// The processor is down while the order is placed: it stays pending.
	co.Server.SetHook(func(fn string, _ uuid.UUID) (time.Duration, int, int) {
		if fn == "charge-payment" {
			return 0, http.StatusServiceUnavailable, 0
		}
		return 0, 0, 0
	})
	res, err := co.Saga.Place(t.Context(), user, co.Request(1, "tok_visa"), "k")
	if err != nil || res.Outcome() != orders.OutcomePending {
		t.Fatalf("place: %+v %v", res, err)
	}
	pending := res.Order.View()
	co.Server.SetHook(nil)
	for _, sql := range []string{
		`UPDATE orders SET created_at = now() - interval '10 minutes'`,
		`UPDATE order_sagas SET lease_until = now() - interval '1 second'`,
		`INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at) VALUES ('` + user.UserID.String() + `', 'old', 'h', now() - interval '1 second')`,
	} {
		if _, err := pool.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}

	run := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
		if token != "" {
			r.Header.Set(auth.InternalHeader, token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := run(""); rec.Code != 401 {
		t.Fatalf("without the internal credential: %d", rec.Code)
	}
	if rec := run("wrong"); rec.Code != 401 {
		t.Fatalf("with a wrong credential: %d", rec.Code)
	}
	// A valid credential of any caller but the scheduler and an operator
	// (create-order's among them) is 403 and drives nothing.
	fntest.RefusesOtherCallers(t, h, "recover-orders", "{}")
	if o, err := store.Get(t.Context(), pending.ID); err != nil || o.Status != orders.Pending || co.Server.Counts().Charges != 0 {
		t.Fatalf("a refused caller drove the saga: order %s %v, %d charges", o.Status, err, co.Server.Counts().Charges)
	}
	rec := run(fntest.Caller("scheduler"))
	var rep saga.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rec.Code != 200 {
		t.Fatalf("run: %d %s", rec.Code, rec.Body)
	}
	if rep.Driven != 1 || rep.Confirmed != 1 || rep.Purged != 1 {
		t.Fatalf("report %+v", rep)
	}
	o, err := store.Get(t.Context(), pending.ID)
	if err != nil || o.Status != orders.Confirmed {
		t.Fatalf("order %s %v", o.Status, err)
	}
	if c := co.Server.Counts(); c.Charges != 1 {
		t.Fatalf("%d charges", c.Charges)
	}
	// A second run, by an operator following the runbook, finds nothing to do.
	rec = run(fntest.Caller("operator"))
	_ = json.Unmarshal(rec.Body.Bytes(), &rep)
	if rep.Driven != 0 {
		t.Fatalf("second run %+v", rep)
	}
}
