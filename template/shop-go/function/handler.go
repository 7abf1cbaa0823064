// Package function is a new function of the shop. Keep it thin: decode, call
// the domain in internal/, encode.
package function

import (
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/fnhttp"
)

// Handle answers every request with a greeting.
func Handle(w http.ResponseWriter, r *http.Request) {
	fnhttp.Adapt(slog.Default(), func(w http.ResponseWriter, r *http.Request) error {
		return fnhttp.JSON(w, http.StatusOK, map[string]string{"message": "hello from the shop"})
	}).ServeHTTP(w, r)
}
