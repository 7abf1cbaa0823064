package contract

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Boundary is one request derived from the document's schemas for an
// operation (Boundaries): the minimal one, the maximal one, or one of them
// with a single value moved to a boundary of its schema. The document is
// meant to accept it; the caller asks the document (Accepts) before it
// holds the code to it.
type Boundary struct {
	Operation Operation
	// Why names the request: "minimal", "maximal", or the value moved
	// ("body.name: 200 characters, U+00A0") on which of the two.
	Why    string
	Query  url.Values
	Header http.Header
	// Body is the JSON body, nil when the operation takes none.
	Body []byte
	// Value is Body decoded (map[string]any, []any, …), nil without one.
	Value any
	// Base is true for the minimal and the maximal request, which the
	// document must accept: a walk that cannot build them is broken.
	Base bool
	// On is the request a value was moved on: "minimal" or "maximal"
	// (the base's own name for a base).
	On string
}

// PathID fills every path parameter of a Boundary's operation: all of them
// are ids.
const PathID = "01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f"

// Request is b as an HTTP request to the operation's path with its path
// parameters PathID, without credentials.
func (b Boundary) Request() *http.Request {
	var segs []string
	for seg := range strings.SplitSeq(b.Operation.Path, "/") {
		if strings.HasPrefix(seg, "{") {
			seg = PathID
		}
		segs = append(segs, seg)
	}
	target := strings.Join(segs, "/")
	if len(b.Query) > 0 {
		target += "?" + b.Query.Encode()
	}
	r, _ := http.NewRequest(b.Operation.Method, target, nil) // cannot fail: a method and path of the document
	for name, values := range b.Header {
		r.Header[name] = values
	}
	if b.Body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// Boundaries derives, for every operation of the document with a JSON
// request body or query or header parameters, requests from its schemas
// alone: the minimal one (required members and parameters only, strings at
// their shortest, arrays at minItems), the maximal one (every member and
// parameter, strings at maxLength, arrays at maxItems, numbers at their
// maximum), and each of the two with one value moved to each of its
// boundaries: each enum value, numbers at minimum and maximum, null where
// the type allows it, a format's canonical examples (a uuid in lower and
// upper case, and the nil uuid), strings at their shortest and longest
// written in ASCII, in characters of several UTF-8 bytes (é, 日, 😀) and in
// Unicode spaces (U+00A0, U+3000, U+2003) wherever the schema's pattern
// lets them in. A string is written from its pattern (regexp/syntax: the
// document's validator reads patterns as Go does), never with a control
// character (the document refuses them for every operation, invalid_text).
//
// The walk knows the keywords the document uses (type, enum, const,
// format, pattern, minLength, maxLength, minimum, maximum, minItems,
// maxItems, minProperties, required, properties, items, $ref) and fails on a
// schema keyword it does not, so that a rule added to the document is not
// left out of the requests unseen. ops, when not empty, limits it to those
// operationIds.
//
// The walk of every operation (no ops) is made once per Contract and its
// requests handed out again: each call gets Query and Header of its own, to
// change as it likes, while Body and Value are shared between calls and
// must not be changed.
func (c *Contract) Boundaries(ops ...string) ([]Boundary, error) {
	if len(ops) > 0 {
		return c.walk(ops)
	}
	c.walked.once.Do(func() { c.walked.bounds, c.walked.err = c.walk(nil) })
	if c.walked.err != nil {
		return nil, c.walked.err
	}
	out := make([]Boundary, len(c.walked.bounds))
	for i, b := range c.walked.bounds {
		b.Query, b.Header = cloneValues(b.Query), b.Header.Clone()
		out[i] = b
	}
	return out, nil
}

// cloneValues is a copy of v that shares nothing with it (url.Values has
// no Clone; nil stays nil).
func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// walk derives the requests of the operations ops (every one when empty).
func (c *Contract) walk(ops []string) ([]Boundary, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(c.spec, &doc); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	w := walker{doc: doc}
	var out []Boundary
	paths, _ := doc["paths"].(map[string]any)
	for _, path := range sortedKeys(paths) {
		item, _ := paths[path].(map[string]any)
		for _, method := range sortedKeys(item) {
			if !isMethod(method) {
				continue
			}
			op, _ := item[method].(map[string]any)
			id, _ := op["operationId"].(string)
			if len(ops) > 0 && !slices.Contains(ops, id) {
				continue
			}
			o := Operation{Method: strings.ToUpper(method), Path: path, ID: id}
			bs, err := w.operation(o, item, op)
			if err != nil {
				return nil, fmt.Errorf("api/openapi.yaml: %s %s (%s): %w", o.Method, path, id, err)
			}
			out = append(out, bs...)
		}
	}
	return out, nil
}

// walker derives the requests of one document.
type walker struct {
	doc   map[string]any
	cache map[string][]value // leafValues, by path and item, of one operation
}

// leafValues is leafValues(s, path, i), remembered: a leaf's values are
// the same in every request built.
func (w walker) leafValues(s map[string]any, path string, i int) ([]value, error) {
	key := path + "#" + strconv.Itoa(i)
	if v, ok := w.cache[key]; ok {
		return v, nil
	}
	v, err := leafValues(s, path, i)
	if err == nil {
		w.cache[key] = v
	}
	return v, err
}

// field is one input of an operation: a query or header parameter, or the
// body.
type field struct {
	in, name string
	required bool
	schema   map[string]any
}

// path names the field in a Boundary's Why: "body", "query.limit",
// "header.If-Match".
func (f field) path() string {
	if f.in == "body" {
		return "body"
	}
	return f.in + "." + f.name
}

func (w walker) operation(o Operation, item, op map[string]any) ([]Boundary, error) {
	w.cache = map[string][]value{} // paths are the operation's own
	var fields []field
	params := append(asList(item["parameters"]), asList(op["parameters"])...)
	for _, p := range params {
		pm, err := w.deref(p)
		if err != nil {
			return nil, err
		}
		in, _ := pm["in"].(string)
		name, _ := pm["name"].(string)
		if in != "query" && in != "header" {
			// Path parameters are ids (PathID), cookies none: nothing is
			// written, but a keyword the walk does not know still fails.
			if _, err := w.schema(pm["schema"], in+"."+name); err != nil {
				return nil, err
			}
			continue
		}
		required, _ := pm["required"].(bool)
		s, err := w.deref(pm["schema"])
		if err != nil {
			return nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		fields = append(fields, field{in: in, name: name, required: required, schema: s})
	}
	if rb, ok := op["requestBody"].(map[string]any); ok {
		content, _ := rb["content"].(map[string]any)
		media, _ := content["application/json"].(map[string]any)
		if media != nil {
			s, err := w.deref(media["schema"])
			if err != nil {
				return nil, fmt.Errorf("body: %w", err)
			}
			required, _ := rb["required"].(bool)
			fields = append(fields, field{in: "body", name: "body", required: required, schema: s})
		}
	}
	if len(fields) == 0 {
		return nil, nil
	}

	// Every leaf's values, walked on the maximal request (a leaf of the
	// minimal one is a leaf of the maximal one).
	leaves := map[string][]value{}
	var order []string
	for _, f := range fields {
		if err := w.leaves(f.schema, f.path(), leaves, &order); err != nil {
			return nil, err
		}
	}
	build := func(why string, full bool, set map[string]value) (Boundary, error) {
		b := Boundary{Operation: o, Why: why, Query: url.Values{}, Header: http.Header{}, On: "minimal"}
		if full {
			b.On = "maximal"
		}
		for _, f := range fields {
			if !full && !f.required && !mentions(set, f.path()) {
				continue
			}
			v, err := w.value(f.schema, f.path(), full, set, 0)
			if err != nil {
				return b, err
			}
			if err := b.put(f, v); err != nil {
				return b, err
			}
		}
		return b, nil
	}
	maxima := map[string]value{}
	for _, path := range order {
		if i := slices.IndexFunc(leaves[path], func(v value) bool { return v.max }); i >= 0 {
			maxima[path] = leaves[path][i]
		}
	}
	var out []Boundary
	seen := map[string]bool{}
	add := func(b Boundary, err error) error {
		if err != nil {
			return err
		}
		key := b.Query.Encode() + "\n" + fmt.Sprint(b.Header) + "\n" + string(b.Body)
		if !seen[key] {
			seen[key] = true
			out = append(out, b)
		}
		return nil
	}
	minimal, err := build("minimal", false, nil)
	if err != nil {
		return nil, err
	}
	minimal.Base = true
	maximal, err := build("maximal", true, maxima)
	if err != nil {
		return nil, err
	}
	maximal.Base = true
	if err := add(minimal, nil); err != nil {
		return nil, err
	}
	if err := add(maximal, nil); err != nil {
		return nil, err
	}
	for _, path := range order {
		for _, v := range leaves[path] {
			one := map[string]value{path: v}
			if err := add(build(fmt.Sprintf("%s: %s, on the minimal request", path, v.why), false, one)); err != nil {
				return nil, err
			}
			both := maps(maxima, one)
			if err := add(build(fmt.Sprintf("%s: %s, on the maximal request", path, v.why), true, both)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// put writes v, the value of f, into b.
func (b *Boundary) put(f field, v any) error {
	if f.in == "body" {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("body: %w", err)
		}
		b.Body, b.Value = raw, v
		return nil
	}
	var s string
	switch x := v.(type) {
	case nil:
		return nil // a null parameter is one left out
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	default:
		return fmt.Errorf("%s parameter %s: a value of type %T", f.in, f.name, v)
	}
	if f.in == "query" {
		b.Query.Set(f.name, s)
	} else {
		b.Header.Set(f.name, s)
	}
	return nil
}

// value is one value of a leaf: v, why it was chosen, and whether it is
// the leaf's maximal one.
type value struct {
	v   any
	why string
	max bool
}

func maps(a, b map[string]value) map[string]value {
	out := map[string]value{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// mentions reports whether set moves a value at or under path.
func mentions(set map[string]value, path string) bool {
	for p := range set {
		if p == path || strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

// known are the schema keywords the walk reads or may leave aside (they
// say nothing a request must meet).
var known = map[string]bool{
	"type": true, "enum": true, "const": true, "format": true, "pattern": true, "minLength": true,
	"maxLength": true, "minimum": true, "maximum": true, "minItems": true, "maxItems": true,
	"minProperties": true, "required": true, "properties": true, "items": true,
	"additionalProperties": true, "description": true, "default": true, "$ref": true, "examples": true,
	// Read by the document's validator only: a value they refuse is left
	// out (the caller asks Accepts), which a moved value may be.
	"not": true,
	// Merged into the schema (intersect: the tightest bounds, the common
	// enum values; allOf's patterns all apply: the first one writes a
	// string, every one checks it).
	"allOf": true,
}

// deref resolves a $ref of the document (local references only). The
// keywords beside a $ref apply with its target's (OpenAPI 3.1, JSON Schema
// 2020-12), so a schema that has any is answered as an allOf of them and
// the target, which schema merges and checks part by part: a keyword
// beside a $ref is neither dropped nor unchecked. Annotations beside a
// $ref (description, summary: a Reference Object's own) are left aside.
func (w walker) deref(v any) (map[string]any, error) {
	m, _ := v.(map[string]any)
	var siblings []any
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			break
		}
		rest := map[string]any{}
		for k, x := range m {
			if k != "$ref" && k != "description" && k != "summary" {
				rest[k] = x
			}
		}
		if len(rest) > 0 {
			siblings = append(siblings, rest)
		}
		var node any = w.doc
		for part := range strings.SplitSeq(strings.TrimPrefix(ref, "#/"), "/") {
			node, _ = node.(map[string]any)[part]
		}
		if m, ok = node.(map[string]any); !ok {
			return nil, fmt.Errorf("%s resolves to nothing", ref)
		}
	}
	if len(siblings) > 0 {
		// The siblings first: where a keyword is not a bound schema
		// intersects (type, properties), the nearer schema's is kept.
		return map[string]any{"allOf": append(siblings, m)}, nil
	}
	return m, nil
}

func (w walker) schema(v any, path string) (map[string]any, error) {
	s, err := w.deref(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if all := asList(s["allOf"]); len(all) > 0 {
		own := map[string]any{}
		for k, v := range s {
			if k != "allOf" {
				own[k] = v
			}
		}
		merged := map[string]any{}
		var patterns []any
		for _, part := range append([]any{own}, all...) {
			m, err := w.schema(part, path)
			if err != nil {
				return nil, err
			}
			for _, k := range sortedKeys(m) {
				if err := intersect(merged, k, m[k], &patterns); err != nil {
					return nil, fmt.Errorf("%s: allOf: %w", path, err)
				}
			}
		}
		if len(patterns) > 0 {
			merged["pattern"], merged["x-patterns"] = patterns[0], patterns
		}
		return merged, nil
	}
	for k := range s {
		if !known[k] && !strings.HasPrefix(k, "x-") {
			return nil, fmt.Errorf("%s: the schema keyword %q is not one Boundaries knows; teach it to the walk", path, k)
		}
	}
	return s, nil
}

// intersect merges the keyword k of one part of an allOf, v, into merged,
// so that merged accepts only what every part accepts: the largest lower
// bound, the smallest upper bound, the enum values every part lists, every
// pattern (checked one by one) and every required member. Two parts of
// different formats or consts fail: no value is both. Other keywords
// (type, properties, items, annotations) keep the first part's.
func intersect(merged map[string]any, k string, v any, patterns *[]any) error {
	old, set := merged[k]
	switch k {
	case "allOf":
		return nil
	case "pattern":
		*patterns = append(*patterns, v)
		return nil
	}
	if !set {
		merged[k] = v
		return nil
	}
	switch k {
	case "minimum", "minLength", "minItems", "minProperties":
		a, okA := intBound(old)
		b, okB := intBound(v)
		if okA && okB && b > a {
			merged[k] = v
		}
	case "maximum", "maxLength", "maxItems":
		a, okA := intBound(old)
		b, okB := intBound(v)
		if okA && okB && b < a {
			merged[k] = v
		}
	case "enum":
		var both []any
		for _, x := range asList(old) {
			if slices.ContainsFunc(asList(v), func(y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
				both = append(both, x)
			}
		}
		if len(both) == 0 {
			return fmt.Errorf("the enums %v and %v have no value in common", old, v)
		}
		merged[k] = both
	case "required":
		merged[k] = append(slices.Clone(asList(old)), asList(v)...)
	case "format", "const":
		if fmt.Sprint(old) != fmt.Sprint(v) {
			return fmt.Errorf("the %s %v and the %s %v: no value is both", k, old, k, v)
		}
	}
	return nil
}

// types is the schema's type as a list ("string", "null", …).
func types(s map[string]any) []string {
	switch t := s["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if str, ok := x.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}

func hasType(s map[string]any, t string) bool { return slices.Contains(types(s), t) }

// leaves records, under path, the values of every leaf of s (objects and
// arrays are walked into; an array's first item stands for its items), in
// order of the walk.
func (w walker) leaves(v any, path string, out map[string][]value, order *[]string) error {
	s, err := w.schema(v, path)
	if err != nil {
		return err
	}
	switch {
	case hasType(s, "object") && s["properties"] != nil:
		props, _ := s["properties"].(map[string]any)
		for _, name := range sortedKeys(props) {
			if err := w.leaves(props[name], path+"."+name, out, order); err != nil {
				return err
			}
		}
		return nil
	case hasType(s, "array"):
		return w.leaves(s["items"], path+"[0]", out, order)
	}
	vals, err := w.leafValues(s, path, 0)
	if err != nil {
		return err
	}
	out[path] = vals
	*order = append(*order, path)
	return nil
}

// value builds the value of s at path: the minimal one (required members,
// minItems items, each leaf's first value) or the full one (every member,
// maxItems items), with the values of set at their paths. i tells items of
// an array apart (their strings and ids differ).
func (w walker) value(v any, path string, full bool, set map[string]value, i int) (any, error) {
	if x, ok := set[path]; ok {
		return x.v, nil
	}
	s, err := w.schema(v, path)
	if err != nil {
		return nil, err
	}
	switch {
	case hasType(s, "object") && s["properties"] != nil:
		props, _ := s["properties"].(map[string]any)
		required := map[string]bool{}
		for _, r := range asList(s["required"]) {
			required[r.(string)] = true
		}
		minProps := intOf(s["minProperties"], 0)
		obj := map[string]any{}
		for _, name := range sortedKeys(props) {
			p := path + "." + name
			if !full && !required[name] && !mentions(set, p) && len(obj)+countRequired(required, obj) >= minProps {
				continue
			}
			x, err := w.value(props[name], p, full, set, i)
			if err != nil {
				return nil, err
			}
			obj[name] = x
		}
		return obj, nil
	case hasType(s, "array"):
		n := intOf(s["minItems"], 0)
		if full {
			n = intOf(s["maxItems"], max(n, 2))
		}
		arr := []any{}
		for k := range n {
			p := path + "[0]"
			if k > 0 {
				p = path + "[" + strconv.Itoa(k) + "]" // set moves only the first item's values
			}
			x, err := w.value(s["items"], p, full, set, k)
			if err != nil {
				return nil, err
			}
			arr = append(arr, x)
		}
		return arr, nil
	}
	vals, err := w.leafValues(s, path, i)
	if err != nil {
		return nil, err
	}
	return vals[0].v, nil
}

// countRequired is how many required members obj still lacks: they are
// added later and count towards minProperties.
func countRequired(required map[string]bool, obj map[string]any) int {
	n := 0
	for name := range required {
		if _, ok := obj[name]; !ok {
			n++
		}
	}
	return n
}

// leafValues lists the values of a leaf schema, its plain value first.
func leafValues(s map[string]any, path string, i int) ([]value, error) {
	if c, ok := s["const"]; ok {
		return []value{{v: norm(c), why: "its const", max: true}}, nil
	}
	if e := asList(s["enum"]); len(e) > 0 {
		var out []value
		for k, x := range e {
			out = append(out, value{v: norm(x), why: fmt.Sprintf("enum value %v", x), max: k == len(e)-1})
		}
		return out, nil
	}
	var out []value
	for _, t := range types(s) {
		switch t {
		case "null":
		case "boolean":
			out = append(out, value{v: false, why: "false"}, value{v: true, why: "true", max: true})
		case "integer":
			lo, hasLo := intBound(s["minimum"])
			hi, hasHi := intBound(s["maximum"])
			if !hasLo {
				lo = 0
			}
			if !hasHi {
				hi = lo + 100
			}
			plain := lo
			if d, ok := intBound(s["default"]); ok {
				plain = d
			}
			out = append(out, value{v: plain, why: fmt.Sprintf("%d", plain)},
				value{v: lo, why: fmt.Sprintf("its minimum %d", lo)}, value{v: hi, why: fmt.Sprintf("its maximum %d", hi), max: true})
		case "string":
			vals, err := stringValues(s, i)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, vals...)
		default:
			return nil, fmt.Errorf("%s: a leaf of type %q, which Boundaries does not write", path, t)
		}
	}
	if hasType(s, "null") {
		out = append(out, value{v: nil, why: "null"})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: a schema without a type, which Boundaries does not write", path)
	}
	return out, nil
}

// stringValues are a string schema's values: its format's canonical
// examples, else strings written from its pattern (or of any character) at
// its shortest, its longest and a short plain length, in each flavour.
func stringValues(s map[string]any, i int) ([]value, error) {
	switch f, _ := s["format"].(string); f {
	case "":
	case "uuid":
		id := fmt.Sprintf("01936a6e-2f7c-7d3c-9f0e-%012x", 0x3a1b2c3d4e5f+i)
		return []value{{v: id, why: "a uuid", max: true}, {v: strings.ToUpper(id), why: "a uuid in upper case"},
			{v: "00000000-0000-0000-0000-000000000000", why: "the nil uuid"}}, nil
	case "date-time":
		return []value{{v: "2026-12-05T10:00:00Z", why: "a date-time", max: true}, {v: "2026-12-05T10:00:00.5+01:00", why: "a date-time with a fraction and an offset"}}, nil
	default:
		return nil, fmt.Errorf("the format %q, which Boundaries does not write", f)
	}
	pattern, _ := s["pattern"].(string)
	expr := pattern
	if expr == "" {
		expr = "(?s:.*)"
	} else {
		if !strings.HasPrefix(expr, "^") {
			expr = "(?s:.*)" + expr
		}
		if !strings.HasSuffix(expr, "$") || strings.HasSuffix(expr, `\$`) {
			expr += "(?s:.*)"
		}
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	var checks []*regexp.Regexp
	for _, p := range append([]any{orAll(pattern)}, asList(s["x-patterns"])...) {
		str, _ := p.(string)
		re, err := regexp.Compile(str)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", str, err)
		}
		checks = append(checks, re)
	}
	reMin, reMax := lengths(re)
	lo := max(intOf(s["minLength"], 0), reMin)
	hi := intOf(s["maxLength"], -1)
	if hi < 0 || (reMax >= 0 && reMax < hi) {
		hi = reMax
	}
	if hi < 0 {
		hi = lo + 300 // no bound: long enough to pass any short limit the code might hold, and the bounded parts of a pattern at their longest
	}
	plain := min(max(lo, 3), hi)
	memo := map[*syntax.Regexp][2]int{}
	// near writes a string of n characters, or of the nearest length
	// towards the other end (step) that every pattern matches: a pattern
	// that bounds a part (an email's local part) may refuse the even share
	// a longer string gives it.
	near := func(n, step int, fl flavour) (string, int, bool) {
		for ; n >= lo && n <= hi; n += step {
			str, ok := write(re, n, fl, i*5, memo)
			if ok && utf8.RuneCountInString(str) == n && !slices.ContainsFunc(checks, func(c *regexp.Regexp) bool { return !c.MatchString(str) }) {
				return str, n, true
			}
		}
		return "", 0, false
	}
	var out []value
	seen := map[string]bool{}
	for _, c := range []struct {
		n, step int
		fl      flavour
	}{{plain, 1, ascii}, {lo, 1, ascii}, {hi, -1, ascii}, {lo, 1, multibyte}, {hi, -1, multibyte}, {lo, 1, spaces}, {hi, -1, spaces}} {
		str, n, ok := near(c.n, c.step, c.fl)
		if !ok || seen[str] {
			continue
		}
		seen[str] = true
		out = append(out, value{v: str, why: fmt.Sprintf("%d characters, %s", n, c.fl), max: c.n == hi && c.fl == ascii})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no string of %d to %d characters matches the pattern %q", lo, hi, pattern)
	}
	return out, nil
}

// orAll is pattern, or one that matches everything.
func orAll(pattern string) string {
	if pattern == "" {
		return "(?s:.*)"
	}
	return pattern
}

// flavour is the kind of character a string is written in, wherever its
// pattern lets one in.
type flavour int

const (
	ascii     flavour = iota // letters and digits
	multibyte                // é, 日, 😀: two, three and four UTF-8 bytes
	spaces                   // U+00A0, U+3000, U+2003: Unicode spaces a Go trim removes
)

func (f flavour) String() string {
	return [...]string{"ASCII", "characters of several UTF-8 bytes", "Unicode spaces"}[f]
}

var preferred = [...][]rune{
	ascii:     []rune("Kq7Zx2Mv9Wp4Jn6Hb8"),
	multibyte: []rune("é日😀"),
	spaces:    {'\u00a0', '\u3000', '\u2003'},
}

// pick chooses a character of class (pairs of inclusive ranges, as
// regexp/syntax writes them) in flavour f, the k-th of its preferred ones
// that the class holds; else a preferred ASCII one; else the class's first
// printable one. Never a control character.
func pick(class []rune, f flavour, k int) (rune, bool) {
	in := func(r rune) bool {
		for i := 0; i+1 < len(class); i += 2 {
			if class[i] <= r && r <= class[i+1] {
				return true
			}
		}
		return false
	}
	for _, list := range [][]rune{preferred[f], preferred[ascii]} {
		for j := range list {
			if r := list[(k+j)%len(list)]; in(r) {
				return r, true
			}
		}
	}
	for i := 0; i+1 < len(class); i += 2 {
		for r := max(class[i], 0x20); r <= class[i+1] && r < 0x3000; r++ {
			if unicode.IsPrint(r) {
				return r, true
			}
		}
	}
	return 0, false
}

// lengths are the shortest and longest match of re in characters (-1:
// unbounded).
func lengths(re *syntax.Regexp) (int, int) {
	switch re.Op {
	case syntax.OpLiteral:
		return len(re.Rune), len(re.Rune)
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1, 1
	case syntax.OpCapture:
		return lengths(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := reps(re)
		smin, smax := lengths(re.Sub[0])
		mx := -1
		if hi >= 0 && smax >= 0 {
			mx = hi * smax
		}
		if smax == 0 {
			mx = 0
		}
		return lo * smin, mx
	case syntax.OpConcat:
		lo, hi := 0, 0
		for _, sub := range re.Sub {
			a, b := lengths(sub)
			lo += a
			if hi >= 0 && b >= 0 {
				hi += b
			} else {
				hi = -1
			}
		}
		return lo, hi
	case syntax.OpAlternate:
		lo, hi := -1, 0
		for _, sub := range re.Sub {
			a, b := lengths(sub)
			if lo < 0 || a < lo {
				lo = a
			}
			if hi >= 0 && (b < 0 || b > hi) {
				hi = b
			}
		}
		return max(lo, 0), hi
	}
	return 0, 0 // anchors, empty matches
}

func reps(re *syntax.Regexp) (int, int) {
	switch re.Op {
	case syntax.OpStar:
		return 0, -1
	case syntax.OpPlus:
		return 1, -1
	case syntax.OpQuest:
		return 0, 1
	}
	return re.Min, re.Max
}

// write writes a string of n characters that re matches, in flavour f (k
// varies the characters), or false when it cannot.
func write(re *syntax.Regexp, n int, f flavour, k int, memo map[*syntax.Regexp][2]int) (string, bool) {
	g := generator{f: f, k: k, budget: 20_000, memo: memo}
	ok := g.gen(re, n)
	return string(g.out), ok
}

// generator writes a string from a regular expression, backtracking over
// how a sequence shares out its length, within a budget of steps.
type generator struct {
	f      flavour
	k      int // the next character's place, which varies it
	out    []byte
	budget int
	memo   map[*syntax.Regexp][2]int // lengths, by node
}

// lengths is lengths(re), remembered.
func (g *generator) lengths(re *syntax.Regexp) (int, int) {
	if l, ok := g.memo[re]; ok {
		return l[0], l[1]
	}
	lo, hi := lengths(re)
	g.memo[re] = [2]int{lo, hi}
	return lo, hi
}

func (g *generator) gen(re *syntax.Regexp, n int) bool {
	if g.budget--; g.budget < 0 {
		return false
	}
	lo, hi := g.lengths(re)
	if n < lo || (hi >= 0 && n > hi) {
		return false
	}
	switch re.Op {
	case syntax.OpLiteral:
		g.out = append(g.out, string(re.Rune)...)
		return true
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		class := re.Rune
		switch re.Op {
		case syntax.OpAnyChar:
			class = []rune{0, unicode.MaxRune}
		case syntax.OpAnyCharNotNL:
			class = []rune{0, '\n' - 1, '\n' + 1, unicode.MaxRune}
		}
		r, ok := pick(class, g.f, g.k)
		g.k++
		if ok {
			g.out = utf8.AppendRune(g.out, r)
		}
		return ok
	case syntax.OpCapture:
		return g.gen(re.Sub[0], n)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		rlo, rhi := reps(re)
		smin, smax := g.lengths(re.Sub[0])
		for r := rlo; rhi < 0 || r <= rhi; r++ {
			if (smin == 0 && r > n+1) || (smin > 0 && r*smin > n) {
				break
			}
			if (smax >= 0 && n > r*smax) || (r == 0 && n > 0) {
				continue
			}
			if g.seq(slices.Repeat([]*syntax.Regexp{re.Sub[0]}, r), n) {
				return true
			}
		}
		return false
	case syntax.OpConcat:
		return g.seq(re.Sub, n)
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			mark, k := len(g.out), g.k
			if g.gen(sub, n) {
				return true
			}
			g.out, g.k = g.out[:mark], k
		}
		return false
	}
	return n == 0
}

// seq writes subs one after another, n characters in all, each taking its
// even share of n where it can.
func (g *generator) seq(subs []*syntax.Regexp, n int) bool {
	// restMin[i], restMax[i]: the lengths of subs[i:] (-1: unbounded).
	restMin, restMax := make([]int, len(subs)+1), make([]int, len(subs)+1)
	for i := len(subs) - 1; i >= 0; i-- {
		a, b := g.lengths(subs[i])
		restMin[i] = restMin[i+1] + a
		if restMax[i+1] >= 0 && b >= 0 {
			restMax[i] = restMax[i+1] + b
		} else {
			restMax[i] = -1
		}
	}
	return g.seqFrom(subs, 0, n, restMin, restMax)
}

func (g *generator) seqFrom(subs []*syntax.Regexp, i, n int, restMin, restMax []int) bool {
	if i == len(subs) {
		return n == 0
	}
	lo, hi := g.lengths(subs[i])
	lo = max(lo, 0)
	if restMax[i+1] >= 0 {
		lo = max(lo, n-restMax[i+1])
	}
	if hi < 0 || hi > n-restMin[i+1] {
		hi = n - restMin[i+1]
	}
	left := len(subs) - i
	share := min(max((n+left-1)/left, lo), hi)
	for d := 0; share-d >= lo || share+d <= hi; d++ {
		for _, size := range []int{share + d, share - d} {
			if size < lo || size > hi || (d == 0 && size != share+d) {
				continue
			}
			mark, k := len(g.out), g.k
			if g.gen(subs[i], size) && g.seqFrom(subs, i+1, n-size, restMin, restMax) {
				return true
			}
			g.out, g.k = g.out[:mark], k
			if g.budget < 0 {
				return false
			}
		}
	}
	return false
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func intOf(v any, def int) int {
	if n, ok := v.(int); ok {
		return n
	}
	return def
}

func intBound(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		return int64(n), true
	}
	return 0, false
}

// norm is a YAML value as encoding/json would write it (integers as int64).
func norm(v any) any {
	if n, ok := v.(int); ok {
		return int64(n)
	}
	return v
}
