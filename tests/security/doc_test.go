package security

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/internal/routes"
)

// operation is one public route as the probes see it: the route table's
// access rule joined with what api/openapi.yaml says the route takes.
type operation struct {
	routes.Route
	// Query are the query parameters, by name, with their schema type.
	Query map[string]string
	// Headers are the header parameters the contract declares (If-Match, Idempotency-Key, …).
	Headers []string
	// Body is the request body's JSON schema (references resolved), nil
	// when the operation takes none.
	Body map[string]any
	// Summary is the operation's summary: "(owner or admin)" says an admin
	// may read another user's object.
	Summary string
}

// Token reports whether the operation needs a bearer token.
func (o operation) Token() bool { return o.NeedsToken() }

func (o operation) String() string { return o.Method + " " + o.Path + " (" + o.Function + ")" }

// operations lists every public route of internal/routes with its
// parameters and body from api/openapi.yaml, in the table's order. A public
// route the document lacks fails the test (dev/contract checks the same).
func operations(t testing.TB) []operation {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	paths, _ := doc["paths"].(map[string]any)
	var out []operation
	for _, r := range routes.Table() {
		if r.Kind != routes.Public {
			continue
		}
		item, _ := paths[r.Path].(map[string]any)
		op, _ := item[strings.ToLower(r.Method)].(map[string]any)
		if op == nil {
			t.Fatalf("%s %s is in internal/routes but not in api/openapi.yaml", r.Method, r.Path)
		}
		summary, _ := op["summary"].(string)
		o := operation{Route: r, Query: map[string]string{}, Summary: summary}
		params, _ := item["parameters"].([]any)
		more, _ := op["parameters"].([]any)
		for _, p := range append(slices.Clone(params), more...) {
			pm, _ := resolve(doc, p).(map[string]any)
			if pm["in"] == "header" {
				o.Headers = append(o.Headers, pm["name"].(string))
			}
			if pm["in"] != "query" {
				continue
			}
			schema, _ := resolve(doc, pm["schema"]).(map[string]any)
			typ, _ := schema["type"].(string)
			o.Query[pm["name"].(string)] = typ
		}
		if rb, ok := op["requestBody"].(map[string]any); ok {
			content, _ := rb["content"].(map[string]any)
			media, _ := content["application/json"].(map[string]any)
			o.Body, _ = resolveAll(doc, media["schema"]).(map[string]any)
		}
		out = append(out, o)
	}
	return out
}

// resolve follows a local $ref ("#/components/…") once.
func resolve(doc map[string]any, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return v
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cm, _ := cur.(map[string]any)
		cur = cm[part]
	}
	return cur
}

// resolveAll resolves every $ref of a schema, at any depth.
func resolveAll(doc map[string]any, v any) any {
	v = resolve(doc, v)
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = resolveAll(doc, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = resolveAll(doc, e)
		}
		return out
	}
	return v
}

// field is one value of a request body: where it is (JSON path segments;
// an int is an array index) and its schema type.
type field struct {
	Path []any
	Type string
}

func (f field) String() string {
	var b strings.Builder
	for _, p := range f.Path {
		fmt.Fprintf(&b, "/%v", p)
	}
	return b.String()
}

// fields lists every leaf field of a body schema (objects are descended,
// arrays through their first element), in a stable order.
func fields(schema map[string]any) []field {
	var out []field
	var walk func(s map[string]any, path []any)
	walk = func(s map[string]any, path []any) {
		switch typ, _ := s["type"].(string); typ {
		case "object":
			props, _ := s["properties"].(map[string]any)
			names := make([]string, 0, len(props))
			for n := range props {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				ps, _ := props[n].(map[string]any)
				walk(ps, append(slices.Clone(path), n))
			}
		case "array":
			items, _ := s["items"].(map[string]any)
			walk(items, append(slices.Clone(path), 0))
		default:
			out = append(out, field{Path: path, Type: typ})
		}
	}
	walk(schema, nil)
	return out
}

// closedObjects lists the paths of every object of a body schema that
// refuses unknown properties (additionalProperties: false), with the names it
// allows.
func closedObjects(schema map[string]any) map[string][]any {
	out := map[string][]any{}
	var walk func(s map[string]any, path []any)
	walk = func(s map[string]any, path []any) {
		switch s["type"] {
		case "object":
			props, _ := s["properties"].(map[string]any)
			if s["additionalProperties"] == false {
				out[field{Path: path}.String()] = path
			}
			for n, p := range props {
				ps, _ := p.(map[string]any)
				walk(ps, append(slices.Clone(path), n))
			}
		case "array":
			items, _ := s["items"].(map[string]any)
			walk(items, append(slices.Clone(path), 0))
		}
	}
	walk(schema, nil)
	return out
}

// hasProperty reports whether the object at path of schema declares name.
func hasProperty(schema map[string]any, path []any, name string) bool {
	s := schema
	for _, p := range path {
		switch k := p.(type) {
		case string:
			props, _ := s["properties"].(map[string]any)
			s, _ = props[k].(map[string]any)
		case int:
			s, _ = s["items"].(map[string]any)
		}
	}
	props, _ := s["properties"].(map[string]any)
	_, ok := props[name]
	return ok
}
