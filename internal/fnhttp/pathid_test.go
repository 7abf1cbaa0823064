package fnhttp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fnhttp"
)

// Only the canonical form of an id reaches a resource: every other spelling
// uuid.Parse would read as the same id is refused, so one resource has one
// path.
func TestPathIDAcceptsOnlyTheCanonicalForm(t *testing.T) {
	const canonical = "0190f5a0-7c3e-7000-8abc-def012345678"
	want := uuid.MustParse(canonical)
	tests := []struct {
		name  string
		value string
		ok    bool
	}{
		{"canonical, lower case", canonical, true},
		{"canonical, upper case", strings.ToUpper(canonical), true},
		{"canonical, mixed case", "0190F5A0-7c3e-7000-8ABC-def012345678", true},
		{"32 hex digits without hyphens", strings.ReplaceAll(canonical, "-", ""), false},
		{"braces", "{" + canonical + "}", false},
		{"any two characters taken for braces", "x" + canonical + "y", false},
		{"urn:uuid: prefix", "urn:uuid:" + canonical, false},
		{"URN:UUID: prefix", "URN:UUID:" + canonical, false},
		{"35 characters", canonical[:35], false},
		{"37 characters", canonical + "0", false},
		{"a hyphen moved", "0190f5a07-c3e-7000-8abc-def012345678", false},
		{"a digit that is not hex", "0190f5a0-7c3e-7000-8abc-def01234567g", false},
		{"spaces around", " " + canonical[1:], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.SetPathValue("id", tt.value)
			got, ok := fnhttp.PathID(r, "id")
			if ok != tt.ok {
				t.Fatalf("PathID(%q) ok = %v, want %v", tt.value, ok, tt.ok)
			}
			if ok && got != want {
				t.Errorf("PathID(%q) = %v, want %v", tt.value, got, want)
			}
			if !ok && got != uuid.Nil {
				t.Errorf("PathID(%q) refused but returned %v, want the zero id", tt.value, got)
			}
		})
	}
}
