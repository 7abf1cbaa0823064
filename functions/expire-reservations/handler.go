// Package function is expire-reservations, the scheduled sweep (annotation
// schedule "*/1 * * * *"; POST / with any body, internal credential required):
// it gives back the stock of holds past their expiry, so an abandoned checkout
// never keeps stock away from other customers. Concurrent sweeps are safe.
package function

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inventory/inventoryenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := inventoryenv.Load(context.Background(), c, log, inventoryenv.Needs{Internal: true})
	if err != nil {
		return nil, err
	}
	return New(d.Store, d.Internal, log), nil
}

// Expirer gives back due holds; inventorydb.Store implements it.
type Expirer interface {
	Expire(ctx context.Context, asOf time.Time, limit int) (int, error)
}

// Batch is how many holds one transaction expires; MaxBatches bounds one run,
// the next run (a minute later) picks up the rest.
const (
	Batch      = 500
	MaxBatches = 20
)

// Response is the answer of expire-reservations.
type Response struct {
	Expired int `json:"expired"`
}

// New returns the sweep handler over store; it admits only the internal
// callers routes.Table names for it (fnhttp.CheckInternal: 401, 403). The body is ignored.
func New(store Expirer, internal *auth.InternalVerifier, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, internal, "expire-reservations"); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, fnhttp.MaxBody))
		total := 0
		for range MaxBatches {
			n, err := store.Expire(r.Context(), time.Time{}, Batch)
			total += n
			if err != nil {
				return err
			}
			if n < Batch {
				break
			}
		}
		if total > 0 {
			log.InfoContext(r.Context(), "reservations expired", "expired", total)
		}
		return fnhttp.JSON(w, http.StatusOK, Response{Expired: total})
	}))
	return fnhttp.Routes(mux)
}
