package contract_test

import (
	"bytes"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/dev/contract"
)

// seenSuites are the suites whose answers TestEveryListedAnswerWasSeen
// adds up: both validate every exchange with the public API with a
// contract.Recorder (tests/integration through the edge, tests/security
// through the edge and straight to the functions).
var seenSuites = []string{"integration", "security"}

// TestEveryListedAnswerWasSeen holds the document to what the shop was
// seen to answer: every status of every operation, and every code a
// problem answer lists (x-codes), must have been the answer of at least one
// exchange of a whole run of each of seenSuites, or be excused as
// fault-only (contract.FaultOnly); and each excuse must still excuse an
// answer no exchange got (NotSeen's stale). make integration runs it after
// ./tests/..., over the folder SHOP_CONTRACT_SEEN named for them; without
// it the test skips (make integration fails a run that skipped it).
func TestEveryListedAnswerWasSeen(t *testing.T) {
	dir := os.Getenv(contract.SeenEnv)
	if dir == "" {
		t.Skipf("%s is not set: make integration sets it for ./tests/... and runs this test after them", contract.SeenEnv)
	}
	files, err := contract.ReadSeen(dir)
	if err != nil {
		t.Fatal(err)
	}
	var seen []contract.Answer
	for _, suite := range seenSuites {
		i := slices.IndexFunc(files, func(f contract.SeenFile) bool { return f.Suite == suite && f.Full })
		if i < 0 {
			t.Fatalf("%s holds no answers of a whole run of the %s suite (go test ./tests/... with %s=%s, as make integration runs it)", dir, suite, contract.SeenEnv, dir)
		}
	}
	for _, f := range files {
		seen = append(seen, f.Seen...)
	}
	unseen, stale := load(t).NotSeen(seen)
	for _, a := range unseen {
		t.Errorf("api/openapi.yaml lists %s, which no exchange of %v got: test it, add it to contract.FaultOnly if only a fault brings it about, or drop it from the document", a, seenSuites)
	}
	for _, s := range stale {
		t.Errorf("contract.FaultOnly is stale: it excuses %s; drop the excuse", s)
	}
}

// TestNotSeenNamesWhatNoExchangeGot: an answer the document lists that no
// exchange got is named, whether a status or a code of a problem answer;
// one excused as fault-only is not.
func TestNotSeenNamesWhatNoExchangeGot(t *testing.T) {
	c := load(t)
	listed := c.Listed()
	if len(listed) < 100 {
		t.Fatalf("the document lists %d answers; the walk is broken", len(listed))
	}
	if unseen, _ := c.NotSeen(listed); len(unseen) != 0 {
		t.Fatalf("every listed answer seen: NotSeen = %v; want none", unseen)
	}
	drop := func(a contract.Answer) []contract.Answer {
		return slices.DeleteFunc(slices.Clone(listed), func(b contract.Answer) bool { return b == a })
	}
	for _, a := range []contract.Answer{
		{Op: "POST /api/v1/users", Status: "409", Code: "email_taken"},
		{Op: "GET /api/v1/products/{id}", Status: "304"},
	} {
		if !slices.Contains(listed, a) {
			t.Fatalf("Listed has no %s", a)
		}
		if unseen, _ := c.NotSeen(drop(a)); !slices.Equal(unseen, []contract.Answer{a}) {
			t.Errorf("%s not seen: NotSeen = %v", a, unseen)
		}
	}
	excused := contract.Answer{Op: "POST /api/v1/orders", Status: "5XX", Code: "internal"}
	if unseen, _ := c.NotSeen(drop(excused)); len(unseen) != 0 {
		t.Errorf("%s not seen, excused as fault-only: NotSeen = %v", excused, unseen)
	}

	// A code planted in a copy of the document is one nothing answers.
	spec := bytes.Replace(api.OpenAPI(), []byte("x-codes: [email_taken]"), []byte("x-codes: [email_taken, cart_full]"), 1)
	planted, err := contract.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := contract.Answer{Op: "POST /api/v1/users", Status: "409", Code: "cart_full"}
	if unseen, _ := planted.NotSeen(listed); !slices.Equal(unseen, []contract.Answer{want}) {
		t.Errorf("with %s planted: NotSeen = %v", want, unseen)
	}
}

// needed is listed less every answer contract.FaultOnly excuses: what the
// suites must get when no excuse is stale.
func needed(listed []contract.Answer) []contract.Answer {
	return slices.DeleteFunc(slices.Clone(listed), func(a contract.Answer) bool {
		return slices.ContainsFunc(contract.FaultOnly, func(e contract.Excuse) bool { return e.Excuses(a) })
	})
}

