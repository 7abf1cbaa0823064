// Package logstore keeps the recent output of every function and connector
// the local runtime runs, in one bounded ring per name, and answers
// faas-provider log requests from it (tail, since, instance, follow).
//
// A name must be opened before lines are kept for it: output of a name that
// was never opened is dropped, and a query for it is a not-found error.
package logstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/logs"

	"github.com/shopfaas/shop/internal/fault"
)

// followBuffer is how many lines a follower may fall behind before it loses
// lines rather than slowing down the processes that write them.
const followBuffer = 1024

// codeNotFound is the error code of a query for a name without logs.
const codeNotFound = "logs_not_found"

// Store holds one ring per name. It implements faas-provider's logs.Requester.
type Store struct {
	lines     int
	namespace string

	mu    sync.Mutex
	rings map[string]*ring
}

// New returns a store keeping the last lines lines of each name; messages
// carry namespace.
func New(lines int, namespace string) *Store {
	return &Store{lines: lines, namespace: namespace, rings: map[string]*ring{}}
}

// Open starts keeping lines for name; opening it again keeps what it has.
func (s *Store) Open(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rings[name] == nil {
		s.rings[name] = newRing(s.lines)
	}
}

// Forget drops every line kept for name and ends its followers' queries, so
// a function deployed again under the same name starts with no logs; lines
// of name are dropped until it is opened again.
func (s *Store) Forget(name string) {
	s.mu.Lock()
	r := s.rings[name]
	delete(s.rings, name)
	s.mu.Unlock()
	if r != nil {
		r.end()
	}
}

// Has reports whether name was opened.
func (s *Store) Has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rings[name] != nil
}

// Append records one line of name's instance, stamped now, and hands it to
// name's followers. Lines of a name that was never opened are dropped.
func (s *Store) Append(name, instance, text string) {
	s.mu.Lock()
	r := s.rings[name]
	s.mu.Unlock()
	if r != nil {
		r.add(logs.Message{Name: name, Namespace: s.namespace, Instance: instance, Timestamp: time.Now().UTC(), Text: text})
	}
}

// Query answers a faas-provider log request: the stored lines of req.Name
// matching Instance and Since, the last Tail of them (all when Tail <= 0),
// and then, with Follow, every new matching line until ctx is done. The
// channel is closed at the end. A name that was never opened is a
// fault.NotFound error.
func (s *Store) Query(ctx context.Context, req logs.Request) (<-chan logs.Message, error) {
	s.mu.Lock()
	r := s.rings[req.Name]
	s.mu.Unlock()
	if r == nil {
		return nil, fault.E(fault.NotFound, codeNotFound, fmt.Sprintf("no logs for %q", req.Name))
	}
	return r.query(ctx, req), nil
}

// ring keeps the last lines of one name and feeds its followers.
type ring struct {
	mu        sync.Mutex
	lines     []logs.Message
	next      int
	full      bool
	followers map[chan logs.Message]struct{}
	ended     bool // Forget was called: no new followers, the old ones ended
}

func newRing(size int) *ring {
	return &ring{lines: make([]logs.Message, size), followers: map[chan logs.Message]struct{}{}}
}

func (r *ring) add(m logs.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.lines[r.next] = m
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
	for ch := range r.followers {
		select {
		case ch <- m:
		default: // a follower too far behind loses the line
		}
	}
}

// snapshotLocked returns the stored lines, oldest first.
func (r *ring) snapshotLocked() []logs.Message {
	if !r.full {
		return append([]logs.Message(nil), r.lines[:r.next]...)
	}
	out := append([]logs.Message(nil), r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}

func (r *ring) query(ctx context.Context, req logs.Request) <-chan logs.Message {
	match := func(m logs.Message) bool {
		if req.Instance != "" && m.Instance != req.Instance {
			return false
		}
		return req.Since == nil || !m.Timestamp.Before(*req.Since)
	}
	r.mu.Lock()
	var past []logs.Message
	for _, m := range r.snapshotLocked() {
		if match(m) {
			past = append(past, m)
		}
	}
	if req.Tail > 0 && len(past) > req.Tail {
		past = past[len(past)-req.Tail:]
	}
	var live chan logs.Message
	if req.Follow && !r.ended {
		live = make(chan logs.Message, followBuffer)
		r.followers[live] = struct{}{}
	}
	r.mu.Unlock()

	out := make(chan logs.Message)
	go func() {
		defer close(out)
		if live != nil {
			defer r.unfollow(live)
		}
		for _, m := range past {
			if !send(ctx, out, m) {
				return
			}
		}
		for live != nil {
			select {
			case m, ok := <-live:
				if !ok {
					return
				}
				if match(m) && !send(ctx, out, m) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// end closes the ring: every follower's query finishes.
func (r *ring) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	for ch := range r.followers {
		close(ch)
		delete(r.followers, ch)
	}
}

func (r *ring) unfollow(ch chan logs.Message) {
	r.mu.Lock()
	delete(r.followers, ch)
	r.mu.Unlock()
}

// send delivers m unless ctx ends first.
func send(ctx context.Context, out chan<- logs.Message, m logs.Message) bool {
	select {
	case out <- m:
		return true
	case <-ctx.Done():
		return false
	}
}
