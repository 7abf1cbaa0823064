// Package function is a new function of the shop. Keep it thin: decode, call
// the domain in internal/, encode.
package function

import (
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	if err := c.Err(); err != nil {
		return nil, err
	}
	return New(log), nil
}

// New returns the function's handler: it answers every request with a
// greeting.
func New(log *slog.Logger) http.Handler {
	return fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		return fnhttp.JSON(w, http.StatusOK, map[string]string{"message": "hello from the shop"})
	})
}