// TestNotSeenNamesAStaleExcuse: a contract.FaultOnly entry is stale, and
// named, when an exchange got every answer it excuses, as when it excuses
// none of the document's answers: excuses cannot pile up past what the
// suites bring about. One that still excuses an answer no exchange got is
// not.
func TestNotSeenNamesAStaleExcuse(t *testing.T) {
	c := load(t)
	listed := c.Listed()
	const allSeen = "whose every answer an exchange got"
	deterministic := 0 // the excuses no race or fault may make a suite see
	for _, f := range contract.FaultOnly {
		if !f.Chance {
			deterministic++
		}
	}
	if unseen, stale := c.NotSeen(listed); len(unseen) != 0 || len(stale) != deterministic {
		t.Errorf("every listed answer seen: NotSeen = %v, %v; want no answer and the %d excuses not left to chance", unseen, stale, deterministic)
	} else {
		for _, s := range stale {
			if !strings.HasSuffix(s, allSeen) {
				t.Errorf("every listed answer seen: stale %q, want it to end %q", s, allSeen)
			}
		}
	}
	need := needed(listed)
	if unseen, stale := c.NotSeen(need); len(unseen) != 0 || len(stale) != 0 {
		t.Fatalf("what no excuse covers seen: NotSeen = %v, %v; want none", unseen, stale)
	}
	// Register's 429, excused on its own, seen: the excuse is stale.
	register := contract.Answer{Op: "POST /api/v1/users", Status: "429", Code: "rate_limited"}
	want := []string{register.String() + ", " + allSeen}
	if unseen, stale := c.NotSeen(append(slices.Clone(need), register)); len(unseen) != 0 || !slices.Equal(stale, want) {
		t.Errorf("%s seen: NotSeen = %v, %v; want no answer and %q", register, unseen, stale, want)
	}
	// A race a suite happened to time (a second checkout with a key while
	// the first runs) does not make its excuse stale: the run must not fail.
	race := contract.Answer{Op: "POST /api/v1/orders", Status: "409", Code: "request_in_progress"}
	if unseen, stale := c.NotSeen(append(slices.Clone(need), race)); len(unseen) != 0 || len(stale) != 0 {
		t.Errorf("%s seen by chance: NotSeen = %v, %v; want none", race, unseen, stale)
	}
	// get-product's 503 seen: "*" 503 unavailable still excuses the others.
	ready := contract.Answer{Op: "GET /api/v1/products/{id}", Status: "503", Code: "unavailable"}
	if !slices.Contains(listed, ready) {
		t.Fatalf("Listed has no %s", ready)
	}
	if unseen, stale := c.NotSeen(append(slices.Clone(need), ready)); len(unseen) != 0 || len(stale) != 0 {
		t.Errorf("%s seen: NotSeen = %v, %v; want none", ready, unseen, stale)
	}
}

// TestRateLimitedIsExcusedOnlyWhereNoSuiteGetsIt: tests/integration gets
// the edge's 429 rate_limited on four routes (TestEdgePolicy's 11th login,
// TestEdgeLimitsEveryWritePerToken's cart write, admin write and checkout),
// so contract.FaultOnly excuses it on none of them: a run that stops
// getting it there fails.
func TestRateLimitedIsExcusedOnlyWhereNoSuiteGetsIt(t *testing.T) {
	c := load(t)
	listed := c.Listed()
	for _, op := range []string{
		"POST /api/v1/auth/login",
		"PUT /api/v1/cart/items/{product_id}",
		"PUT /api/v1/inventory/{product_id}",
		"POST /api/v1/orders",
	} {
		a := contract.Answer{Op: op, Status: "429", Code: "rate_limited"}
		if !slices.Contains(listed, a) {
			t.Errorf("Listed has no %s", a)
			continue
		}
		seen := slices.DeleteFunc(slices.Clone(listed), func(b contract.Answer) bool { return b == a })
		if unseen, _ := c.NotSeen(seen); !slices.Equal(unseen, []contract.Answer{a}) {
			t.Errorf("%s not seen: NotSeen = %v, want it named", a, unseen)
		}
	}
}

// TestRecorderRecordsTheAnswersItSees: the recorder keys each answer as the
// document does, its status's own key, else its class, with the problem's
// code, and records a call through the gateway (FunctionCalls) as the
// operation's.
func TestRecorderRecordsTheAnswersItSees(t *testing.T) {
	const problem = "application/problem+json"
	srv := cannedServer(t, map[string]canned{
		"/api/v1/users?":                  {409, problem, `{"type":"about:blank","title":"Conflict","status":409,"code":"email_taken"}`},
		"/api/v1/users/me?":               {502, problem, `{"type":"about:blank","title":"Bad Gateway","status":502,"code":"bad_gateway"}`},
		"/function/get-cart/api/v1/cart?": {401, problem, `{"type":"about:blank","title":"Unauthorized","status":401,"code":"unauthenticated"}`},
		"/elsewhere?":                     {200, "text/plain", "ok"},
	})
	rec := &contract.Recorder{Contract: load(t), FunctionCalls: true}
	client := &http.Client{Transport: rec}
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/users", `{"email":"a@b.c","password":"correct horse battery","name":"A"}`},
		{http.MethodGet, "/api/v1/users/me", ""},
		{http.MethodGet, "/function/get-cart/api/v1/cart", ""},
		{http.MethodGet, "/elsewhere", ""},
	} {
		req, err := http.NewRequest(r.method, srv.URL+r.path, bytes.NewBufferString(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
	}
	got := rec.Seen()
	slices.SortFunc(got, func(a, b contract.Answer) int { return bytes.Compare([]byte(a.String()), []byte(b.String())) })
	want := []contract.Answer{
		{Op: "GET /api/v1/cart", Status: "401", Code: "unauthenticated"},
		{Op: "GET /api/v1/users/me", Status: "5XX", Code: "bad_gateway"},
		{Op: "POST /api/v1/users", Status: "409", Code: "email_taken"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Seen = %v, want %v", got, want)
	}
}
