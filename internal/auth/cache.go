package auth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// verifiedCap bounds the verified-token cache of a Verifier: about 100 bytes
// an entry, so at most ~100 KiB whatever the traffic.
const verifiedCap = 1024

// verified remembers tokens a Verifier has accepted, so a client that sends
// the same token again (every request of a session) costs a SHA-256 and a map
// look-up instead of an Ed25519 verification (~100 µs of CPU on this
// project's machines, issue 11). Only accepted tokens are kept, keyed by the
// SHA-256 of the whole token (header, claims and signature), each until its
// exp plus the leeway Verify allows, so an entry answers exactly what Verify
// would: a token is accepted or refused for its bytes and the time alone
// (signature, algorithm, issuer, audience, lifetime, subject and role do
// not change; exp is the only claim that turns an accepted token into a
// refused one, and nbf/iat only the other way). Refused tokens are never
// kept: junk cannot fill the cache. When it is full, an arbitrary entry
// and an eighth of the others make room (arbitrary ones: Go's map iteration
// order).
type verified struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]verifiedEntry
}

type verifiedEntry struct {
	id    Identity
	until time.Time
}

func newVerified() *verified {
	return &verified{entries: make(map[[sha256.Size]byte]verifiedEntry)}
}

// get answers the identity of a token accepted before and still within its
// lifetime at now.
func (c *verified) get(key [sha256.Size]byte, now time.Time) (Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return Identity{}, false
	}
	if !now.Before(e.until) {
		delete(c.entries, key)
		return Identity{}, false
	}
	return e.id, true
}

// put keeps an accepted token until until.
func (c *verified) put(key [sha256.Size]byte, id Identity, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= verifiedCap {
		// Room for an eighth at once, so the scan is paid once every
		// verifiedCap/8 new tokens; expired entries also leave on get.
		for k := range c.entries {
			delete(c.entries, k)
			if len(c.entries) <= verifiedCap-verifiedCap/8 {
				break
			}
		}
	}
	c.entries[key] = verifiedEntry{id: id, until: until}
}

// len is the number of entries (tests).
func (c *verified) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
