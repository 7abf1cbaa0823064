package faaslocal

import (
	"context"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/logs"
)

// Namespace is the only namespace the local runtime has, as on faasd.
const Namespace = "openfaas-fn"

// logRing keeps the last lines of one function's replicas and feeds followers.
// Lines are never dropped for a follower that keeps up; a follower that falls
// more than its buffer behind loses lines rather than blocking the replicas.
type logRing struct {
	mu        sync.Mutex
	lines     []logs.Message
	next      int
	full      bool
	followers map[chan logs.Message]struct{}
}

func newLogRing(size int) *logRing {
	return &logRing{lines: make([]logs.Message, size), followers: map[chan logs.Message]struct{}{}}
}

func (l *logRing) add(m logs.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines[l.next] = m
	l.next = (l.next + 1) % len(l.lines)
	if l.next == 0 {
		l.full = true
	}
	for ch := range l.followers {
		select {
		case ch <- m:
		default:
		}
	}
}

// snapshot returns the stored lines, oldest first.
func (l *logRing) snapshotLocked() []logs.Message {
	if !l.full {
		return append([]logs.Message(nil), l.lines[:l.next]...)
	}
	out := append([]logs.Message(nil), l.lines[l.next:]...)
	return append(out, l.lines[:l.next]...)
}

// query answers a faas-provider log request: the stored lines matching
// instance and since, the last tail of them (all when tail <= 0), and then,
// when follow is set, every new matching line until ctx is done.
func (l *logRing) query(ctx context.Context, req logs.Request) <-chan logs.Message {
	match := func(m logs.Message) bool {
		if req.Instance != "" && m.Instance != req.Instance {
			return false
		}
		return req.Since == nil || !m.Timestamp.Before(*req.Since)
	}
	l.mu.Lock()
	var past []logs.Message
	for _, m := range l.snapshotLocked() {
		if match(m) {
			past = append(past, m)
		}
	}
	if req.Tail > 0 && len(past) > req.Tail {
		past = past[len(past)-req.Tail:]
	}
	var live chan logs.Message
	if req.Follow {
		live = make(chan logs.Message, 1024)
		l.followers[live] = struct{}{}
	}
	l.mu.Unlock()

	out := make(chan logs.Message)
	go func() {
		defer close(out)
		if live != nil {
			defer func() {
				l.mu.Lock()
				delete(l.followers, live)
				l.mu.Unlock()
			}()
		}
		for _, m := range past {
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
		if live == nil {
			return
		}
		for {
			select {
			case m := <-live:
				if !match(m) {
					continue
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func logMessage(fn, instance, text string) logs.Message {
	return logs.Message{Name: fn, Namespace: Namespace, Instance: instance, Timestamp: time.Now().UTC(), Text: text}
}
