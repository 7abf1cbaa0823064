package fnhttp

import (
	"net/http"

	"github.com/shopfaas/shop/internal/fault"
)

// RequireJSON refuses a request that does not declare a JSON body. Decode
// accepts a missing Content-Type; endpoints whose body is mandatory call
// RequireJSON first, so a client that forgets the header learns it at once
// (400 unsupported_media_type) instead of relying on a lenient default.
func RequireJSON(r *http.Request) error {
	if r.Header.Get("Content-Type") == "" {
		return fault.E(fault.Malformed, fault.CodeUnsupportedMediaType, "Content-Type must be application/json")
	}
	return nil // Decode checks the declared type itself
}
