package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestVerifiedCacheStaysBounded(t *testing.T) {
	c := newVerified()
	until := time.Now().Add(time.Hour)
	for i := range 5 * verifiedCap {
		var k [sha256.Size]byte
		binary.BigEndian.PutUint64(k[:], uint64(i))
		c.put(k, Identity{UserID: uuid.New(), Role: RoleCustomer}, until)
		if n := c.len(); n > verifiedCap {
			t.Fatalf("after %d tokens the cache holds %d entries, above its cap of %d", i+1, n, verifiedCap)
		}
	}
}

func TestRefusedTokensAreNotRemembered(t *testing.T) {
	s, _, _ := NewTestKeys(time.Minute)
	v := s.Verifier()
	for _, tok := range []string{"", "not.a.token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."} {
		if _, err := v.Verify(tok); err == nil {
			t.Fatalf("%q accepted", tok)
		}
	}
	if n := v.seen.len(); n != 0 {
		t.Errorf("refused tokens left %d cache entries", n)
	}
	tok, err := s.Issue(uuid.New(), RoleCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if n := v.seen.len(); n != 1 {
		t.Errorf("an accepted token left %d cache entries, want 1", n)
	}
}
