package edge

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// counter increments a fixed-window counter and returns its new value.
type counter interface {
	incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
}

// redisCounter is Kong's redis policy: INCR plus EXPIRE on a shared Redis.
type redisCounter struct{ c *redis.Client }

func (r redisCounter) incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	pipe := r.c.TxPipeline()
	n := pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return n.Val(), nil
}

// localCounter is Kong's local policy: in-memory counters of one edge.
// Expired counters are swept every sweepEvery increments.
type localCounter struct {
	mu   sync.Mutex
	n    map[string]int64
	exp  map[string]time.Time
	now  func() time.Time
	seen int
}

// sweepEvery is how many increments pass between sweeps of expired counters.
const sweepEvery = 1000

func newLocalCounter(now func() time.Time) *localCounter {
	return &localCounter{n: map[string]int64{}, exp: map[string]time.Time{}, now: now}
}

func (l *localCounter) incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.seen++; l.seen%sweepEvery == 0 {
		for k, e := range l.exp {
			if now.After(e) {
				delete(l.n, k)
				delete(l.exp, k)
			}
		}
	}
	if e, ok := l.exp[key]; ok && now.After(e) {
		delete(l.n, key)
	}
	l.n[key]++
	l.exp[key] = now.Add(ttl)
	return l.n[key], nil
}
