package faaslocal

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The async journal makes /async-function durable: a call is written to
// <state>/async/<call id>.json (and synced) before the 202 is sent, removed
// once the invocation and its callback are done, and replayed when the
// runtime starts again. Delivery is therefore at least once, as with the
// OpenFaaS queue-worker: a call whose function ran but whose file was not yet
// removed runs again after a crash.

// journaledCall is the on-disk form of an asyncCall.
type journaledCall struct {
	Name     string      `json:"name"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Query    string      `json:"query"`
	Header   http.Header `json:"header"`
	Body     []byte      `json:"body"`
	Callback string      `json:"callback"`
	CallID   string      `json:"call_id"`
}

func (rt *Runtime) asyncDir() string { return filepath.Join(rt.cfg.StateDir, "async") }

func (rt *Runtime) journalPath(callID string) string {
	// Call ids come from clients: keep only a safe file name.
	safe := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, callID)
	return filepath.Join(rt.asyncDir(), safe+".json")
}

// journal writes c durably; the caller answers 202 only when it succeeded.
func (rt *Runtime) journal(c asyncCall) error {
	if err := os.MkdirAll(rt.asyncDir(), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(journaledCall{Name: c.name, Method: c.method, Path: c.path, Query: c.query,
		Header: c.header, Body: c.body, Callback: c.callback, CallID: c.callID})
	if err != nil {
		return err
	}
	final := rt.journalPath(c.callID)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// forget removes c from the journal once it is done.
func (rt *Runtime) forget(c asyncCall) {
	if err := os.Remove(rt.journalPath(c.callID)); err != nil && !os.IsNotExist(err) {
		rt.log.Warn("async journal", "call_id", c.callID, "err", err.Error())
	}
}

// replayJournal runs the calls a previous run accepted but did not finish,
// each once its function is available.
func (rt *Runtime) replayJournal() {
	files, _ := filepath.Glob(filepath.Join(rt.asyncDir(), "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		var j journaledCall
		if err == nil {
			err = json.Unmarshal(b, &j)
		}
		if err != nil {
			rt.log.Warn("async journal: unreadable entry kept", "file", f, "err", fmt.Sprint(err))
			continue
		}
		c := asyncCall{name: j.Name, method: j.Method, path: j.Path, query: j.Query, header: j.Header,
			body: j.Body, callback: j.Callback, callID: j.CallID}
		rt.printf("replaying async call %s to %s accepted by a previous run\n", c.callID, c.name)
		rt.async.Go(func() {
			ctx, cancel := context.WithTimeout(rt.ctx, 2*time.Minute)
			defer cancel()
			if !rt.waitDeployed(ctx, c.name) || rt.WaitReady(ctx, c.name) != nil {
				return // kept in the journal for the next start
			}
			rt.runAsync(c)
		})
	}
}

// waitDeployed waits until the function is deployed (a function deployed
// through the API after the start, not from the stack, comes later).
func (rt *Runtime) waitDeployed(ctx context.Context, name string) bool {
	for {
		rt.mu.Lock()
		deployed := rt.fns[name] != nil
		rt.mu.Unlock()
		if deployed {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
}
