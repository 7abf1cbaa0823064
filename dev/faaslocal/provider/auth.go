package provider

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// Credentials are the gateway API's basic-auth credentials: faasd's secrets
// basic-auth-user and basic-auth-password, which faas-cli login, the
// connectors and the tests send.
type Credentials struct {
	// User is the user name (admin, as faasd generates it).
	User string
	// Password is the random password.
	Password string
}

// Validate refuses an empty user or password: the API is never left open
// by a missing secret.
func (c Credentials) Validate() error {
	var errs []error
	if c.User == "" {
		errs = append(errs, errors.New("the gateway API's basic-auth user is empty"))
	}
	if c.Password == "" {
		errs = append(errs, errors.New("the gateway API's basic-auth password is empty"))
	}
	return errors.Join(errs...)
}

// realm is what WWW-Authenticate names, as faas-provider's basic auth does.
const realm = `Basic realm="Restricted"`

// RequireBasicAuth guards every path under /system/ with c, as faasd's
// provider (faas-provider's DecorateWithBasicAuth on every system handler)
// and the OpenFaaS CE gateway (basic_auth=true) do: missing or wrong
// credentials are answered 401 with WWW-Authenticate. /function/*,
// /async-function/* and /healthz stay open, as on the CE gateway: functions
// check their own callers. The comparison takes the same time whatever the
// candidate (both values are hashed first, so not even their lengths leak).
//
// The path is matched as sent: the router answers a path that is not clean
// (//system, /function/../system) with a redirect to the clean one, never
// with a system handler.
func RequireBasicAuth(c Credentials, next http.Handler) http.Handler {
	wantUser, wantPassword := sha256.Sum256([]byte(c.User)), sha256.Sum256([]byte(c.Password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/system/") || r.URL.Path == "/system" {
			user, password, ok := r.BasicAuth()
			u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
			match := subtle.ConstantTimeCompare(u[:], wantUser[:]) & subtle.ConstantTimeCompare(p[:], wantPassword[:])
			if !ok || match != 1 {
				w.Header().Set("WWW-Authenticate", realm)
				http.Error(w, "invalid credentials", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
