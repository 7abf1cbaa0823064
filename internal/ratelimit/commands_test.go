package ratelimit_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/ratelimit"
)

// commandCounter counts the commands a client hands to Redis, MULTI and EXEC
// included.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// countedLimiter is a limiter with a budget nothing exhausts and an hour's
// window on the real Redis under a random prefix (deleted when the test
// ends), through one connection whose handshake is done and whose commands
// c counts from zero.
func countedLimiter(t *testing.T) (l *ratelimit.Limiter, rdb *redis.Client, prefix string, c *commandCounter) {
	t.Helper()
	rdb, prefix = scratchRedis(t, 1)
	ctx := context.Background()
	c = &commandCounter{}
	rdb.AddHook(c)
	l, err := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Limit: 1 << 40, Window: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Allow(ctx, "warm"); err != nil { // the connection's handshake
		t.Fatal(err)
	}
	c.n.Store(0)
	return l, rdb, prefix, c
}

// TestACountIsTwoRedisCommands: a checkout's count is INCR and EXPIRE NX in
// one pipeline, not MULTI, INCR, EXPIRE NX and EXEC (issue 11: 4 commands
// before), and the key still expires after the window. Its allocations are
// TestACountAllocatesLittle's (without the race detector).
func TestACountIsTwoRedisCommands(t *testing.T) {
	l, rdb, prefix, c := countedLimiter(t)
	ctx := context.Background()
	const n = 50
	for range n {
		if err := l.Allow(ctx, "user-a"); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.n.Load(); got != 2*n {
		t.Errorf("%d Redis commands for %d counts, want %d (two each)", got, n, 2*n)
	}
	keys, err := rdb.Keys(ctx, prefix+"user-a:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if v, _ := rdb.Get(ctx, keys[0]).Int64(); v != n {
		t.Errorf("counter %d, want %d", v, n)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= time.Hour-time.Minute || ttl > time.Hour+time.Second {
		t.Errorf("counter expires in %s, want the window and a second", ttl)
	}
}
