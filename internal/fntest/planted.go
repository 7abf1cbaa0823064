package fntest

import (
	"net/http"

	"github.com/google/uuid"
)

// PlantedQuery is a query (with its "?") that names user in every parameter
// a careless handler might take the caller from instead of the verified
// token; tests of the caller-scoped routes send it with another user's
// token and want that user's answer. tests/security plants the same names on
// the running stack.
func PlantedQuery(user uuid.UUID) string {
	id := user.String()
	return "?user_id=" + id + "&user=" + id + "&owner=" + id + "&sub=" + id
}

// PlantedHeaders are header pairs (for Do) that name user in every header a
// careless handler, or one trusting an edge's consumer headers, might take
// the caller from instead of the verified token.
func PlantedHeaders(user uuid.UUID) []string {
	id := user.String()
	return []string{"X-User-Id", id, "X-Consumer-Custom-Id", id, "X-Consumer-Id", id, "X-Forwarded-User", id,
		"X-Authenticated-Userid", id}
}

// Plant sets PlantedHeaders(user) on r, for tests that build their request
// by hand.
func Plant(r *http.Request, user uuid.UUID) {
	h := PlantedHeaders(user)
	for i := 0; i+1 < len(h); i += 2 {
		r.Header.Set(h[i], h[i+1])
	}
}
