// Package hopbyhop removes a request's hop-by-hop fields, which describe the
// client's connection to a proxy, not the call: the local edge removes them
// as Kong does before it forwards public traffic, and the local gateway as the
// OpenFaaS gateway does for a direct client (curl, faas-cli invoke, a
// connector), which has no Kong in front of it.
package hopbyhop

import (
	"net/http"
	"net/textproto"
	"strings"
)

// fields are the hop-by-hop fields of RFC 2616 as Go's httputil.ReverseProxy
// lists them, also the OpenFaaS gateway's forwarding list.
// Proxy-Authorization is a credential for a proxy.
var fields = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// Remove removes from h the fields its Connection field names (RFC 9110,
// 7.6.1, as Go's reverse proxy and Kong remove them; the OpenFaaS gateway
// removes only its list), then the hop-by-hop fields themselves.
func Remove(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, f := range fields {
		delete(h, f) // canonical already: Del would canonicalize it again
	}
}
