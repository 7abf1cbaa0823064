package contract

import (
	"bytes"
	"os"
	"path/filepath"
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
