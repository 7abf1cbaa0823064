package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/shopfaas/shop/internal/fault"
)

// maxSystemBody caps the JSON bodies of the /system endpoints.
const maxSystemBody = 1 << 20

// Error codes of the handlers' own classified errors.
const (
	codeMalformed = "malformed_request"
	codeInvalid   = "invalid_request"
	codeNotFound  = "not_found"
)

// statusOf is how the gateway API answers each error kind. It is not the
// shop's table (internal/fnhttp) on purpose: faas-provider and faasd answer
// plain text, and 400 for every request they refuse, where the shop's API
// answers 422 for a well-formed but invalid one.
var statusOf = map[fault.Kind]int{
	fault.Malformed: http.StatusBadRequest,
	fault.Invalid:   http.StatusBadRequest,
	fault.NotFound:  http.StatusNotFound,
	fault.Conflict:  http.StatusConflict,
}

// fail answers err as faasd does: a plain-text message with the status its
// kind maps to. An unclassified error answers 500 with a generic message and
// is logged once.
func fail(w http.ResponseWriter, log *slog.Logger, err error) {
	var fe *fault.Error
	status, ok := statusOf[fault.KindOf(err)]
	if !ok || !errors.As(err, &fe) {
		log.Error("gateway API", "err", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	http.Error(w, fe.Message, status)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a faas-provider JSON body into dst (at most maxSystemBody).
// Fields it does not know are ignored, as faas-provider does: newer clients
// send more than this version reads.
func decode(r *http.Request, dst any) error {
	if r.Body == nil || r.Body == http.NoBody {
		return fault.E(fault.Malformed, codeMalformed, "request body is required")
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxSystemBody)).Decode(dst); err != nil {
		return fault.Wrap(err, fault.Malformed, codeMalformed, "malformed JSON body")
	}
	return nil
}

// splitName removes the ".<namespace>" suffix go-sdk and faas-cli add to a
// function name, cut at the last dot as the OpenFaaS gateway cuts it
// (GetNamespace); false when the suffix names another namespace.
func splitName(raw string) (string, bool) {
	i := strings.LastIndexByte(raw, '.')
	if i < 0 {
		return raw, true
	}
	if raw[i+1:] != Namespace {
		return "", false
	}
	return raw[:i], true
}

// checkNamespace refuses a namespace query parameter naming another
// namespace than the runtime's one.
func checkNamespace(r *http.Request) error {
	if ns := r.URL.Query().Get("namespace"); ns != "" && ns != Namespace {
		return fault.E(fault.NotFound, codeNotFound, fmt.Sprintf("namespace %q not found", ns))
	}
	return nil
}

// checkSpecNamespace refuses a body naming another namespace.
func checkSpecNamespace(ns string) error {
	if ns != "" && ns != Namespace {
		return fault.E(fault.Invalid, codeInvalid, fmt.Sprintf("namespace %q does not exist (only %s)", ns, Namespace))
	}
	return nil
}

// checkNamespaces refuses a request whose body (ns: 400) or query (404)
// names another namespace, the body's first.
func checkNamespaces(r *http.Request, ns string) error {
	if err := checkSpecNamespace(ns); err != nil {
		return err
	}
	return checkNamespace(r)
}
