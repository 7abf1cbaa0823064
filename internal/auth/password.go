package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/shopfaas/shop/internal/fault"
)

// Argon2id parameters (RFC 9106's second recommended option, memory-reduced to
// 19 MiB as OWASP suggests for a server that hashes concurrently).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16

	// Bounds CheckPassword accepts, well above the parameters in use.
	maxArgonTime   = 16
	maxArgonMemory = 256 * 1024
)

// MaxConcurrentHashes bounds the argon2id computations a process runs at
// once. Each allocates its whole memory cost (19 MiB) for as long as it runs,
// and nothing else bounds how many logins or registrations arrive together:
// within Kong's per-IP limit, ten at once took a 128 MiB function past its
// memory limit, and the kernel killed it. Two slots hold at most 38 MiB of
// argon2 memory whatever the burst; a hash is CPU-bound on one core, so more
// slots would not check more passwords per second on a function's CPU share.
const MaxConcurrentHashes = 2

var (
	hashSlots = make(chan struct{}, MaxConcurrentHashes)
	// hashWait is how long a caller waits for a slot before it is refused
	// with 503 and Retry-After: about 200 checks queue behind the two slots,
	// well within the function's exec timeout (30 s).
	hashWait = 5 * time.Second
	// argonKey is argon2.IDKey; tests wrap it to watch the bound.
	argonKey = argon2.IDKey
)

// errHashBusy is the cause of the 503 a caller gets when no slot freed up
// within hashWait; its RetryAfter sets the answer's Retry-After.
type errHashBusy struct{}

func (errHashBusy) Error() string             { return "every password-hash slot stayed busy" }
func (errHashBusy) RetryAfter() time.Duration { return time.Second }

// withHashSlot runs f in one of the process's MaxConcurrentHashes slots. It
// waits at most hashWait (then fault.Unavailable) and no longer than ctx
// (then fault.Timeout wrapping ctx's error).
func withHashSlot(ctx context.Context, f func()) error {
	select {
	case hashSlots <- struct{}{}:
	default:
		t := time.NewTimer(hashWait)
		defer t.Stop()
		select {
		case hashSlots <- struct{}{}:
		case <-ctx.Done():
			// The request ended while it waited: a timeout, as the
			// stores classify a cancelled call, not an internal error.
			return fault.Wrap(ctx.Err(), fault.Timeout, fault.CodeTimeout, "the request ended while waiting to check the password")
		case <-t.C:
			return fault.Wrap(errHashBusy{}, fault.Unavailable, fault.CodeUnavailable,
				"too many password checks at once; retry shortly")
		}
	}
	defer func() { <-hashSlots }()
	f()
	hashes.Add(1)
	return nil
}

// hashes counts the argon2id computations run in the slots.
var hashes atomic.Int64

// Hashes is the number of password hashes and checks this process has
// computed (the dummy hash aside). Tests read it to see that a login pays
// for one whatever its outcome, without timing it.
func Hashes() int64 { return hashes.Load() }

// HashPassword returns an argon2id hash in the PHC string format. It waits
// for one of the process's hash slots (withHashSlot).
func HashPassword(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	var key []byte
	if err := withHashSlot(ctx, func() {
		key = argonKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	}); err != nil {
		return "", err
	}
	return encodeHash(salt, key), nil
}

func encodeHash(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// CheckPassword reports whether password matches the PHC-encoded hash, in
// constant time. A malformed hash is an error, never a match. It waits for
// one of the process's hash slots (withHashSlot).
func CheckPassword(ctx context.Context, hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("unsupported password hash")
	}
	var version int
	var mem, iters uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &threads); err != nil {
		return false, fmt.Errorf("argon2 parameters: %w", err)
	}
	// argon2 panics on zero time or parallelism, and a huge memory cost would
	// exhaust the process: refuse parameters outside what HashPassword could
	// plausibly have written.
	if iters < 1 || iters > maxArgonTime || threads < 1 || mem < 8*uint32(threads) || mem > maxArgonMemory {
		return false, errors.New("argon2 parameters out of range")
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("argon2 salt: %w", err)
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return false, fmt.Errorf("argon2 key: %w", err)
	}
	if len(want) < 16 || len(salt) < 8 {
		return false, errors.New("argon2 salt or key too short")
	}
	var got []byte
	if err := withHashSlot(ctx, func() {
		got = argonKey([]byte(password), salt, iters, mem, threads, uint32(len(want)))
	}); err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// DummyHash is checked against when a login names an unknown email, so the
// response time does not reveal which emails are registered. It is computed on
// first use, not at start-up; login-user asks for it when it builds its
// handler, so that no login pays for it. It is computed outside the hash
// slots, so that a burst of logins cannot make it fail and leave it empty.
var DummyHash = sync.OnceValue(func() string {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt)
	return encodeHash(salt, argonKey([]byte("dummy-password-for-timing"), salt, argonTime, argonMemory, argonThreads, argonKeyLen))
})
