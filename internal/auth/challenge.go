package auth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/shopfaas/shop/internal/fault"
)

// Realm is the protection space every challenge of the functions names.
const Realm = "shop"

// Challenge is the WWW-Authenticate value of the 401 that err stands for,
// answered to r (RFC 9110 section 11.6.1: every 401 carries a challenge for
// the credential the resource takes), or "" when err is not a 401's
// (fault.Unauthenticated):
//   - a missing or wrong internal credential (CheckInternal): `Internal
//     realm="shop"`, a scheme of the shop's own naming the X-Internal-Token
//     credential;
//   - a failed login (invalid_credentials): `Login realm="shop"`, a scheme of
//     the shop's own saying the credentials go in the operation's body: a
//     Bearer challenge would invite a token the login does not take;
//   - any other (a bearer-token route, RFC 6750 section 3): `Bearer
//     realm="shop"` when r carries no bearer token (no Authorization, or
//     another scheme: no error code, as the RFC says), and `Bearer
//     realm="shop", error="invalid_token"` when it carries one that failed
//     (malformed, wrongly signed, expired, or its account gone).
func Challenge(r *http.Request, err error) string {
	if !fault.Is(err, fault.Unauthenticated, "") {
		return ""
	}
	switch {
	case errors.Is(err, errInternal):
		return `Internal realm="` + Realm + `"`
	case fault.CodeOf(err) == fault.CodeInvalidCredentials:
		return `Login realm="` + Realm + `"`
	}
	scheme, _, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return `Bearer realm="` + Realm + `"`
	}
	return `Bearer realm="` + Realm + `", error="invalid_token"`
}
