package queue_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shopfaas/shop/dev/faaslocal/queue"
)

func openJournal(t *testing.T, dir string) *queue.Journal {
	t.Helper()
	j, err := queue.OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func call(id string) queue.Call {
	return queue.Call{Function: "echo", Method: http.MethodPost, Path: "/jobs", Query: "x=1",
		Header: http.Header{"X-Call-Id": {id}}, Body: []byte("payload " + id), Callback: "http://127.0.0.1:1/cb", CallID: id}
}

func pending(t *testing.T, j *queue.Journal) []queue.Call {
	t.Helper()
	calls, err := j.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return calls
}

var byID = cmpopts.SortSlices(func(a, b queue.Call) bool { return a.CallID < b.CallID })

// An accepted call survives a restart (a new Journal on the same directory)
// exactly as it was accepted, until it is done.
func TestJournalKeepsCallsUntilDone(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	a, b := call("a"), call("b")
	for _, c := range []queue.Call{a, b} {
		if err := j.Put(c); err != nil {
			t.Fatal(err)
		}
	}
	reopened := openJournal(t, dir)
	if diff := cmp.Diff([]queue.Call{a, b}, pending(t, reopened), byID); diff != "" {
		t.Fatalf("after a restart (-want +got):\n%s", diff)
	}
	if err := reopened.Done("a"); err != nil {
		t.Fatal(err)
	}
	if err := reopened.Done("a"); err != nil {
		t.Errorf("Done twice: %v", err)
	}
	if diff := cmp.Diff([]queue.Call{b}, pending(t, openJournal(t, dir))); diff != "" {
		t.Errorf("after Done(a) (-want +got):\n%s", diff)
	}
}

// An entry that cannot be read is reported and left in place; the others
// are still returned.
func TestJournalKeepsUnreadableEntries(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	if err := j.Put(call("good")); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	calls, err := j.Pending()
	if err == nil || !strings.Contains(err.Error(), "broken.json") {
		t.Errorf("error %v, want one naming broken.json", err)
	}
	if len(calls) != 1 || calls[0].CallID != "good" {
		t.Errorf("calls %+v, want the readable one", calls)
	}
	if _, err := os.Stat(bad); err != nil {
		t.Errorf("the unreadable entry was not kept: %v", err)
	}
}

// Call ids come from clients: none can name a file outside the journal.
func TestCallIDsStayInsideTheJournal(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "async")
	j := openJournal(t, dir)
	c := call("../../escape")
	if err := j.Put(c); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "async" {
		t.Errorf("the state directory holds %v, want only async/", entries)
	}
	if diff := cmp.Diff([]queue.Call{c}, pending(t, j)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := j.Done(c.CallID); err != nil || len(pending(t, j)) != 0 {
		t.Errorf("Done: %v, pending %v", err, pending(t, j))
	}
}
