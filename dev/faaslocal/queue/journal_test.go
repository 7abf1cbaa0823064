package queue_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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

var (
	byID    = cmpopts.SortSlices(func(a, b queue.Call) bool { return a.CallID < b.CallID })
	noEntry = cmpopts.IgnoreFields(queue.Call{}, "Entry")
)

// A call is acknowledged once Put returns: its entry's rename must be on
// disk by then, so Put syncs the directory after the rename (a crash of the
// host before that could leave only the .tmp file, which Pending skips), and
// fails when it cannot.
func TestPutSyncsTheDirectoryAfterItsRename(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	var synced []string
	restore := queue.SetSyncDir(func(d string) error {
		names, _ := filepath.Glob(filepath.Join(d, "*.json"))
		synced = append(synced, fmt.Sprintf("%s %d entries", d, len(names)))
		return errors.New("disk gone")
	})
	defer restore()
	if _, err := j.Put(call("a")); err == nil {
		t.Error("Put answered nil with the directory unsynced")
	}
	if got := pending(t, j); len(got) != 0 {
		t.Errorf("a call Put refused is still pending (a replay would run it): %+v", got)
	}
	if want := []string{dir + " 1 entries"}; !slices.Equal(synced, want) {
		t.Errorf("directory syncs %q, want %q (after the rename)", synced, want)
	}
}

// An accepted call survives a restart (a new Journal on the same directory)
// exactly as it was accepted, until it is done.
func TestJournalKeepsCallsUntilDone(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	a, b := call("a"), call("b")
	for _, c := range []queue.Call{a, b} {
		if _, err := j.Put(c); err != nil {
			t.Fatal(err)
		}
	}
	reopened := openJournal(t, dir)
	got := pending(t, reopened)
	if diff := cmp.Diff([]queue.Call{a, b}, got, byID, noEntry); diff != "" {
		t.Fatalf("after a restart (-want +got):\n%s", diff)
	}
	i := slices.IndexFunc(got, func(c queue.Call) bool { return c.CallID == "a" })
	if err := reopened.Done(got[i]); err != nil {
		t.Fatal(err)
	}
	if err := reopened.Done(got[i]); err != nil {
		t.Errorf("Done twice: %v", err)
	}
	if diff := cmp.Diff([]queue.Call{b}, pending(t, openJournal(t, dir)), noEntry); diff != "" {
		t.Errorf("after Done(a) (-want +got):\n%s", diff)
	}
}

// An entry that cannot be read is reported and left in place; the others
// are still returned.
func TestJournalKeepsUnreadableEntries(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	if _, err := j.Put(call("good")); err != nil {
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
	c, err := j.Put(call("../../escape"))
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 || entries[0].Name() != "async" {
		t.Errorf("the state directory holds %v, want only async/", entries)
	}
	if diff := cmp.Diff([]queue.Call{c}, pending(t, j)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := j.Done(c); err != nil || len(pending(t, j)) != 0 {
		t.Errorf("Done: %v, pending %v", err, pending(t, j))
	}
}

// Call ids come from clients, so two accepted calls may share one, or have
// ids that differ only in characters a file name does not keep. Each keeps
// an entry of its own: a second call no longer overwrote the first one's, and
// the first call's Done no longer removed the second's, which a restart then
// never replayed.
func TestCallsSharingAnIDKeepAnEntryEach(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	var put []queue.Call
	for _, id := range []string{"job.1", "job:1", "job:1"} {
		c, err := j.Put(call(id))
		if err != nil {
			t.Fatal(err)
		}
		put = append(put, c)
	}
	if n := len(pending(t, openJournal(t, dir))); n != 3 {
		t.Fatalf("%d calls journaled, want 3", n)
	}
	if err := j.Done(put[1]); err != nil {
		t.Fatal(err)
	}
	left := pending(t, openJournal(t, dir))
	if diff := cmp.Diff([]queue.Call{put[0], put[2]}, left, byID); diff != "" {
		t.Errorf("after one is done (-want +got):\n%s", diff)
	}
}

// A finished call is removed for good once Done returns: Done syncs the
// directory after the removal (a crash of the host before that could bring
// the entry back, and the answered call would run again), and fails when
// it cannot. Until 2026-12-08 it synced nothing.
func TestDoneSyncsTheRemoval(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	c, err := j.Put(call("a"))
	if err != nil {
		t.Fatal(err)
	}
	var synced []string
	restore := queue.SetSyncDir(func(d string) error {
		names, _ := filepath.Glob(filepath.Join(d, "*.json"))
		synced = append(synced, fmt.Sprintf("%s %d entries", d, len(names)))
		return errors.New("disk gone")
	})
	defer restore()
	if err := j.Done(c); err == nil {
		t.Error("Done answered nil with the removal unsynced")
	}
	if want := []string{dir + " 0 entries"}; !slices.Equal(synced, want) {
		t.Errorf("directory syncs %q, want %q (after the removal)", synced, want)
	}
}

// OpenJournal syncs the parent of every directory it creates, the state's
// too when it makes that: a call synced inside a directory whose own name
// a crash of the host lost would be lost with it. An existing journal
// syncs nothing. Until 2026-12-08 no directory was synced.
func TestOpenJournalSyncsTheDirectoriesItCreates(t *testing.T) {
	root := t.TempDir()
	var synced []string
	restore := queue.SetSyncDir(func(d string) error { synced = append(synced, d); return nil })
	defer restore()
	dir := filepath.Join(root, "state", "async")
	openJournal(t, dir)
	if want := []string{root, filepath.Join(root, "state")}; !slices.Equal(synced, want) {
		t.Errorf("directory syncs %q at the first open, want %q", synced, want)
	}
	synced = nil
	openJournal(t, dir)
	if len(synced) != 0 {
		t.Errorf("directory syncs %q when the journal exists, want none", synced)
	}
}

// A journaled call keeps its client's whole header, Authorization included,
// since the call needs it when it runs, after a restart too (faas-provider's
// QueueRequest keeps the header as well): so the journal is the owner's
// alone, each entry 0600 in a 0700 directory, and a directory an older run
// or another tool left readable by others is narrowed to 0700 when opened.
// Until 2026-12-08 such a directory was used as it was.
func TestJournalEntriesAreTheOwnersAlone(t *testing.T) {
	for _, existing := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "async")
		if existing {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
				t.Fatal(err)
			}
		}
		j := openJournal(t, dir)
		c := call("a")
		c.Header.Set("Authorization", "Bearer secret-token")
		c, err := j.Put(c)
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("existing %v: journal directory %v %v, want 0700", existing, fi.Mode().Perm(), err)
		}
		if fi, err := os.Stat(filepath.Join(dir, c.Entry)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("existing %v: entry %v %v, want 0600", existing, fi.Mode().Perm(), err)
		}
		if got := pending(t, j); len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer secret-token" {
			t.Errorf("existing %v: the journaled call lost its Authorization: %+v", existing, got)
		}
	}
}
