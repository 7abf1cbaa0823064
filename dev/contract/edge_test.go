package contract_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/dev/contract"
	"github.com/shopfaas/shop/dev/faaslocal/edge"
	"github.com/shopfaas/shop/internal/fault"
)

// documented is what the contract says of the headers of each operation, by
// operationId (contract.Operations has the rest).
type documented struct {
	requestHeaders  []string // header parameters, its security scheme's header, a body's Content-Type
	responseHeaders []string // headers of any response
}

func readDocument(t *testing.T) map[string]documented {
	t.Helper()
	type parameter struct {
		Ref  string `yaml:"$ref"`
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	}
	type response struct {
		Ref     string         `yaml:"$ref"`
		Headers map[string]any `yaml:"headers"`
	}
	type operation struct {
		OperationID string                `yaml:"operationId"`
		Parameters  []parameter           `yaml:"parameters"`
		Responses   map[string]response   `yaml:"responses"`
		Security    []map[string][]string `yaml:"security"`
		RequestBody struct {
			Content map[string]any `yaml:"content"`
		} `yaml:"requestBody"`
	}
	var doc struct {
		Security   []map[string][]string           `yaml:"security"` // of an operation that declares none
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Parameters      map[string]parameter `yaml:"parameters"`
			Responses       map[string]response  `yaml:"responses"`
			SecuritySchemes map[string]struct {
				Type string `yaml:"type"`
				In   string `yaml:"in"`
				Name string `yaml:"name"`
			} `yaml:"securitySchemes"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	ref := func(s string) string { return s[strings.LastIndex(s, "/")+1:] }
	out := map[string]documented{}
	for _, item := range doc.Paths {
		var shared []parameter
		if n, ok := item["parameters"]; ok {
			if err := n.Decode(&shared); err != nil {
				t.Fatal(err)
			}
		}
		for method, n := range item {
			if method == "parameters" {
				continue
			}
			var op operation
			if err := n.Decode(&op); err != nil {
				t.Fatal(err)
			}
			var d documented
			for _, p := range append(slices.Clone(shared), op.Parameters...) {
				if p.Ref != "" {
					p = doc.Components.Parameters[ref(p.Ref)]
				}
				if p.In == "header" {
					d.requestHeaders = append(d.requestHeaders, p.Name)
				}
			}
			// The header of each security scheme the operation accepts:
			// a browser sends it, so a preflight asks for it.
			security := op.Security
			if security == nil {
				security = doc.Security
			}
			for _, req := range security {
				for name := range req {
					switch s := doc.Components.SecuritySchemes[name]; {
					case s.Type == "http":
						d.requestHeaders = append(d.requestHeaders, "Authorization")
					case s.Type == "apiKey" && s.In == "header":
						d.requestHeaders = append(d.requestHeaders, s.Name)
					default:
						t.Fatalf("%s: security scheme %q (type %q): the test does not know which header it sends", op.OperationID, name, s.Type)
					}
				}
			}
			// A body of a type other than the three a form may send
			// (application/json) makes its Content-Type a header a
			// preflight asks for.
			for ct := range op.RequestBody.Content {
				if !slices.Contains([]string{"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}, ct) {
					d.requestHeaders = append(d.requestHeaders, "Content-Type")
				}
			}
			for _, r := range op.Responses {
				if r.Ref != "" {
					r = doc.Components.Responses[ref(r.Ref)]
				}
				for h := range r.Headers {
					d.responseHeaders = append(d.responseHeaders, h)
				}
			}
			out[op.OperationID] = d
		}
	}
	return out
}

func loadKong(t *testing.T) *edge.Declarative {
	t.Helper()
	d, err := edge.Load("../../gateway/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// rateLimits is, by service of gateway/kong.yml, the enabled rate-limiting
// plugin of each of its routes that has one, at whatever scope it is attached
// (route, service or global, as Kong resolves them). dev/kongcheck fails on a
// write route without one, so every write operation is here.
func rateLimits(t *testing.T) map[string][]edge.Plugin {
	t.Helper()
	decl := loadKong(t)
	out := map[string][]edge.Plugin{}
	for _, s := range decl.Services {
		for _, r := range s.Routes {
			for _, p := range decl.PluginsFor(s.Name, r.Name) {
				if p.Name == "rate-limiting" {
					out[s.Name] = append(out[s.Name], p)
				}
			}
		}
	}
	return out
}

func stringsOf(t *testing.T, cfg map[string]any, key string) []string {
	t.Helper()
	var out []string
	list, _ := cfg[key].([]any)
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, http.CanonicalHeaderKey(s))
	}
	return out
}

// TestBrowsersMaySendAndReadTheDocumentedHeaders: a browser can use the
// contract as written only when the edge's CORS plugin allows every request
// header an operation documents (If-Match, Idempotency-Key, …) and exposes
// every response header (ETag, Idempotent-Replayed, …).
func TestBrowsersMaySendAndReadTheDocumentedHeaders(t *testing.T) {
	var cors map[string]any
	for _, p := range loadKong(t).Plugins {
		if p.Name == "cors" {
			cors = p.Config
		}
	}
	if cors == nil {
		t.Fatal("gateway/kong.yml has no global cors plugin")
	}
	for _, miss := range corsMisses(t, cors, readDocument(t)) {
		t.Error(miss)
	}
}

// A cors plugin that does not allow the token's header (Authorization, the
// bearer scheme's) or a JSON body's Content-Type fails: a browser's
// preflight for any such call would be refused.
func TestACorsPluginWithoutTheTokenOrBodyHeaderFails(t *testing.T) {
	cors := map[string]any{
		"headers":         []any{"Accept", "Idempotency-Key", "If-Match", "If-None-Match", "X-Correlation-ID", "traceparent"},
		"exposed_headers": []any{"X-Correlation-ID", "ETag", "Location", "Idempotent-Replayed", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "WWW-Authenticate"},
	}
	misses := strings.Join(corsMisses(t, cors, readDocument(t)), "\n")
	for _, want := range []string{
		"get-me documents the request header Authorization",
		"create-order documents the request header Content-Type",
	} {
		if !strings.Contains(misses, want) {
			t.Errorf("want a failure saying %q, got:\n%s", want, misses)
		}
	}
}

// corsMisses are the headers documented by an operation of docs that the
// cors plugin's configuration cors does not allow or expose.
func corsMisses(t *testing.T, cors map[string]any, docs map[string]documented) []string {
	t.Helper()
	allowed, exposed := stringsOf(t, cors, "headers"), stringsOf(t, cors, "exposed_headers")
	var out []string
	for id, d := range docs {
		for _, h := range d.requestHeaders {
			if !slices.Contains(allowed, http.CanonicalHeaderKey(h)) {
				out = append(out, fmt.Sprintf("%s documents the request header %s, which the cors plugin's headers do not allow", id, h))
			}
		}
		for _, h := range d.responseHeaders {
			if !slices.Contains(exposed, http.CanonicalHeaderKey(h)) {
				out = append(out, fmt.Sprintf("%s documents the response header %s, which the cors plugin's exposed_headers hide", id, h))
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestRateLimitedRoutesDocument429: every service the edge rate limits
// documents the 429 it answers, with the code rate_limited in the answer's
// x-codes.
func TestRateLimitedRoutesDocument429(t *testing.T) {
	for _, miss := range undeclared429(load(t), rateLimits(t)) {
		t.Error(miss)
	}
}

// TestARateLimited429WithoutItsCodeFails plants, in a copy of
// api/openapi.yaml, a 429 without rate_limited on a rate-limited operation,
// and wants it named.
func TestARateLimited429WithoutItsCodeFails(t *testing.T) {
	limited := rateLimits(t)
	var doc map[string]any
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	planted := ""
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			op, _ := op.(map[string]any)
			id, _ := op["operationId"].(string)
			if _, ok := limited[id]; ok && planted == "" {
				op["responses"].(map[string]any)["429"] = map[string]any{"$ref": "#/components/responses/UnavailableLimited"}
				planted = strings.ToUpper(method) + " " + path
			}
		}
	}
	if planted == "" {
		t.Fatal("gateway/kong.yml rate limits no operation of api/openapi.yaml")
	}
	spec, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := contract.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := planted + ` declares 429 (as 429) without the code "rate_limited"`
	if misses := undeclared429(c, limited); !slices.ContainsFunc(misses, func(m string) bool { return strings.Contains(m, want) }) {
		t.Errorf("want a failure saying %q, got %q", want, misses)
	}
}

// undeclared429 lists the services of limited (rateLimits) that are no
// operation of c, or do not declare the 429 the edge answers them with the
// code rate_limited.
func undeclared429(c *contract.Contract, limited map[string][]edge.Plugin) []string {
	doc := map[string]contract.Operation{}
	for _, op := range c.Operations() {
		doc[op.ID] = op
	}
	var out []string
	for service := range limited {
		op, ok := doc[service]
		if !ok {
			out = append(out, fmt.Sprintf("service %s is rate limited but is no operation of api/openapi.yaml", service))
		} else if miss := c.Undeclared(op.Method, op.Path, http.StatusTooManyRequests, string(fault.CodeRateLimited)); miss != "" {
			out = append(out, fmt.Sprintf("%s is rate limited by the edge: %s", service, miss))
		}
	}
	slices.Sort(out)
	return out
}

// TestRateLimitedOperationsDocumentTheRateLimitHeaders: every answer of an
// operation the edge rate limits declares the headers the rate-limiting
// plugin adds to it (RateLimit-Limit, -Remaining, -Reset; Kong's
// X-RateLimit-<Limit|Remaining>-<Period> are described in components/headers,
// see the document), and its 429 declares Retry-After, so the recorder holds
// the edge's answers to them.
func TestRateLimitedOperationsDocumentTheRateLimitHeaders(t *testing.T) {
	type response struct {
		Ref     string         `yaml:"$ref"`
		Headers map[string]any `yaml:"headers"`
	}
	var doc struct {
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Responses map[string]response `yaml:"responses"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	answers := map[string]map[string]response{} // operationId → status → response
	for _, item := range doc.Paths {
		for method, n := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				OperationID string              `yaml:"operationId"`
				Responses   map[string]response `yaml:"responses"`
			}
			if err := n.Decode(&op); err != nil {
				t.Fatal(err)
			}
			for status, r := range op.Responses {
				if r.Ref != "" {
					r = doc.Components.Responses[r.Ref[strings.LastIndex(r.Ref, "/")+1:]]
				}
				op.Responses[status] = r
			}
			answers[op.OperationID] = op.Responses
		}
	}
	// No floor on how many operations are limited: dev/kongcheck requires a
	// limit on every write route, and rateLimits sees it at any scope.
	for service, plugins := range rateLimits(t) {
		for _, p := range plugins {
			if p.Config["hide_client_headers"] == true {
				continue
			}
			for status, r := range answers[service] {
				want := []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
				if status == "429" {
					want = append(want, "Retry-After")
				}
				for _, h := range want {
					if _, ok := r.Headers[h]; !ok {
						t.Errorf("%s %s: the edge's rate-limiting may send %s, which the answer does not declare", service, status, h)
					}
				}
			}
		}
	}
}
