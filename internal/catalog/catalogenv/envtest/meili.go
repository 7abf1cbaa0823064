package envtest

import (
	"context"
	"errors"
	"sync"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/search"
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
