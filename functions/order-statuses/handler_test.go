package function

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fntest"
	"github.com/shopfaas/shop/internal/inventory/orderstatus"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersdb"
	"github.com/shopfaas/shop/internal/orders/orderstest"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// credential is the one caller order-statuses accepts.
var credential = fntest.Caller("expire-reservations")

func body(ids ...string) string {
	return `{"order_ids":["` + strings.Join(ids, `","`) + `"]}`
}

func TestOrderStatuses(t *testing.T) {
	store := ordersdb.New(pgtest.Open(t, ordersdb.Migrations()))
	h := New(store, fntest.Internal(), slog.New(slog.DiscardHandler))
	user := uuid.Must(uuid.NewV7())
	want := map[string]string{}
	var ids []string
	for _, st := range []orders.Status{orders.Pending, orders.Confirmed, orders.PaymentFailed, orders.Cancelled} {
		o := orderstest.Seed(t, store, user, st)
		want[o.ID.String()] = string(st)
		ids = append(ids, o.ID.String())
	}
	unknown := uuid.NewString()
	all := body(append(ids, unknown)...)

	if code, out := fntest.Call(t, h, "", all); code != http.StatusUnauthorized || out["code"] != "unauthenticated" {
		t.Errorf("no credential: %d %v", code, out)
	}
	if code, _ := fntest.Call(t, h, "wrong", all); code != http.StatusUnauthorized {
		t.Errorf("wrong credential: %d", code)
	}
	// Only the inventory sweep may ask: every other valid caller is 403.
	if n := fntest.RefusesOtherCallers(t, h, "order-statuses", all); n == 0 {
		t.Fatal("no caller to refuse")
	}

	code, out := fntest.Call(t, h, credential, all)
	if code != http.StatusOK {
		t.Fatalf("statuses: %d %v", code, out)
	}
	got, _ := out["statuses"].(map[string]any)
	if len(got) != len(want) {
		t.Errorf("statuses %v, want %v (the unknown order absent)", got, want)
	}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("order %s: %v, want %s", id, got[id], st)
		}
	}
	if _, ok := got[unknown]; ok {
		t.Errorf("an unknown order is answered: %v", got[unknown])
	}
	if code, out := fntest.Call(t, h, credential, body(unknown)); code != http.StatusOK || len(out["statuses"].(map[string]any)) != 0 {
		t.Errorf("only unknown orders: %d %v, want 200 and no status", code, out)
	}

	tooMany := make([]string, MaxIDs+1)
	for i := range tooMany {
		tooMany[i] = uuid.NewString()
	}
	for name, c := range map[string]struct {
		body string
		code int
	}{
		"not JSON":      {`{"order_ids":`, http.StatusBadRequest},
		"not a UUID":    {body(ids[0], "1; DROP TABLE orders"), http.StatusBadRequest},
		"unknown field": {`{"order_ids":["` + ids[0] + `"],"all":true}`, http.StatusBadRequest},
		// Only the canonical form, as every id a client sends is read
		// (docs/security.md); uuid.UUID's decoding reads these too.
		"braced id":      {body(ids[0], "{"+ids[1]+"}"), http.StatusBadRequest},
		"urn id":         {body("urn:uuid:" + ids[0]), http.StatusBadRequest},
		"bare hex id":    {body(strings.ReplaceAll(ids[0], "-", "")), http.StatusBadRequest},
		"number id":      {`{"order_ids":[1]}`, http.StatusBadRequest},
		"ids not a list": {`{"order_ids":"` + ids[0] + `"}`, http.StatusBadRequest},
		"no ids":         {`{"order_ids":[]}`, http.StatusUnprocessableEntity},
		"missing ids":    {`{}`, http.StatusUnprocessableEntity},
		"nil UUID":       {body(uuid.Nil.String()), http.StatusUnprocessableEntity},
		"too many ids":   {body(tooMany...), http.StatusUnprocessableEntity},
	} {
		code, out := fntest.Call(t, h, credential, c.body)
		if code != c.code || code == http.StatusBadRequest && out["code"] != "invalid_json" {
			t.Errorf("%s: %d %v, want %d (invalid_json when 400)", name, code, out, c.code)
		}
	}
	if code, out := fntest.Call(t, h, credential, body(strings.ToUpper(ids[1]))); code != http.StatusOK || out["statuses"].(map[string]any)[ids[1]] != want[ids[1]] {
		t.Errorf("an id in upper case (canonical): %d %v, want its status", code, out)
	}
	if code, _ := fntest.Call(t, h, credential, body(tooMany[:MaxIDs]...)); code != http.StatusOK {
		t.Errorf("%d ids: %d, want 200", MaxIDs, code)
	}
}

type failing struct{}

func (failing) Statuses(context.Context, []uuid.UUID) (map[uuid.UUID]orders.Status, error) {
	return nil, fault.Wrap(errors.New("connection refused"), fault.Unavailable, fault.CodeUnavailable, "the orders database is unavailable")
}

// A database that fails is 503: the sweep changes nothing and tries again.
func TestOrderStatusesUnavailable(t *testing.T) {
	h := New(failing{}, fntest.Internal(), slog.New(slog.DiscardHandler))
	if code, out := fntest.Call(t, h, credential, body(uuid.NewString())); code != http.StatusServiceUnavailable {
		t.Errorf("database down: %d %v, want 503", code, out)
	}
}

// TestTheSweepsBatchFitsOneRequest: the sweep's client (inventory's
// orderstatus) splits its holds into batches of its own MaxIDs; each batch
// must be a request this function accepts, or every sweep of a large backlog
// would be refused 422.
func TestTheSweepsBatchFitsOneRequest(t *testing.T) {
	if orderstatus.MaxIDs > MaxIDs {
		t.Fatalf("the sweep asks about %d orders per call, order-statuses accepts %d", orderstatus.MaxIDs, MaxIDs)
	}
}
