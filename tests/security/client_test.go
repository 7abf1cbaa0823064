package security

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/routes"
)

// client is what every probe sends requests with: no redirects followed
// (a redirect is an answer to judge), no cookies, a timeout.
var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// answer is a status, the headers and the body read whole.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a answer) String() string {
	b := a.Body
	if len(b) > 300 {
		b = append(b[:300:300], "…"...)
	}
	return fmt.Sprintf("%d %s %s", a.Status, a.Header.Get("Content-Type"), b)
}

// code is the problem's code ("" when the answer is not a problem).
func (a answer) code() string {
	var p struct{ Code string }
	_ = json.Unmarshal(a.Body, &p)
	return p.Code
}

// problem reports why a 4xx or 5xx answer is not an RFC 9457 problem with
// the shop's status and code ("" when it is one).
func (a answer) problem() string {
	mt, _, _ := mime.ParseMediaType(a.Header.Get("Content-Type"))
	if mt != "application/problem+json" {
		return "Content-Type is not application/problem+json"
	}
	var p struct {
		Status int
		Code   string
	}
	if err := json.Unmarshal(a.Body, &p); err != nil {
		return "the body is not JSON: " + err.Error()
	}
	if p.Status != a.Status || p.Code == "" {
		return fmt.Sprintf("the problem says status %d code %q", p.Status, p.Code)
	}
	return ""
}

// request is one call: method, a URL (or a raw request target sent as is),
// headers and a raw body.
type request struct {
	Method string
	URL    string
	Token  string
	Header map[string]string
	Body   []byte
	// Chunked sends the body without a Content-Length.
	Chunked bool
}

// do sends req and reads the whole answer; a transport error fails the test.
func do(t testing.TB, req request) answer {
	t.Helper()
	a, err := send(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return a
}

func send(req request) (answer, error) {
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
		if req.Chunked {
			body = io.MultiReader(body) // unknown length: sent chunked
		}
	}
	r, err := http.NewRequest(req.Method, req.URL, body)
	if err != nil {
		return answer{}, err
	}
	if req.Body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if req.Token != "" {
		r.Header.Set("Authorization", "Bearer "+req.Token)
	}
	for k, v := range req.Header {
		r.Header.Set(k, v)
	}
	res, err := client.Do(r)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// raw sends "METHOD target HTTP/1.1" to addr (host:port) byte for byte, so
// dot segments, encoded slashes and double slashes reach the server exactly
// as written, and reads the answer.
func raw(t testing.TB, addr, method, target string) answer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, addr); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{Status: res.StatusCode, Header: res.Header, Body: b}
}

// hostOf is the host:port of a base URL.
func hostOf(t testing.TB, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// ipLimited lists the functions whose route gateway/kong.yml rate-limits
// per client IP. Every probe shares 127.0.0.1 with the other suites running
// at the same time, and the edge's counters live in the shared Redis, so the
// probes call these functions through the gateway (/function/<name>/<path>,
// the upstream URL Kong proxies to) instead of spending the edge's budget.
func ipLimited(t testing.TB) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runtimetest.Root(t), "gateway", "kong.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var decl struct {
		Services []struct {
			Name    string
			Plugins []struct {
				Name   string
				Config map[string]any
			}
		}
	}
	if err := yaml.Unmarshal(b, &decl); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range decl.Services {
		for _, p := range s.Plugins {
			if p.Name == "rate-limiting" && p.Config["limit_by"] == "ip" {
				out[s.Name] = true
			}
		}
	}
	return out
}

// kongServices are the names of gateway/kong.yml's services: the functions
// the edge routes to.
func kongServices(t testing.TB) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runtimetest.Root(t), "gateway", "kong.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var decl struct{ Services []struct{ Name string } }
	if err := yaml.Unmarshal(b, &decl); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, s := range decl.Services {
		out[s.Name] = true
	}
	return out
}

// concrete fills a route's {wildcards} with values by name.
func concrete(r routes.Route, values map[string]string) string {
	p := r.Path
	for k, v := range values {
		p = strings.ReplaceAll(p, "{"+k+"}", v)
	}
	return p
}

// kindOf is the kind of function fn in the route table.
func kindOf(fn string) string {
	r, _ := routes.Lookup(fn)
	return r.Kind.String()
}
