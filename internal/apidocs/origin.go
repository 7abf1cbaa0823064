package apidocs

import (
	"net"
	"net/http"
	"strings"
)

// serverOrigin marks the servers entry Handler rewrites per request.
const serverOrigin = "http://api-docs.origin.invalid"

// The checks below are plain string checks, not regexps compiled at package
// initialisation, and the document is rewritten as text, not with a YAML
// library: this package is linked into every function process of the
// multi-call binary (docs/performance.md, "Memory").

// validHost is what a host (with an optional port) must be to be written
// into the document: a name or an address, never a path, a quote or a line
// break (`^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`).
func validHost(h string) bool {
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 || !only(h[1:end], "0123456789abcdefABCDEF:.") {
			return false
		}
		name, port = "x", h[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i:]
	}
	if !only(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") {
		return false
	}
	return port == "" || validPort(port[1:])
}

// validPort is an X-Forwarded-Port: one to five digits.
func validPort(p string) bool { return len(p) <= 5 && only(p, "0123456789") }

// validPrefix is an X-Forwarded-Prefix: absolute path segments of
// unreserved characters, no trailing slash.
func validPrefix(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if !only(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-") {
			return false
		}
	}
	return true
}

// only reports whether s is not empty and every byte of s is in set.
func only(s, set string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// Origin is the URL the caller reached the API at, for the document's
// servers entry: behind a proxy (Kong, the local edge, then the OpenFaaS
// gateway) X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port (added when
// the host carries none and it is not the scheme's default, as Kong sends
// the host without its port) and X-Forwarded-Prefix; without them the
// request's own Host. A value that is not a scheme, host name, port or path
// is ignored, so no header can write anything else into the document; with
// no usable host the answer is http://127.0.0.1.
func Origin(r *http.Request) string {
	proto := "http"
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		proto = p
	} else if p == "" && r.TLS != nil {
		proto = "https"
	}
	host := r.Header.Get("X-Forwarded-Host")
	if !validHost(host) {
		host = r.Host
	} else if _, _, err := net.SplitHostPort(host); err != nil {
		if port := r.Header.Get("X-Forwarded-Port"); validPort(port) &&
			!(proto == "http" && port == "80") && !(proto == "https" && port == "443") {
			// JoinHostPort brackets an IPv6 literal itself: one already
			// bracketed ([2001:db8::1]) would be bracketed twice.
			host = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port)
		}
	}
	if !validHost(host) {
		host = "127.0.0.1"
	}
	return proto + "://" + host + prefix(r)
}

// prefix is the request's valid X-Forwarded-Prefix, or "".
func prefix(r *http.Request) string {
	if p := r.Header.Get("X-Forwarded-Prefix"); validPrefix(p) {
		return p
	}
	return ""
}

// withServer returns doc (our YAML document) with its top-level servers
// list replaced by one entry at url (checked by Origin: no quote, backslash
// or line break), or with one added when it has none.
func withServer(doc []byte, url string) (string, error) {
	entry := "servers:\n  - url: \"" + url + "\"\n    description: the origin that served this document\n"
	lines := strings.SplitAfter(string(doc), "\n")
	var b strings.Builder
	found, skipping := false, false
	for _, l := range lines {
		if skipping {
			if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "-") || strings.TrimSpace(l) == "" {
				continue
			}
			skipping = false
		}
		if strings.HasPrefix(l, "servers:") && !found {
			b.WriteString(entry)
			found, skipping = true, true
			continue
		}
		b.WriteString(l)
	}
	out := b.String()
	if !found {
		if out != "" && !strings.HasSuffix(out, "\n") {
			out += "\n"
		}
		out += entry
	}
	return out, nil
}
