// Package contract holds the shop's public contract, api/openapi.yaml, to
// account: its test checks the document against the route table
// (internal/routes), the error codes (internal/fault) and the answers
// fnserve and the edge give before a handler runs (Undeclared), and Recorder
// validates every request a test makes to the public API, and the answer it
// gets, against the document with libopenapi-validator: the code answers
// nothing the document does not allow. The other direction, that the code
// refuses no request the document accepts, is held by Boundaries, the
// requests derived from the document's schemas at their boundaries, which
// the package's tests send through each operation's decoding and
// validation in process.
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/routes"
)

// Prefix is where the public routes live; requests elsewhere (the gateway
// API, /function/…, the edge's own pages) are not part of the contract, but
// for the document's own paths outside it (Covers).
const Prefix = "/api/"

// Contract is the parsed document and its validator. Its methods are safe
// for concurrent use.
type Contract struct {
	doc libopenapi.Document
	mu  sync.Mutex // the validator caches per request path; one call at a time keeps it simple
	val validator.Validator
	raw document
	// spec is the document as parsed (YAML), for the walk over its schemas
	// (Boundaries).
	spec []byte

	// named are the response headers the document declares anywhere
	// (canonical names); answers, per "METHOD template" and status key
	// ("200", "5XX", "default"), what the document declares for that answer.
	named   map[string]bool
	answers map[string]map[string]answer
	// functions is the function (operationId) of each operation, per
	// "METHOD template" (FunctionPath).
	functions map[string]string

	// walked is Boundaries of every operation, derived once per document:
	// the walk writes every string from its pattern, and the reverse check
	// asks for the same requests of one document more than once.
	walked struct {
		once   sync.Once
		bounds []Boundary
		err    error
	}
}

// answer is what the document declares for one answer of an operation: its
// headers (canonical names) and, for a problem, the codes it may carry
// (x-codes).
type answer struct {
	headers map[string]bool
	codes   []string
	problem bool // its content is application/problem+json
}

