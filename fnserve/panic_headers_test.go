package fnserve_test

import (
	"net/http"
	"testing"

	"github.com/shopfaas/shop/internal/fntest"
)

// A handler that panics after it set the headers of the answer it meant to
// give (but before it began it) gets the 500 problem, readable: the headers
// that described that answer's body (its length, encoding, range, validator,
// location, cookies) are not sent with the problem; what a problem may
// carry (Vary) stays. Until 2026-12-07 they were: a Content-Length cut the
// problem short, a Content-Encoding: gzip made it unreadable, an ETag or
// Set-Cookie went out with a 500.
func TestAPanicsProblemCarriesNoHeaderOfTheAnswerItReplaces(t *testing.T) {
	srv := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		fntest.SetAnswerHeaders(w.Header())
		w.Header().Set("Vary", "Authorization")
		panic("kaboom")
	})
	res := fntest.GetProblem(t, srv.url+"/x", http.StatusInternalServerError)
	fntest.NoAnswerHeaders(t, res)
	fntest.Carries(t, res, map[string]string{"Vary": "Authorization", "Content-Type": "application/problem+json"})
}
