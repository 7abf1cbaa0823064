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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Call is one accepted asynchronous invocation. Its JSON form is the
// journal entry.
type Call struct {
	// Function is the function's name (without namespace).
	Function string `json:"name"`
	// Method, Path and Query are the request to send it; Path starts with /.
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query"`
	// Header is the request's header, X-Call-Id and X-Start-Time included.
	Header http.Header `json:"header"`
	// Body is the request body (bounded by the handler that accepted it).
	Body []byte `json:"body"`
	// Callback, when set, receives the function's answer as a POST.
	Callback string `json:"callback"`
	// CallID identifies the call in headers, logs and the journal.
	CallID string `json:"call_id"`
}

// Journal keeps accepted calls durably, one file per call in its directory.
type Journal struct {
	dir string
}

// OpenJournal returns the journal kept in dir, creating it (0700).
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("async journal: %w", err)
	}
	return &Journal{dir: dir}, nil
}

// path is c's file. Call ids come from clients: only a safe file name is kept.
func (j *Journal) path(callID string) string {
	safe := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, callID)
	return filepath.Join(j.dir, safe+".json")
}

// Put writes c and syncs it to disk before returning: a caller acknowledges
// the call only after Put succeeded.
func (j *Journal) Put(c Call) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	final := j.path(c.CallID)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, final)
}

// Done removes a finished call; removing it twice is not an error.
func (j *Journal) Done(callID string) error {
	if err := os.Remove(j.path(callID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Pending returns the calls in the journal. An entry that cannot be read is
// left in place and reported in the error, joined; the others are returned.
func (j *Journal) Pending() ([]Call, error) {
	files, err := filepath.Glob(filepath.Join(j.dir, "*.json"))
	if err != nil {
		return nil, err
	}
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
		calls = append(calls, c)
	}
	return calls, errors.Join(errs...)
}
