package connector

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Only an answer that retrying cannot change dead-letters a message at once;
// the statuses of outages, credentials and redeploys are retried.
func TestOnlyAnswersRetryingCannotChangeAreDeadLetteredAtOnce(t *testing.T) {
	deadLettered := []int{
		// The event is bad.
		http.StatusBadRequest, http.StatusLengthRequired, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
		http.StatusUnprocessableEntity,
		// The call refused in that form.
		http.StatusMethodNotAllowed, http.StatusPreconditionRequired,
		// The function decided on it.
		http.StatusConflict, http.StatusPaymentRequired, http.StatusPreconditionFailed,
	}
	retried := []int{
		// No answer at all; outages and load.
		0, http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
		// A credential to fix.
		http.StatusUnauthorized, http.StatusForbidden,
		// The gateway's 404: a function being redeployed.
		http.StatusNotFound,
		// A proxy's credential, a misdirected call (GATEWAY_URL's host not
		// loopback where the gateway wants it), too early: none a bad event.
		http.StatusProxyAuthRequired, http.StatusMisdirectedRequest, http.StatusTooEarly,
	}
	for _, status := range deadLettered {
		if !permanent(status) {
			t.Errorf("%d is retried, want it dead-lettered at once", status)
		}
	}
	for _, status := range retried {
		if permanent(status) {
			t.Errorf("%d is dead-lettered at once, want it retried", status)
		}
	}
	// Every other 4xx, also one no function answers and fnhttp does not
	// know (406, 410, 414, 431, 451 from a proxy): until 2026-12-07 such a
	// status was read as an internal error and retried MAX_ATTEMPTS times.
	for status := 400; status < 500; status++ {
		if !slices.Contains(retried, status) && !permanent(status) {
			t.Errorf("%d is retried, want it dead-lettered at once: only 401, 403, 404, 407, 408, 421, 425 and 429 of the 4xx are", status)
		}
	}
}

// The statuses docs/runbooks/dead-letters.md, docs/events.md and the
// connector's README list as dead-lettered at once are exactly those
// permanent reports, over every status a function, the gateway or a proxy may
// answer. Until 2026-12-07 the runbook left out 405, 411 and 428,
// docs/events.md 428, and the README (not checked here then) 405, 411 and
// 428, saying they were retried. The statuses listed are those fnhttp knows
// (a kind's); the others of the 4xx are dead-lettered at once too, which each
// says in the words "any other 4xx".
func TestTheDocsListTheStatusesDeadLetteredAtOnce(t *testing.T) {
	var want []int
	for status := 400; status < 600; status++ {
		if permanent(status) && fault.KindOf(fnhttp.ErrorFrom(status, nil)) != fault.Internal {
			want = append(want, status)
		}
	}
	for _, doc := range []struct{ path, from, to string }{
		{"../../docs/runbooks/dead-letters.md", "An answer that retrying cannot change", "goes to the DLQ"},
		{"../../docs/events.md", "The connector dead-letters at once an answer that retrying cannot change", "Every other failure"},
		{"../../connectors/rabbitmq/README.md", "An answer retrying cannot change", "Every other failure"},
	} {
		b, err := os.ReadFile(doc.path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		start := strings.Index(text, doc.from)
		end := strings.Index(text[max(start, 0):], doc.to)
		if start < 0 || end < 0 {
			t.Errorf("%s: no sentence from %q to %q", doc.path, doc.from, doc.to)
			continue
		}
		var listed []int
		for _, m := range regexp.MustCompile(`\b[45]\d\d\b`).FindAllString(text[start:start+end], -1) {
			n, _ := strconv.Atoi(m)
			listed = append(listed, n)
		}
		slices.Sort(listed)
		if !slices.Equal(listed, want) {
			t.Errorf("%s lists %v as dead-lettered at once; permanent() says %v", doc.path, listed, want)
		}
		if !strings.Contains(strings.Join(strings.Fields(text[start:start+end]), " "), "any other 4xx") {
			t.Errorf("%s does not say that any other 4xx is dead-lettered at once", doc.path)
		}
	}
}
