package contract

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SeenEnv names the folder where each suite's Recorder writes the answers
// it saw (SeenFile) at the end of its run; unset, nothing is written. make
// integration sets it for ./tests/... and then runs
// TestEveryListedAnswerWasSeen over the folder.
const SeenEnv = "SHOP_CONTRACT_SEEN"

// Answer is one answer the document lists for an operation: its status as
// the document keys it ("200", "5XX", "default") and, for a problem, one of
// the codes it lists (x-codes); "" for an answer that is no problem.
type Answer struct {
	Op     string `json:"op"` // "METHOD template", e.g. GET /api/v1/products/{id}
	Status string `json:"status"`
	Code   string `json:"code,omitempty"`
}

func (a Answer) String() string {
	s := a.Op + " " + a.Status
	if a.Code != "" {
		s += " " + a.Code
	}
	return s
}

// SeenFile is what a suite's Recorder writes into the SeenEnv folder.
type SeenFile struct {
	// Suite is the test binary's name less ".test" (integration, security).
	Suite string `json:"suite"`
	// Full is whether the whole suite ran (no -run, -skip, -list, -short).
	Full bool `json:"full"`
	// Seen are the answers its exchanges got, each once.
	Seen []Answer `json:"seen"`
}

// Listed is every answer the document lists: each status of each operation,
// once per code of its x-codes when it is a problem.
func (c *Contract) Listed() []Answer {
	var out []Answer
	for op, byStatus := range c.answers {
		for status, a := range byStatus {
			if !a.problem || len(a.codes) == 0 {
				out = append(out, Answer{Op: op, Status: status})
				continue
			}
			for _, code := range a.codes {
				out = append(out, Answer{Op: op, Status: status, Code: code})
			}
		}
	}
	slices.SortFunc(out, func(a, b Answer) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// answered is the answer of the document that res (whose body is body) to
// req is, keyed as the document keys it (the status's own key, else its
// class, else default); false for a request that is no operation's, or a
// status the operation does not declare (Check reports both).
func (c *Contract) answered(req *http.Request, res *http.Response, body []byte) (Answer, bool) {
	tmpl, found := c.template(req.Method, req.URL.Path)
	if !found {
		return Answer{}, false
	}
	op := req.Method + " " + tmpl
	byStatus := c.answers[op]
	s := strconv.Itoa(res.StatusCode)
	for _, key := range []string{s, s[:1] + "XX", "default"} {
		if _, ok := byStatus[key]; ok {
			a := Answer{Op: op, Status: key}
			if code, ok := problemCode(res, body); ok && byStatus[key].problem {
				a.Code = code
			}
			return a, true
		}
	}
	return Answer{}, false
}

// NotSeen are the answers the document lists (Listed) that no exchange of
// seen got and that FaultOnly does not excuse: each is a status or code
// the document promises and nothing showed the shop can give, either a
// missing test or a promise the code cannot keep. It also names each stale
// FaultOnly entry, one that excuses no answer an exchange missed: it
// excuses none of the document's answers (a renamed operation or code), or
// an exchange got every one it excuses (a suite now brings it about; not
// for an excuse of answers a suite may get by chance, Excuse.Chance), so
// excuses cannot outlive their reason.
func (c *Contract) NotSeen(seen []Answer) (unseen []Answer, stale []string) {
	got := map[Answer]bool{}
	for _, a := range seen {
		got[a] = true
	}
	used := make([]bool, len(FaultOnly))   // excuses one of the document's answers
	needed := make([]bool, len(FaultOnly)) // excuses one no exchange got
	for _, a := range c.Listed() {
		excused := false
		for i, f := range FaultOnly {
			if f.Excuses(a) {
				used[i], excused = true, true
				needed[i] = needed[i] || !got[a]
			}
		}
		if !got[a] && !excused {
			unseen = append(unseen, a)
		}
	}
	for i, f := range FaultOnly {
		name := fmt.Sprintf("%s %s %s", f.Op, f.Status, f.Code)
		switch {
		case !used[i]:
			stale = append(stale, name+", which is none of the document's answers")
		case !needed[i] && !f.Chance:
			stale = append(stale, name+", whose every answer an exchange got")
		}
	}
	return unseen, stale
}

// ReadSeen reads every SeenFile of dir.
func ReadSeen(dir string) ([]SeenFile, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []SeenFile
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var f SeenFile
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// writeSeen writes seen, the answers of suite's run, into dir as a SeenFile
// of its own (two runs of one suite never share a file).
func writeSeen(dir, suite string, full bool, seen map[Answer]bool) error {
	f := SeenFile{Suite: suite, Full: full}
	for a := range seen {
		f.Seen = append(f.Seen, a)
	}
	slices.SortFunc(f.Seen, func(a, b Answer) int { return strings.Compare(a.String(), b.String()) })
	b, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		return err
	}
	out, err := os.CreateTemp(dir, suite+"-*.json")
	if err != nil {
		return err
	}
	if _, err := out.Write(b); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// suiteName is the running test binary's name less ".test".
func suiteName() string {
	return strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
}

// Excuse is an answer the document lists that no suite brings about, and
// why: Op, Status or Code "*" stands for any.
type Excuse struct {
	Op, Status, Code string
	Why              string
	// Chance: a suite may get one of these answers by chance (a fault or a
	// race the machine happens to time), so an exchange that got them all
	// does not make the excuse stale: a run must not fail on a lucky race.
	Chance bool
}

// Excuses reports whether e stands for a.
func (e Excuse) Excuses(a Answer) bool {
	return (e.Op == "*" || e.Op == a.Op) && (e.Status == "*" || e.Status == a.Status) && (e.Code == "*" || e.Code == a.Code)
}

// FaultOnly are the answers the document lists that the suites cannot bring
// about without breaking the machine they share (a database or the gateway
// down, a defect), without a race they cannot time, or without spending a
// limit's whole window: each is held elsewhere, as its Why says. Keep it
// short: an answer a test can bring about belongs in a test, and one no
// code can give belongs out of the document.
var FaultOnly = []Excuse{
	{"*", "5XX", "*", "a defect (500), the edge's upstream unreachable (502) or silent (504): " +
		"TestEveryOperationDeclaresWhatThePlatformAnswersFirst probes fnserve and the edge for them", true},
	{"*", "503", "unavailable", "a database, Redis, RabbitMQ or a secret missing when the function builds: " +
		"TestEveryOperationDeclaresWhatThePlatformAnswersFirst (a Build that fails); tests/integration's " +
		"TestReadyThroughTheGatewayMeansBuilt brings it about for get-product only", true},
	{"GET /api/v1/search/products", "503", "search_unavailable", "the search backend down: " +
		"internal/search/meili and functions/search-products tests, against a failing Meilisearch fake", true},
	{"POST /api/v1/users", "429", "rate_limited", rateLimitedWhy, false},
	{"POST /api/v1/products", "429", "rate_limited", rateLimitedWhy, false},
	{"PATCH /api/v1/products/{id}", "429", "rate_limited", rateLimitedWhy, false},
	{"DELETE /api/v1/products/{id}", "429", "rate_limited", rateLimitedWhy, false},
	{"DELETE /api/v1/cart", "429", "rate_limited", rateLimitedWhy, false},
	{"POST /api/v1/orders/{id}/cancel", "429", "rate_limited", rateLimitedWhy, false},
	{"POST /api/v1/orders", "409", "request_in_progress", "a second request while the first with its key still runs: " +
		"internal/orders/saga TestSameKeyWhileRunningIsInProgress", true},
	{"POST /api/v1/orders", "409", "not_cancellable", "a cancel in the instant between confirmation and the answer: " +
		"internal/orders/saga's cancel races", true},
	{"POST /api/v1/orders", "422", "order_rejected", "a service refusing for a reason not listed, or recovery giving up " +
		"after GIVE_UP_AFTER (12 h): internal/orders/saga's rejection tests", true},
}

// rateLimitedWhy is why the edge's 429 rate_limited is fault-only on the
// routes FaultOnly names it for: tests/integration gets it on the other four
// that list it (TestEdgePolicy's 11th login, TestEdgeLimitsEveryWritePerToken's
// cart write, set-stock and checkout), so it is excused route by route and
// an excuse a suite makes needless is stale (NotSeen).
const rateLimitedWhy = "a route's whole window spent (up to 300 calls a minute per token): dev/faaslocal/edge's " +
	"policy tests bring the plugin's 429 about, TestRateLimitedRoutesDocument429 wants it declared; " +
	"tests/integration gets it on login-user, set-cart-item, set-stock and create-order only"
