package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopfaas/shop/internal/fault"
)

// A burst of logins and registrations runs at most MaxConcurrentHashes
// argon2id computations at once: each holds 19 MiB, and ten at once took a
// 128 MiB function past its memory limit.
func TestABurstOfHashesIsBounded(t *testing.T) {
	var running, most atomic.Int32
	real := argonKey
	argonKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		defer running.Add(-1)
		return real(password, salt, time, memory, threads, keyLen)
	}
	// The bound is what is tested, not the wait: ten argon2id computations
	// two at a time, under the race detector on a loaded machine, can take
	// longer than hashWait's 5 s (it failed so in CI on 2026-12-05).
	wait := hashWait
	hashWait = time.Minute
	t.Cleanup(func() { argonKey, hashWait = real, wait })
	hash, err := HashPassword(context.Background(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Go(func() {
			if i%2 == 0 {
				_, err := HashPassword(context.Background(), "correct horse")
				errs <- err
				return
			}
			ok, err := CheckPassword(context.Background(), hash, "correct horse")
			if err == nil && !ok {
				err = errors.New("the right password did not match")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := most.Load(); got < 1 || got > MaxConcurrentHashes {
		t.Errorf("%d argon2id computations ran at once, want 1..%d", got, MaxConcurrentHashes)
	}
}

// A caller that finds every slot busy for hashWait is refused with 503
// unavailable and a Retry-After, and one whose request ends while it waits
// gets a timeout wrapping its context's error; neither computes anything.
func TestBusyHashSlotsRefuse(t *testing.T) {
	dummy := DummyHash()
	calls := 0
	real := argonKey
	argonKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		calls++
		return real(password, salt, time, memory, threads, keyLen)
	}
	wait := hashWait
	hashWait = 50 * time.Millisecond
	t.Cleanup(func() { argonKey, hashWait = real, wait })
	for range MaxConcurrentHashes {
		hashSlots <- struct{}{}
	}
	t.Cleanup(func() {
		for range MaxConcurrentHashes {
			<-hashSlots
		}
	})

	_, err := HashPassword(context.Background(), "correct horse")
	var retry interface{ RetryAfter() time.Duration }
	if !fault.Is(err, fault.Unavailable, fault.CodeUnavailable) || !errors.As(err, &retry) || retry.RetryAfter() <= 0 {
		t.Errorf("hash with every slot busy: %v, want unavailable with a Retry-After", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	hashWait = time.Minute
	if _, err := CheckPassword(ctx, dummy, "x"); !errors.Is(err, context.Canceled) || !fault.Is(err, fault.Timeout, fault.CodeTimeout) {
		t.Errorf("check after the request ended: %v, want a timeout wrapping context.Canceled", err)
	}
	if calls != 0 {
		t.Errorf("%d argon2id computations while every slot was busy, want 0", calls)
	}
}
