package fnhttp

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/ids"
)

// PathID reads the path value name as an id written in its canonical form
// (ids.Canonical), the one api/openapi.yaml names and the API writes. ok is
// false for anything else, and the caller answers its own 404: an id that is
// not one names no resource.
func PathID(r *http.Request, name string) (id uuid.UUID, ok bool) {
	return ids.Canonical(r.PathValue(name))
}
