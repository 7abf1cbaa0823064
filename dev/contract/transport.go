package contract

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
)

// Recorder is an http.RoundTripper that checks every exchange the contract
// covers (under Prefix, or on another path of the document) against it and keeps what breaks it. The integration suite
// installs one as http.DefaultClient's transport and fails when it recorded
// anything, so every request a test makes to the public API is validated.
type Recorder struct {
	// Contract is the document to check against.
	Contract *Contract
	// Next sends the requests (http.DefaultTransport when nil).
	Next http.RoundTripper
	// FunctionCalls also checks each call of a public function straight
	// through the OpenFaaS gateway, /function/<name>/<path>
	// (Contract.FunctionPath), as that function's answer on <path>: a suite
	// that calls some functions there rather than through the edge
	// (tests/security, past the edge's per-IP limits) holds them to the
	// document too. Such an answer has none of the edge's headers, which the
	// document does not require.
	FunctionCalls bool

	mu         sync.Mutex
	violations []string
	checked    int
	seen       map[Answer]bool // the document's answers the exchanges got
}

// RoundTrip sends req through Next and, for a path the contract covers,
// checks the exchange. The answer's body is read whole and handed back unchanged.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	next := r.Next
	if next == nil {
		next = http.DefaultTransport
	}
	checked := req // the exchange as the contract reads it
	if prefix, ok := r.Contract.FunctionPath(req.Method, req.URL.Path); r.FunctionCalls && ok {
		checked = req.Clone(req.Context())
		checked.URL.Path = strings.TrimPrefix(req.URL.Path, prefix)
		checked.URL.RawPath = strings.TrimPrefix(req.URL.RawPath, prefix)
	}
	if !r.Contract.Covers(checked.URL.Path) {
		return next.RoundTrip(req)
	}
	var reqBody []byte
	out := req
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		out = req.Clone(req.Context())
		out.Body = io.NopCloser(bytes.NewReader(b))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	res, err := next.RoundTrip(out)
	if err != nil {
		return res, err
	}
	resBody, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(resBody))
	if err != nil {
		return res, nil // the caller sees the short body; a cut answer is not a contract matter
	}
	cerr := r.Contract.Check(checked, reqBody, res, resBody)
	a, listed := r.Contract.answered(checked, res, resBody)
	r.mu.Lock()
	r.checked++
	if listed {
		if r.seen == nil {
			r.seen = map[Answer]bool{}
		}
		r.seen[a] = true
	}
	if cerr != nil {
		r.violations = append(r.violations, cerr.Error())
	}
	r.mu.Unlock()
	return res, nil
}

// Violations returns what broke the contract so far.
func (r *Recorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}

// Seen is every answer of the document the exchanges checked so far got,
// each once (SeenFile).
func (r *Recorder) Seen() []Answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Answer, 0, len(r.seen))
	for a := range r.seen {
		out = append(out, a)
	}
	return out
}

// Checked is the number of exchanges checked so far.
func (r *Recorder) Checked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checked
}

// RunSuite loads the contract, installs a Recorder as client's transport
// (sending through the transport client had), set as each of opts says, and
// runs m under it (Run): a suite's TestMain is os.Exit(contract.RunSuite(m,
// client)). A contract that does not load is exit code 2.
func RunSuite(m *testing.M, client *http.Client, opts ...func(*Recorder)) int {
	c, err := Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "contract:", err)
		return 2
	}
	rec := &Recorder{Contract: c, Next: client.Transport}
	for _, o := range opts {
		o(rec)
	}
	client.Transport = rec
	return rec.Run(m)
}

// Run runs a suite's tests whose requests go through r (m.Run) and answers
// the exit code: m's, or 1 when an exchange broke the contract (each
// printed), or when the whole suite ran and r checked nothing (its requests
// no longer go through r). A run of some tests (-run, -skip, -list, -short)
// may check nothing. When SeenEnv names a folder, the answers the
// exchanges got are written there (SeenFile), for
// TestEveryListedAnswerWasSeen; a write that fails is exit code 1 too, and
// the violations are printed all the same.
func (r *Recorder) Run(m *testing.M) int {
	return r.run(m, os.Stdout, os.Stderr)
}

// run is Run for m (a *testing.M, or a test's stand-in), printing to stdout
// and stderr.
func (r *Recorder) run(m interface{ Run() int }, stdout, stderr io.Writer) int {
	code := m.Run()
	switch v := r.Violations(); {
	case len(v) > 0:
		fmt.Fprintf(stderr, "FAIL: %d of %d exchanges with the public API break api/openapi.yaml:\n", len(v), r.Checked())
		for _, s := range v {
			fmt.Fprintln(stderr, "  "+s)
		}
		code = 1
	case r.Checked() > 0:
		fmt.Fprintf(stdout, "contract: %d exchanges with the public API checked against api/openapi.yaml\n", r.Checked())
	case fullRun():
		fmt.Fprintln(stderr, "FAIL: the whole suite ran and no exchange with the public API was checked against api/openapi.yaml "+
			"(do its requests still go through the contract.Recorder?)")
		code = 1
	}
	if dir := os.Getenv(SeenEnv); dir != "" {
		r.mu.Lock()
		err := writeSeen(dir, suiteName(), fullRun(), r.seen)
		r.mu.Unlock()
		if err != nil {
			fmt.Fprintf(stderr, "FAIL: contract: the answers seen, for %s: %v\n", SeenEnv, err)
			code = 1
		}
	}
	return code
}

// fullRun reports whether m.Run ran every test: no -run, -skip or -list, and
// not -short (which skips every test that starts the local runtime).
func fullRun() bool {
	for _, name := range []string{"test.run", "test.skip", "test.list"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return !testing.Short()
}
