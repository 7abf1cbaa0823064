// Package loopback keeps DNS-rebinding web pages off the servers a developer
// runs on loopback (the local runtime's gateway API and edge, and, when the
// runtime asks for it, every function process). Such a server listens on
// 127.0.0.1 only, but a browser still reaches it: a page whose name the
// attacker controls, rebound to 127.0.0.1, makes the browser treat the server
// as the attacker's own origin (no CORS check) and hand the page its answers.
// Its requests carry the attacker's name in Host, which is what Only refuses.
package loopback

import (
	"net"
	"net/http"
	"strings"
)

// Only answers 421 Misdirected Request, naming what, to a request whose Host
// is not a loopback name or address (Host), and passes every other request to
// next.
func Only(what string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Host(r.Host) {
			http.Error(w, what+" answers only to loopback host names", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Host reports whether host (a Host header, with or without port) names this
// machine's loopback interface: localhost, a name under .localhost, an address
// in 127.0.0.0/8 or ::1. An empty host is not one.
func Host(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
