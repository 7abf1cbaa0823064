package apidocs

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"

	"gopkg.in/yaml.v3"
)

// serverOrigin marks the servers entry Handler rewrites per request.
const serverOrigin = "http://api-docs.origin.invalid"

var (
	// hostPattern is what a host (with an optional port) must be to be
	// written into the document: a name or an address, never a path, a
	// quote or a line break.
	hostPattern = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)
	// portPattern is an X-Forwarded-Port.
	portPattern = regexp.MustCompile(`^[0-9]{1,5}$`)
	// prefixPattern is an X-Forwarded-Prefix: absolute path segments of
	// unreserved characters, no trailing slash.
	prefixPattern = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)
)

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
	if !hostPattern.MatchString(host) {
		host = r.Host
	} else if _, _, err := net.SplitHostPort(host); err != nil {
		if port := r.Header.Get("X-Forwarded-Port"); portPattern.MatchString(port) &&
			!(proto == "http" && port == "80") && !(proto == "https" && port == "443") {
			host = net.JoinHostPort(host, port)
		}
	}
	if !hostPattern.MatchString(host) {
		host = "127.0.0.1"
	}
	return proto + "://" + host + prefix(r)
}

// prefix is the request's valid X-Forwarded-Prefix, or "".
func prefix(r *http.Request) string {
	if p := r.Header.Get("X-Forwarded-Prefix"); prefixPattern.MatchString(p) {
		return p
	}
	return ""
}

// withServer returns doc (YAML) with its servers list replaced by one entry
// at url.
func withServer(doc []byte, url string) (string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return "", fmt.Errorf("openapi document: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return "", errors.New("openapi document: not a mapping")
	}
	var servers yaml.Node
	if err := servers.Encode([]map[string]string{{"url": url, "description": "the origin that served this document"}}); err != nil {
		return "", err
	}
	m := root.Content[0]
	found := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "servers" {
			m.Content[i+1] = &servers
			found = true
		}
	}
	if !found {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "servers"}, &servers)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return "", err
	}
	return b.String(), nil
}
