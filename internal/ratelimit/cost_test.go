//go:build !race

// The race detector adds allocations of its own: counts are taken without it.

package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopfaas/shop/internal/cart/cartredis/cartredistest"
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

// TestACountIsTwoRedisCommands: a checkout's count is INCR and EXPIRE NX in
// one pipeline, not MULTI, INCR, EXPIRE NX and EXEC (issue 11: 4 commands and
// 31 allocations before), and the key still expires after the window.
func TestACountIsTwoRedisCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Redis")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "test:" + hex.EncodeToString(b) + ":ratelimit:"
	rdb := redis.NewClient(&redis.Options{Addr: cartredistest.Addr(), PoolSize: 1})
	ctx := context.Background()
	t.Cleanup(func() {
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	c := &commandCounter{}
	rdb.AddHook(c)
	l, err := ratelimit.New(rdb, ratelimit.Config{Prefix: prefix, Limit: 1 << 40, Window: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Allow(ctx, "warm"); err != nil { // the connection's handshake
		t.Fatal(err)
	}
	c.n.Store(0)
	const n = 50
	for range n {
		if err := l.Allow(ctx, "user-a"); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.n.Load(); got != 2*n {
		t.Errorf("%d Redis commands for %d counts, want %d (two each)", got, n, 2*n)
	}
	allocs := testing.AllocsPerRun(100, func() { _ = l.Allow(ctx, "user-b") })
	t.Logf("%.0f allocations per count", allocs)
	if allocs > 23 {
		t.Errorf("%.0f allocations per count, want at most 23", allocs)
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
