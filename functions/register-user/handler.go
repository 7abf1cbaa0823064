// Package function is the register-user function: POST /api/v1/users creates
// a customer account and announces it with a user.registered.v1 event.
package function

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/users"
	"github.com/shopfaas/shop/internal/users/usersenv"
)

// Build reads the function's configuration from c and builds its handler.
// fnserve calls it on the first request, and again after a failed build.
func Build(c *config.Reader, log *slog.Logger) (http.Handler, error) {
	d, err := usersenv.Load(context.Background(), c, log, usersenv.Needs{})
	if err != nil {
		return nil, err
	}
	return New(d.Store, log), nil
}

// Registrar creates customer accounts; usersdb.Store is the real one.
type Registrar interface {
	Register(ctx context.Context, reg users.Registration) (users.User, error)
}

// request is the body of POST /api/v1/users. Any other field (a role, an id)
// is refused by the decoder. Every field keeps the text rule, the password
// included: a new password may not hold a control character (422
// invalid_text), though login-user's password is opaque to the rule for the
// accounts registered with one before it (2026-11-25 to 2026-11-30).
type request struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// New serves POST /api/v1/users with store: 201 and the user on success, 409
// email_taken, 422 invalid_request, 400 for malformed bodies, 413 past 64 KiB.
func New(store Registrar, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/users", fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		var req request
		if err := fnhttp.Decode(r, &req, fnhttp.MaxBody); err != nil {
			return err
		}
		reg, err := users.NewRegistration(req.Email, req.Password, req.Name)
		if err != nil {
			return err
		}
		u, err := store.Register(r.Context(), reg)
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusCreated, u)
	}))
	return fnhttp.Routes(mux)
}
