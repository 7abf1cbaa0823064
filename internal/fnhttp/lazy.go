package fnhttp

import (
	"log/slog"
	"net/http"
	"sync"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
)

// A Builder builds a function's handler from its configuration. Every
// function package exports one as Build (docs/adding-a-function.md); fnserve,
// the multi-call binary and the bundles serve a function only through it.
type Builder func(c *config.Reader, log *slog.Logger) (http.Handler, error)

// Lazy builds the handler with build on first use and keeps it once built.
// A failed build is answered 503 (the cause is logged, never sent) and tried
// again on the next request, each time from c.Fresh(), so a function whose
// database, secret or variable was briefly missing recovers without a restart.
// log may be nil (slog.Default()).
func Lazy(build Builder, c *config.Reader, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	var mu sync.Mutex
	var h http.Handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if h == nil {
			built, err := build(c.Fresh(), log)
			if err != nil {
				mu.Unlock()
				log.ErrorContext(r.Context(), "function not ready", "err", err.Error())
				WriteProblem(w, fault.Wrap(err, fault.Unavailable, fault.CodeUnavailable, "service temporarily unavailable"))
				return
			}
			h = built
		}
		mu.Unlock()
		h.ServeHTTP(w, r)
	})
}
