// Package queue is the local runtime's stand-in for the OpenFaaS
// queue-worker: calls accepted on /async-function are written to a journal
// on disk before they are acknowledged, run against a replica of their
// function, answered to their X-Callback-Url, and removed from the journal
// only then. Calls a previous run accepted but did not finish are replayed at
// the next start, so delivery is at least once, as with the queue-worker: a
// call whose function ran but whose entry's removal had not reached the disk
// (Done syncs it) runs again after a crash of the runtime or the host, and
// its callback is posted again.
package queue

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopfaas/shop/dev/faaslocal/durable"
)

// Call is one accepted asynchronous invocation. Its JSON form is the
// journal entry.
type Call struct {
	// Function is the function's name (without namespace).
	Function string `json:"name"`
	// Method is the accepted request's method, kept for the record: the
	// worker sends every call as a POST, as OpenFaaS's queue worker does.
	// Path and Query are the request to send it; Path starts with /.
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query"`
	// Header is the request's header, X-Call-Id and X-Start-Time included.
	Header http.Header `json:"header"`
	// Body is the request body (bounded by the handler that accepted it).
	Body []byte `json:"body"`
	// Callback, when set, receives the function's answer as a POST.
	Callback string `json:"callback"`
	// CallID identifies the call in headers and logs. It comes from the
	// client (X-Call-Id) when it sent one, so two calls may share it.
	CallID string `json:"call_id"`
	// Entry is the call's journal file, unique to it: set by Put and Pending.
	Entry string `json:"-"`
}

// Journal keeps accepted calls durably, one file per call in its directory.
type Journal struct {
	dir string

	mu   sync.Mutex
	last int64 // the sequence of the last entry named, this run's or a previous one's
	// unsequenced holds the places of the entries named before sequences
	// (before 2026-12-07), found at open: negative, so before every
	// sequence, in the order their files were written.
	unsequenced map[string]int64
}

// now is the clock of a new entry's sequence (a variable for the test that
// steps it back across a restart).
var now = time.Now

// OpenJournal returns the journal kept in dir, creating it (0700; an
// existing one others could read is narrowed to 0700, since entries keep
// the call's header, Authorization included). The entries already there
// set where the sequence goes on: past the highest one, whatever the clock
// says now, so that a call accepted after a restart takes its turn after
// the calls replayed from the journal even when the clock was stepped back;
// and the entries named before sequences take their turns first, in the
// order their files were written.
func OpenJournal(dir string) (*Journal, error) {
	if err := makeDir(dir); err != nil {
		return nil, fmt.Errorf("async journal: %w", err)
	}
	j := &Journal{dir: dir, unsequenced: map[string]int64{}}
	if err := j.seed(); err != nil {
		return nil, fmt.Errorf("async journal: %w", err)
	}
	return j, nil
}

// makeDir creates dir and any missing parent (0700), and syncs the parent
// of each directory it created: until then a crash of the host could lose
// the new directory's name, and with it every call journaled inside.
func makeDir(dir string) error { return durable.MkdirPrivate(dir, syncDir) }

// seed reads the journal's entries: the highest sequence becomes last, and
// the unsequenced entries get their places, by their files' modification
// time (when they were written: Replace's rename keeps it), then name.
func (j *Journal) seed() error {
	files, err := os.ReadDir(j.dir)
	if err != nil {
		return err
	}
	type written struct {
		name string
		at   time.Time
	}
	var old []written
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".json") || f.IsDir() {
			continue
		}
		if seq, ok := sequence(f.Name()); ok {
			j.last = max(j.last, seq)
			continue
		}
		info, err := f.Info()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
		old = append(old, written{f.Name(), info.ModTime()})
	}
	slices.SortFunc(old, func(a, b written) int {
		return cmp.Or(a.at.Compare(b.at), strings.Compare(a.name, b.name))
	})
	for i, w := range old {
		j.unsequenced[w.name] = int64(i - len(old))
	}
	return nil
}

