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

// redisCounter is Kong's redis policy: INCR plus EXPIRE on a shared Redis,
// in one EVAL of a script as Kong sends them, so that it needs no more
// than docker-compose.yml's ACL user kong may do (EVAL, and INCR and
// EXPIRE within it, on keys ratelimit:*): no MULTI, no EVALSHA, no PEXPIRE.
type redisCounter struct{ c *redis.Client }

// incrScript increments KEYS[1], sets its time to live to ARGV[1] seconds
// when the increment made it (a count of 1), as Kong's script does
// (kong/plugins/rate-limiting/policies/init.lua, 3.9.0: EXPIRE only when
// INCR returns 1), so later increments never push a window's end back,
// and returns the new count.
const incrScript = `local n = redis.call("INCR", KEYS[1])
if n == 1 then
	redis.call("EXPIRE", KEYS[1], ARGV[1])
end
return n`

func (r redisCounter) incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	secs := int64((ttl + time.Second - 1) / time.Second)
	return r.c.Eval(ctx, incrScript, []string{key}, max(secs, 1)).Int64()
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