// document is the part of the YAML the drift checks read.
type document struct {
	Paths      map[string]map[string]yaml.Node `yaml:"paths"` // path → method (or parameters, …) → operation
	Components struct {
		Responses map[string]response `yaml:"responses"`
		Schemas   struct {
			Problem struct {
				Properties struct {
					Code struct {
						Enum []string `yaml:"enum"`
					} `yaml:"code"`
				} `yaml:"properties"`
			} `yaml:"Problem"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

// response is the part of a response the answer index reads: a reference
// to components/responses, or its headers, content types and codes.
type response struct {
	Ref     string              `yaml:"$ref"`
	Headers map[string]struct{} `yaml:"headers"`
	Content map[string]struct{} `yaml:"content"`
	Codes   []string            `yaml:"x-codes"`
}

// operation is the part of an operation the drift checks read.
type operation struct {
	OperationID string                `yaml:"operationId"`
	Security    []map[string][]string `yaml:"security"`
	Responses   map[string]any        `yaml:"responses"`
}

// Load parses api/openapi.yaml and builds its validator, with format
// assertions (uuid, date-time) on.
func Load() (*Contract, error) { return Parse(api.OpenAPI()) }

// Parse is Load of another document, spec (YAML): the tests plant mistakes
// in a copy of api/openapi.yaml and parse it. Errors name api/openapi.yaml.
func Parse(spec []byte) (*Contract, error) {
	c := &Contract{spec: spec}
	if err := yaml.Unmarshal(spec, &c.raw); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	val, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("api/openapi.yaml: %w", errors.Join(errs...))
	}
	c.doc, c.val = doc, val
	if err := c.indexAnswers(); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	return c, nil
}

// indexAnswers fills named and answers from the document's responses.
func (c *Contract) indexAnswers() error {
	c.named, c.answers, c.functions = map[string]bool{}, map[string]map[string]answer{}, map[string]string{}
	for path, item := range c.raw.Paths {
		for method, node := range item {
			var op struct {
				OperationID string              `yaml:"operationId"`
				Responses   map[string]response `yaml:"responses"`
			}
			if !isMethod(method) || node.Decode(&op) != nil {
				continue
			}
			byStatus := map[string]answer{}
			for status, r := range op.Responses {
				if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
					shared, found := c.raw.Components.Responses[name]
					if !found {
						return fmt.Errorf("%s %s %s: no response %s", method, path, status, r.Ref)
					}
					r = shared
				}
				_, problem := r.Content["application/problem+json"]
				a := answer{headers: map[string]bool{}, codes: r.Codes, problem: problem}
				for h := range r.Headers {
					h = http.CanonicalHeaderKey(h)
					a.headers[h], c.named[h] = true, true
				}
				byStatus[status] = a
			}
			c.answers[strings.ToUpper(method)+" "+path] = byStatus
			c.functions[strings.ToUpper(method)+" "+path] = op.OperationID
		}
	}
	return nil
}

func isMethod(s string) bool {
	switch s {
	case "get", "put", "post", "delete", "patch", "head", "options", "trace":
		return true
	}
	return false
}

// Validate checks the document against the OpenAPI 3.1 schema.
func (c *Contract) Validate() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok, errs := c.val.ValidateDocument()
	if ok {
		return nil
	}
	return joinValidation(errs)
}

// Operation is one operation of the document.
type Operation struct {
	Method   string // upper case, e.g. GET
	Path     string // e.g. /api/v1/products/{id}
	ID       string // the operationId: the function's name
	Secured  bool   // a security requirement is declared
	Statuses []string
}

// Says reports whether the document's text holds sentence: a rule no
// schema can state (a comparison of two values) is a sentence of a
// description, and a check that the code holds it must find it in this
// document, not in another (a planted copy).
func (c *Contract) Says(sentence string) bool { return strings.Contains(string(c.spec), sentence) }

// Operations lists every operation of the document.
func (c *Contract) Operations() []Operation {
	var out []Operation
	for path, item := range c.raw.Paths {
		for method := range item {
			if !isMethod(method) {
				continue // parameters, summary, …
			}
			var op operation
			node := item[method]
			if err := node.Decode(&op); err != nil {
				continue // Load's validator reports a malformed operation
			}
			o := Operation{Method: strings.ToUpper(method), Path: path, ID: op.OperationID, Secured: len(op.Security) > 0}
			for status := range op.Responses {
				o.Statuses = append(o.Statuses, status)
			}
			out = append(out, o)
		}
	}
	return out
}

// ProblemCodes are the codes Problem.code enumerates.
func (c *Contract) ProblemCodes() []string {
	return c.raw.Components.Schemas.Problem.Properties.Code.Enum
}

// Check validates one exchange with the public API: the request against its
// operation, the answer against the operation's responses. A request the
// document refuses (no token, an unknown field, a wrong type) must be answered
// 4xx; a path or method the document does not have must be answered with a 4xx
// problem. reqBody and resBody are the bodies already read.
func (c *Contract) Check(req *http.Request, reqBody []byte, res *http.Response, resBody []byte) error {
	if req.Method == http.MethodOptions || req.Method == http.MethodHead {
		return nil // CORS preflights and HEAD are the edge's, not operations
	}
	r := req.Clone(req.Context())
	r.URL.RawQuery = withoutEmpty(r.URL.RawQuery)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	r.ContentLength = int64(len(reqBody))
	a := *res
	a.Body = io.NopCloser(bytes.NewReader(resBody))
	a.Request = r

	tmpl, found := c.template(req.Method, req.URL.Path)
	if !found {
		if res.StatusCode < 400 || res.StatusCode > 499 || !isProblem(res) {
			return fmt.Errorf("%s %s is not in the contract but was answered %d %s", req.Method, req.URL.Path,
				res.StatusCode, res.Header.Get("Content-Type"))
		}
		return nil
	}

	c.mu.Lock()
	reqOK, reqErrs := c.val.ValidateHttpRequestSync(r)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	resOK, resErrs := c.val.ValidateHttpResponse(r, &a)
	c.mu.Unlock()

	var errs []error
	if !reqOK && (res.StatusCode < 400 || res.StatusCode > 499) {
		errs = append(errs, fmt.Errorf("a request the contract refuses was answered %d: %w", res.StatusCode, joinValidation(reqErrs)))
	}
	if !resOK {
		errs = append(errs, fmt.Errorf("the answer %d breaks the contract: %w", res.StatusCode, joinValidation(resErrs)))
	}
	want := c.answer(req.Method+" "+tmpl, res.StatusCode)
	if h := c.undeclaredHeaders(want, res); len(h) > 0 {
		errs = append(errs, fmt.Errorf("the answer %d carries %s, which the document declares for other answers but not this one", res.StatusCode, strings.Join(h, ", ")))
	}
	if code, ok := problemCode(res, resBody); ok && !slices.Contains(want.codes, code) {
		errs = append(errs, fmt.Errorf("the problem %d has code %q, which the document does not list for it (x-codes %v)", res.StatusCode, code, want.codes))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s %s: %w", req.Method, req.URL.RequestURI(), errors.Join(errs...))
}

// Accepts reports whether the document accepts the request req, whose
// body, already read, is body: nil, or what it refuses. It reads the query
// string as Check does (a parameter sent empty is one left out).
func (c *Contract) Accepts(req *http.Request, body []byte) error {
	r := req.Clone(req.Context())
	r.URL.RawQuery = withoutEmpty(r.URL.RawQuery)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	c.mu.Lock()
	ok, errs := c.val.ValidateHttpRequestSync(r)
	c.mu.Unlock()
	if ok {
		return nil
	}
	return joinValidation(errs)
}

// answer is what the document declares for the status of an answer of op
// ("METHOD template"): the status's own key, else its class ("5XX"), else
// "default" (the zero answer when there is none: the validator reports the
// status).
func (c *Contract) answer(op string, status int) answer {
	byStatus := c.answers[op]
	code := strconv.Itoa(status)
	if a, ok := byStatus[code]; ok {
		return a
	}
	if a, ok := byStatus[code[:1]+"XX"]; ok {
		return a
	}
	return byStatus["default"]
}

// undeclaredHeaders are the headers of res that the document names for some
// answer (ETag, Location, Retry-After, Idempotent-Replayed, …) but does not
// declare for a, this one. libopenapi-validator checks only the headers an
// answer declares, so a header sent where the document does not say so would
// pass unseen; headers the document never names (Content-Type, Vary, the
// edge's) are not the contract's.
func (c *Contract) undeclaredHeaders(a answer, res *http.Response) []string {
	var out []string
	for h := range res.Header {
		if h = http.CanonicalHeaderKey(h); c.named[h] && !a.headers[h] {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

// problemCode is the code of a problem answer (false for any other answer,
// or a problem without a code, which the validator reports).
func problemCode(res *http.Response, body []byte) (string, bool) {
	if !isProblem(res) {
		return "", false
	}
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) != nil || p.Code == "" {
		return "", false
	}
	return p.Code, true
}

// Undeclared says what the document lacks for the problem answer status
// with code of the operation method template (upper-case method, path
// template as in the document), or "" when it declares it as the validator
// and Check read the document: the status's own key, else its class ("5XX"),
// else "default", whose content is a problem that lists code in x-codes.
// dev/contract's tests hold every operation to the answers the platform
// (fnserve, the edge) gives before its handler runs; an answer missing here
// fails only the integration suite otherwise, on the first one it meets.
func (c *Contract) Undeclared(method, template string, status int, code string) string {
	op := method + " " + template
	byStatus, ok := c.answers[op]
	if !ok {
		return fmt.Sprintf("%s is no operation of the document", op)
	}
	s := strconv.Itoa(status)
	key := ""
	for _, k := range []string{s, s[:1] + "XX", "default"} {
		if _, ok := byStatus[k]; ok {
			key = k
			break
		}
	}
	switch a := byStatus[key]; {
	case key == "":
		return fmt.Sprintf("%s does not declare %d (nor %sXX or default)", op, status, s[:1])
	case !a.problem:
		return fmt.Sprintf("%s declares %d (as %s) without an application/problem+json content", op, status, key)
	case !slices.Contains(a.codes, code):
		return fmt.Sprintf("%s declares %d (as %s) without the code %q in its x-codes %v", op, status, key, code, a.codes)
	}
	return ""
}

// ProblemAnswers lists, for every answer of every operation whose content
// is a problem, the codes the document lists for it (x-codes): "METHOD
// template status" → codes.
func (c *Contract) ProblemAnswers() map[string][]string {
	out := map[string][]string{}
	for op, byStatus := range c.answers {
		for status, a := range byStatus {
			if a.problem {
				out[op+" "+status] = a.codes
			}
		}
	}
	return out
}

// withoutEmpty is the query string raw less the values sent empty, and the
// parameters left with none, as fnserve reads it (fnhttp.DropEmptyValues):
// the document says a parameter sent empty (?limit=) is one left out, which
// the validator, reading the schema alone, would refuse for an integer or a
// pattern. raw is kept as it is when nothing is dropped, and when it does not
// parse (the validator judges it).
func withoutEmpty(raw string) string {
	q, err := url.ParseQuery(raw)
	if err != nil || !fnhttp.DropEmptyValues(q) {
		return raw
	}
	return q.Encode()
}

// Covers reports whether an exchange on path, whatever its method, is the
// contract's to judge: every path under Prefix (one the document does not
// have must still be answered with a 4xx problem) and every other path of
// the document (GET /openapi.yaml), which a check of Prefix alone would let
// through unseen.
func (c *Contract) Covers(path string) bool {
	if strings.HasPrefix(path, Prefix) {
		return true
	}
	for tmpl := range c.raw.Paths {
		if routes.PathMatches(tmpl, path) {
			return true
		}
	}
	return false
}

// FunctionPath reads a call of a public function straight through the
// OpenFaaS gateway, method on /function/<name>/<path> (the upstream address
// an edge route proxies to): it returns the gateway's prefix,
// /function/<name>, when the document has an operation of method on <path>
// whose function (operationId) is <name>, and false for any other path (the
// gateway API, an internal function, a function's root or its /_/ paths,
// another function's path).
func (c *Contract) FunctionPath(method, path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/function/")
	if !ok {
		return "", false
	}
	name, public, ok := strings.Cut(rest, "/")
	if !ok || name == "" {
		return "", false
	}
	tmpl, found := c.template(method, "/"+public)
	if !found || c.functions[strings.ToUpper(method)+" "+tmpl] != name {
		return "", false
	}
	return "/function/" + name, true
}

// template is the document's path template for method at the concrete path;
// false when there is none.
func (c *Contract) template(method, path string) (string, bool) {
	for tmpl, item := range c.raw.Paths {
		if _, ok := item[strings.ToLower(method)]; ok && routes.PathMatches(tmpl, path) {
			return tmpl, true
		}
	}
	return "", false
}

func isProblem(res *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	return mt == "application/problem+json"
}

func joinValidation(errs []*verrors.ValidationError) error {
	var out []error
	for _, e := range errs {
		msg := e.Message
		if e.Reason != "" {
			msg += ": " + e.Reason
		}
		for _, s := range e.SchemaValidationErrors {
			msg += fmt.Sprintf(" [%s: %s]", s.FieldPath, s.Reason)
		}
		out = append(out, errors.New(msg))
	}
	return errors.Join(out...)
}