// sequence is the sequence a name given by entry begins with; false for a
// name of another form, such as one given before sequences: "<id>.json"
// until 2026-12-03, then "<id>.<random>.json" (an id of 20 digits there
// is not a sequence: the form has one part fewer).
func sequence(name string) (int64, bool) {
	parts := strings.Split(strings.TrimSuffix(name, ".json"), ".")
	if len(parts) != 3 || len(parts[0]) != 20 || strings.Trim(parts[0], "0123456789") != "" {
		return 0, false
	}
	seq, err := strconv.ParseInt(parts[0], 10, 64)
	return seq, err == nil
}

// place is an entry's place in the order calls were journaled: its
// sequence, or its place among the unsequenced entries (before every
// sequence), then its name. An unsequenced entry that was not there at open
// comes after those that were, still before every sequence.
type place struct {
	seq   int64
	entry string
}

func (p place) compare(q place) int {
	return cmp.Or(cmp.Compare(p.seq, q.seq), strings.Compare(p.entry, q.entry))
}

// place returns entry's place (see place).
func (j *Journal) place(entry string) place {
	if seq, ok := sequence(entry); ok {
		return place{seq, entry}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return place{j.unsequenced[entry], entry}
}

// entry names a new journal file for a call of callID: seq, 20 digits, so
// that file names sort in the order calls were journaled (Pending's order,
// the worker's order of turns); the id as a safe file name (call ids come
// from clients), cut to 64 bytes; then random bytes, so that two calls
// never share a file, even with one id, or with ids that differ only in
// characters a file name does not keep ("job.1", "job:1").
func entry(seq int64, callID string) (string, error) {
	safe := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, callID)
	if len(safe) > 64 {
		safe = safe[:64]
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("%020d.", seq) + safe + "." + hex.EncodeToString(b) + ".json", nil
}

// next is the sequence of a new entry: the time in Unix nanoseconds, and
// past the last one named, this run's or a previous one's still in the
// journal (seed), so that the order holds across restarts however the
// clock moved.
func (j *Journal) next() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.last = max(now().UnixNano(), j.last+1)
	return j.last
}

// Put writes c in a file of its own and syncs it to disk before returning c
// with its Entry: a caller acknowledges the call only after Put succeeded,
// and removes it with Done of what Put returned.
func (j *Journal) Put(c Call) (Call, error) {
	name, err := entry(j.next(), c.CallID)
	if err != nil {
		return c, err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return c, err
	}
	final := filepath.Join(j.dir, name)
	if err := durable.Replace(final, b); err != nil {
		return c, err
	}
	// The rename is in the directory: until the directory is synced, a
	// crash of the host can leave only the .tmp file, which Pending skips,
	// and the call was acknowledged. When the sync fails the call is not
	// queued (its caller answers 503), so its entry goes too: a replay at
	// the next start would run a call its client was told to send again.
	if err := syncDir(j.dir); err != nil {
		_ = os.Remove(final)
		return c, err
	}
	c.Entry = name
	return c, nil
}

// syncDir flushes dir's entries to disk (a variable for the tests that see
// the journal sync its directory).
var syncDir = durable.SyncDir

// Done removes a finished call, c as Put or Pending returned it; removing it
// twice is not an error. The removal is synced to disk before Done returns:
// until then a crash of the host could bring the entry back, and the call,
// answered already, would run again at the next start.
func (j *Journal) Done(c Call) error {
	if c.Entry == "" || c.Entry != filepath.Base(c.Entry) {
		return fmt.Errorf("async journal: call %s has no entry", c.CallID)
	}
	if err := os.Remove(filepath.Join(j.dir, c.Entry)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(j.dir)
}

// Pending returns the calls in the journal, in the order they were
// journaled: the entries written before 2026-12-07, which have no sequence,
// first, in the order their files were written; then the others by their
// sequence. An entry that cannot be read is left in place and reported in
// the error, joined; the others are returned.
func (j *Journal) Pending() ([]Call, error) {
	files, err := filepath.Glob(filepath.Join(j.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(files, func(a, b string) int {
		return j.place(filepath.Base(a)).compare(j.place(filepath.Base(b)))
	})
	var calls []Call
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		var c Call
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("journal entry %s kept: %w", filepath.Base(f), err))
			continue
		}
		c.Entry = filepath.Base(f)
		calls = append(calls, c)
	}
	return calls, errors.Join(errs...)
}
