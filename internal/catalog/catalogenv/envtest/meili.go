package envtest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/meili"
)

// Meili stands in for Meilisearch (a third-party service that cannot run
// here) at the search.Index contract, as Deps.External: it records what was
// pushed, and refuses every push while down. It is safe for concurrent use.
type Meili struct {
	mu     sync.Mutex
	docs   map[uuid.UUID]search.Document
	down   bool
	before func()
}

// NewMeili returns an empty index that is up.
func NewMeili() *Meili { return &Meili{docs: map[uuid.UUID]search.Document{}} }

// SetDown makes every later push fail (down) or succeed again.
func (m *Meili) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// BeforeNextUpsert runs f once, at the start of the next Upsert, before it
// records anything: what f does (another write and its push) lands first,
// as when a push is slow and another overtakes it.
func (m *Meili) BeforeNextUpsert(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.before = f
}

// Doc returns the document pushed last for id, and whether there is one.
func (m *Meili) Doc(id uuid.UUID) (search.Document, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[id]
	return d, ok
}

// Upsert records docs, or fails while down.
func (m *Meili) Upsert(_ context.Context, docs ...search.Document) error {
	m.mu.Lock()
	before := m.before
	m.before = nil
	m.mu.Unlock()
	if before != nil {
		before()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errors.New("meilisearch down")
	}
	for _, d := range docs {
		m.docs[d.ID] = d
	}
	return nil
}

// Delete forgets id's document, or fails while down.
func (m *Meili) Delete(_ context.Context, id uuid.UUID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errors.New("meilisearch down")
	}
	delete(m.docs, id)
	return nil
}

// Search is not part of what the tests use.
func (m *Meili) Search(context.Context, search.Query) (search.Result, error) {
	return search.Result{}, errors.New("not used")
}

// EnsureSettings does nothing.
func (m *Meili) EnsureSettings(context.Context) error { return nil }

// QueuedMeili is a Meilisearch (the real adapter, meili.Index, over HTTP)
// that accepts every write, 202 with a task, and leaves every task enqueued
// for ever: a write's wait for its task (meili's task polling) ends only
// with its context, as with a Meilisearch whose queue is stuck behind a long
// task. Polls counts the polls of the tasks, so a test sees when they stop.
type QueuedMeili struct {
	*meili.Index
	polls atomic.Int64
}

// NewQueuedMeili starts the server, closed when the test ends.
func NewQueuedMeili(t *testing.T) *QueuedMeili {
	t.Helper()
	q := &QueuedMeili{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/tasks/") {
			q.polls.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"uid": 1, "status": "enqueued"})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"taskUid": 1, "status": "enqueued"})
	}))
	t.Cleanup(srv.Close)
	ix, err := meili.New(meili.Config{URL: srv.URL, IndexUID: "products", PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	q.Index = ix
	return q
}

// Polls is how many times a task was polled so far.
func (q *QueuedMeili) Polls() int64 { return q.polls.Load() }
