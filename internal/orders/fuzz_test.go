package orders

import (
	"strings"
	"testing"

	"github.com/shopfaas/shop/internal/fault"
)

// FuzzValidKey: an Idempotency-Key is accepted only when it is 1 to
// MaxKeyBytes of printable ASCII, and refused as fault.Invalid otherwise.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"order-1", "", " ", "k\x00", "\xff", "ключ", string(make([]byte, MaxKeyBytes+1))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		printable := len(key) >= 1 && len(key) <= MaxKeyBytes
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				printable = false
			}
		}
		err := ValidKey(key)
		if (err == nil) != printable {
			t.Fatalf("ValidKey(%q) = %v, printable ASCII within the limit: %v", key, err, printable)
		}
		if err != nil && fault.KindOf(err) != fault.Invalid {
			t.Fatalf("ValidKey(%q) = %v, want fault.Invalid", key, err)
		}
	})
}

// FuzzParseCursor: a cursor either parses or is refused as a client error,
// and one that parses is the id exactly as the list writes it (no other
// spelling uuid.Parse reads: upper case, 32 hex digits, braces, urn:uuid:).
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "0190a1b2-0000-7000-8000-000000000001", "not-a-cursor", "%00", "\xff",
		"0190A1B2-0000-7000-8000-000000000001", "0190a1b2000070008000000000000001",
		"{0190a1b2-0000-7000-8000-000000000001}", "urn:uuid:0190a1b2-0000-7000-8000-000000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseCursor(s)
		if err != nil {
			if k := fault.KindOf(err); k != fault.Invalid && k != fault.Malformed {
				t.Fatalf("ParseCursor(%q) = %v, want a client error", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseCursor(%q) = %v: a cursor the list would not write was read", s, id)
		}
	})
}

// FuzzParseTimelineCursor: a timeline cursor either parses to a positive
// position, written as the timeline writes it, or is refused as
// fault.Invalid. Until 2026-12-05 "+5" and "05" were read as 5; since
// 2026-12-06 the old form, a bare number (a shop-wide sequence number), is
// refused too.
func FuzzParseTimelineCursor(f *testing.F) {
	for _, s := range []string{"", "1", "0", "-1", "9223372036854775807", "1e3", " 1", "\xff", "+5", "05",
		"p1", "p0", "p-1", "p9223372036854775807", "p9223372036854775808", "p+5", "p05", "P1", "pp1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseTimelineCursor(s)
		switch {
		case err != nil && fault.KindOf(err) != fault.Invalid:
			t.Fatalf("ParseTimelineCursor(%q) = %v, want fault.Invalid", s, err)
		case err == nil && n <= 0:
			t.Fatalf("ParseTimelineCursor(%q) = %d, want a positive position", s, n)
		case err == nil && TimelineCursor(n) != s:
			t.Fatalf("ParseTimelineCursor(%q) = %d: a cursor the timeline would not write was read", s, n)
		case err == nil && !strings.HasPrefix(s, "p"):
			t.Fatalf("ParseTimelineCursor(%q) = %d: a cursor of the old form was read", s, n)
		}
	})
}
