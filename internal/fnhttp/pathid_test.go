package fnhttp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/fnhttp"
)

// PathID reads the named path value by the ids' rule (internal/ids tests
// every spelling): the canonical form in either case reaches the id, any
// other spelling uuid.Parse would read as the same id is refused (the zero
// id returned), so one resource has one path; another name's value is not
// read.
func TestPathIDAcceptsOnlyTheCanonicalForm(t *testing.T) {
	const canonical = "0190f5a0-7c3e-7000-8abc-def012345678"
	want := uuid.MustParse(canonical)
	for value, ok := range map[string]bool{
		canonical:                              true,
		strings.ToUpper(canonical):             true,
		strings.ReplaceAll(canonical, "-", ""): false,
		"{" + canonical + "}":                  false,
		"x" + canonical + "y":                  false,
		"urn:uuid:" + canonical:                false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.SetPathValue("id", value)
		got, gotOK := fnhttp.PathID(r, "id")
		if gotOK != ok || (ok && got != want) || (!ok && got != uuid.Nil) {
			t.Errorf("PathID(%q) = %v %v, want ok %v", value, got, gotOK, ok)
		}
		if _, other := fnhttp.PathID(r, "product_id"); other {
			t.Errorf("PathID read %q under another name", value)
		}
	}
}
