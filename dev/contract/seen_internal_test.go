package contract

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// suiteStub stands in for a suite's *testing.M: its Run answers the code.
type suiteStub int

func (s suiteStub) Run() int { return int(s) }

// TestRunPrintsTheViolationsWhenTheSeenFileFails: a seen file that cannot
// be written fails the run, and the exchanges that broke the contract are
// printed all the same: they are what the run found.
func TestRunPrintsTheViolationsWhenTheSeenFileFails(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SeenEnv, notADir)
	const broke = "POST /api/v1/users: 201 without its Location (planted)"
	r := &Recorder{violations: []string{broke}, checked: 3}
	var stdout, stderr bytes.Buffer
	if code := r.run(suiteStub(0), &stdout, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	for _, want := range []string{"1 of 3 exchanges with the public API break api/openapi.yaml", broke, "the answers seen, for " + SeenEnv} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestTheSeenFileRoundTrips: what a suite's Run writes into the SeenEnv
// folder ReadSeen reads back whole: the suite's name (the test binary's,
// less ".test"), whether the whole suite ran, and each answer once; two runs
// of one suite write two files.
func TestTheSeenFileRoundTrips(t *testing.T) {
	if got := suiteName(); got != "contract" {
		t.Fatalf("suiteName() = %q in dev/contract's test binary (os.Args[0] %q), want contract", got, os.Args[0])
	}
	dir := t.TempDir()
	t.Setenv(SeenEnv, dir)
	seen := map[Answer]bool{
		{Op: "POST /api/v1/users", Status: "409", Code: "email_taken"}:   true,
		{Op: "GET /api/v1/products/{id}", Status: "304"}:                 true,
		{Op: "GET /api/v1/users/me", Status: "5XX", Code: "bad_gateway"}: true,
	}
	want := []Answer{
		{Op: "GET /api/v1/products/{id}", Status: "304"},
		{Op: "GET /api/v1/users/me", Status: "5XX", Code: "bad_gateway"},
		{Op: "POST /api/v1/users", Status: "409", Code: "email_taken"},
	}

	// A whole run, written as Run writes it.
	if err := writeSeen(dir, "integration", true, seen); err != nil {
		t.Fatal(err)
	}
	// A run of some tests, through Run: -skip makes it one, whatever flags
	// this test binary was given.
	skip := flag.Lookup("test.skip")
	was := skip.Value.String()
	if err := skip.Value.Set("^NoSuchTest$"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = skip.Value.Set(was) })
	r := &Recorder{seen: seen, checked: 3}
	var stdout, stderr bytes.Buffer
	if code := r.run(suiteStub(0), &stdout, &stderr); code != 0 {
		t.Fatalf("Run = %d, want 0; stderr: %s", code, stderr.String())
	}

	files, err := ReadSeen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("ReadSeen read %d files, want 2: %+v", len(files), files)
	}
	slices.SortFunc(files, func(a, b SeenFile) int { return strings.Compare(a.Suite, b.Suite) })
	for i, w := range []SeenFile{{Suite: "contract", Full: false, Seen: want}, {Suite: "integration", Full: true, Seen: want}} {
		if f := files[i]; f.Suite != w.Suite || f.Full != w.Full || !slices.Equal(f.Seen, w.Seen) {
			t.Errorf("read back %+v, want %+v", f, w)
		}
	}

	// A second run of a suite is a file of its own, not written over the first.
	if err := writeSeen(dir, "integration", false, nil); err != nil {
		t.Fatal(err)
	}
	if files, err := ReadSeen(dir); err != nil || len(files) != 3 {
		t.Errorf("after a second run of integration: ReadSeen read %d files (%v), want 3", len(files), err)
	}

	// A file that is no SeenFile is an error naming it.
	bad := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSeen(dir); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("ReadSeen with %s cut short: %v, want an error naming it", bad, err)
	}
}
