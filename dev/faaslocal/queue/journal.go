// Package queue is the local runtime's stand-in for the OpenFaaS
// queue-worker: calls accepted on /async-function are written to a journal
// on disk before they are acknowledged, run against a replica of their
// function, answered to their X-Callback-Url, and removed from the journal
// only then. Calls a previous run accepted but did not finish are replayed at
// the next start, so delivery is at least once, as with the queue-worker: a
// call whose function ran but whose entry was not yet removed runs again
// after a crash.
package queue

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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
	last int64 // the sequence of the last entry Put named
}

// OpenJournal returns the journal kept in dir, creating it (0700).
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("async journal: %w", err)
	}
	return &Journal{dir: dir}, nil
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

// next is the sequence of a new entry: the time in Unix nanoseconds, so that
// the order holds across restarts, and past the last one this run gave.
func (j *Journal) next() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.last = max(time.Now().UnixNano(), j.last+1)
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

// syncDir flushes dir's entries to disk (a variable for the test that sees
// Put sync the directory after its rename).
var syncDir = durable.SyncDir

// Done removes a finished call, c as Put or Pending returned it; removing it
// twice is not an error.
func (j *Journal) Done(c Call) error {
	if c.Entry == "" || c.Entry != filepath.Base(c.Entry) {
		return fmt.Errorf("async journal: call %s has no entry", c.CallID)
	}
	if err := os.Remove(filepath.Join(j.dir, c.Entry)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Pending returns the calls in the journal, in the order they were
// journaled (their file names' order; an entry written before 2026-12-07
// has no sequence, and its call id gives its place). An entry that cannot be read is
// left in place and reported in the error, joined; the others are returned.
func (j *Journal) Pending() ([]Call, error) {
	files, err := filepath.Glob(filepath.Join(j.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files) // Glob's order, made explicit: the calls' order
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
