package fnhttp_test

import (
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
)

// busy is an error that says when to retry, as a rate limit's does.
type busy struct{}

func (busy) Error() string             { return "busy" }
func (busy) RetryAfter() time.Duration { return 1500 * time.Millisecond }

// A handler that returns an error after it set the headers of the answer it
// meant to give (but before it began it) gets its problem, readable: the
// headers that described that answer's body (its length, encoding, range,
// validator, location, cookies, replay) are not sent with the problem, as
// fnserve drops them from a panic's 500. What a problem carries stays: the
// handler's own challenge on a 401, Vary, and on a 503 the handler's
// Retry-After or Adapt's (from the error, in whole seconds rounded up).
// Until 2026-12-07 they went out with it: a Content-Length cut the problem
// short, a Content-Encoding: gzip made it unreadable.
func TestAnErrorsProblemCarriesNoHeaderOfTheAnswerItReplaces(t *testing.T) {
	for _, c := range []struct {
		name   string
		set    map[string]string // by the handler, besides the answer's
		err    error
		status int
		kept   map[string]string
	}{
		{
			name:   "401 with the handler's challenge",
			set:    map[string]string{"WWW-Authenticate": `Bearer realm="shop", error="invalid_token"`, "Vary": "Authorization"},
			err:    fault.E(fault.Unauthenticated, fault.CodeUnauthenticated, "the token is not valid"),
			status: http.StatusUnauthorized,
			kept: map[string]string{"WWW-Authenticate": `Bearer realm="shop", error="invalid_token"`,
				"Vary": "Authorization", "Content-Type": "application/problem+json"},
		},
		{
			name:   "503 with the handler's Retry-After",
			set:    map[string]string{"Retry-After": "120", "Vary": "Authorization"},
			err:    fault.E(fault.Unavailable, fault.CodeUnavailable, "try again later"),
			status: http.StatusServiceUnavailable,
			kept:   map[string]string{"Retry-After": "120", "Vary": "Authorization", "Content-Type": "application/problem+json"},
		},
		{
			name:   "503 with Adapt's Retry-After",
			err:    fault.Wrap(busy{}, fault.Unavailable, fault.CodeUnavailable, "try again later"),
			status: http.StatusServiceUnavailable,
			kept:   map[string]string{"Retry-After": "2", "Content-Type": "application/problem+json"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, _ *http.Request) error {
				fntest.SetAnswerHeaders(w.Header())
				for name, v := range c.set {
					w.Header().Set(name, v)
				}
				return c.err
			}))
			defer srv.Close()
			res := fntest.GetProblem(t, srv.URL, c.status)
			fntest.NoAnswerHeaders(t, res)
			fntest.Carries(t, res, c.kept)
		})
	}
}

// The answer's headers the problem tests set (fntest.AnswerHeaders, here and
// in fnserve) are every header ForgetAnswer removes: one added to its list
// is set, and looked for, by each.
func TestTheTestedAnswerHeadersAreThoseForgotten(t *testing.T) {
	want := slices.Sorted(slices.Values(fnhttp.AnswerHeaders))
	if diff := cmp.Diff(want, slices.Sorted(maps.Keys(fntest.AnswerHeaders))); diff != "" {
		t.Errorf("fntest.AnswerHeaders (-ForgetAnswer's +tested):\n%s", diff)
	}
}
