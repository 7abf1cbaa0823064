// Package function is order-statuses, an internal function (POST /, internal
// credential required; only expire-reservations may call it): it answers the
// status of each order of a batch, so the inventory sweep knows which holds
// to sell (confirmed), give back (payment_failed, cancelled) or keep
// (pending). Request {"order_ids": ["…", …]} with 1 to MaxIDs ids; answer
// {"statuses": {"<id>": "<status>", …}} where an order that does not exist is
// absent. One read-only query of the orders database per call.
package function

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/ids"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/orders/ordersenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := ordersenv.Load(context.Background(), c, log, ordersenv.Needs{Internal: true})
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.Internal, log), nil
}

// Lookup reads the statuses of orders; ordersdb.Store implements it.
type Lookup interface {
	Statuses(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]orders.Status, error)
}

// MaxIDs bounds one request: the sweep's batch (expire-reservations asks at
// most this many at once).
const MaxIDs = 500

// Request is the body of order-statuses.
type Request struct {
	OrderIDs IDList `json:"order_ids"`
}

// IDList is order_ids, each id read only in its canonical form
// (ids.Canonical), as every id a client sends is (docs/security.md):
// uuid.UUID's own decoding also reads "{id}", "urn:uuid:id" and 32 bare hex
// digits, spellings the sweep never writes.
type IDList []uuid.UUID

// errOrderIDs is IDList's answer to anything but an array of strings holding
// canonical ids, a 400 invalid_json like any body that is not the request.
var errOrderIDs = fault.E(fault.Malformed, fault.CodeInvalidJSON,
	"order_ids must be an array of order ids, UUIDs such as 0192f1e4-7c3a-7b6e-9a51-3c2d1e0f4a5b")

// UnmarshalJSON decodes b, an array of canonical ids (null reads as none).
func (l *IDList) UnmarshalJSON(b []byte) error {
	var raw []string
	if err := json.Unmarshal(b, &raw); err != nil {
		return errOrderIDs
	}
	list := make(IDList, len(raw))
	for i, s := range raw {
		id, ok := ids.Canonical(s)
		if !ok {
			return errOrderIDs
		}
		list[i] = id
	}
	*l = list
	return nil
}

// Response is the answer of order-statuses: the status of every order asked
// about that exists.
type Response struct {
	Statuses map[uuid.UUID]orders.Status `json:"statuses"`
}

// New returns the order-statuses handler over store; it admits only the
// internal callers routes.Table names for it (fnhttp.CheckInternal: 401
// without a valid credential, 403 for another caller). A body that is not
// the request (an id that is not a UUID in its canonical form among them) is
// 400; no ids, more than MaxIDs or the nil UUID is 422.
func New(store Lookup, internal *auth.InternalVerifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, internal, "order-statuses"); err != nil {
			return err
		}
		var in Request
		if err := fnhttp.Decode(r, &in, 0); err != nil {
			return err
		}
		if len(in.OrderIDs) == 0 || len(in.OrderIDs) > MaxIDs {
			return fault.E(fault.Invalid, fault.CodeInvalidRequest, fmt.Sprintf("order_ids must hold 1 to %d ids", MaxIDs))
		}
		for _, id := range in.OrderIDs {
			if id == uuid.Nil {
				return fault.E(fault.Invalid, fault.CodeInvalidRequest, "order_ids must not hold the nil UUID")
			}
		}
		st, err := store.Statuses(r.Context(), in.OrderIDs)
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusOK, Response{Statuses: st})
	}))
	return fnhttp.Routes(mux)
}
