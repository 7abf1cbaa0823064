package fnhttp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/ids"
	"github.com/shopfaas/shop/internal/routes"
)

// CheckInternal admits r only from an internal caller that function accepts
// (routes.Callers, the one declaration the gateway tests read too), verified
// against v: 401 for a missing or invalid credential, 403 for a valid caller
// function does not accept. The caller's name (never its credential) is
// recorded on the request's span as shop.internal.caller.
func CheckInternal(r *http.Request, v *auth.InternalVerifier, function string) error {
	caller, err := auth.CheckInternal(r, v, routes.Callers(function))
	if caller != "" {
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("shop.internal.caller", caller))
	}
	return err
}

// OrderCall serves the internal function named function whose request is
// {"order_id": "…"} (POST /): it admits only the callers function accepts
// (CheckInternal: 401, 403), decodes the order id strictly, only in its
// canonical form (ids.CanonicalID: 400 invalid_json otherwise, as
// docs/security.md says of every id a client sends; 422 when absent or the
// zero id) and answers 200 with do's result as JSON, or the problem do
// returns; a fault.NotFound names the order in the problem's order_id member,
// which tells the caller (internal/orders/ordersgw) the function's own 404
// from one of a route or function that does not exist.
func OrderCall(log *slog.Logger, function string, v *auth.InternalVerifier, do func(ctx context.Context, orderID uuid.UUID) (any, error)) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := CheckInternal(r, v, function); err != nil {
			return err
		}
		var body struct {
			OrderID ids.CanonicalID `json:"order_id"`
		}
		if err := Decode(r, &body, 0); err != nil {
			return err
		}
		orderID := body.OrderID.UUID()
		if orderID == uuid.Nil {
			return fault.E(fault.Invalid, fault.CodeInvalidRequest, "order_id is required")
		}
		out, err := do(r.Context(), orderID)
		if fe := (*fault.Error)(nil); errors.As(err, &fe) && fe.Kind == fault.NotFound {
			return NamedNotFound(err, fe.Message, "order_id", orderID)
		}
		if err != nil {
			return err
		}
		return JSON(w, http.StatusOK, out)
	}))
	return Routes(mux)
}

// NamedNotFound is the 404 for id, about which err said there is nothing:
// a not_found problem with message and the member (get-product's
// product_id, OrderCall's order_id) naming id, which tells a caller
// (NotFoundNames) that the function itself answered it, where a 404 without
// it (a route no function serves, the gateway's for a function not
// deployed) is a misconfiguration or an outage.
func NamedNotFound(err error, message, member string, id uuid.UUID) error {
	nf := fault.Wrap(err, fault.NotFound, fault.CodeNotFound, message)
	nf.Members = map[string]any{member: id}
	return nf
}

// NotFoundNames reports whether body, a 404's, is the callee's own answer
// about id: the not_found problem whose member (get-product's product_id,
// OrderCall's order_id) names id. fnhttp.Routes' "no such route", a
// bundle's, fnserve's and the edge's 404 problems name nothing, so a
// misrouted call or a callee not deployed is never read as "no such product"
// or "no such order" (catalogclient, ordersgw: an outage instead).
func NotFoundNames(body []byte, member string, id uuid.UUID) bool {
	var p map[string]json.RawMessage
	if json.Unmarshal(body, &p) != nil {
		return false
	}
	var code fault.Code
	var named uuid.UUID
	return json.Unmarshal(p["code"], &code) == nil && code == fault.CodeNotFound &&
		json.Unmarshal(p[member], &named) == nil && named == id
}
