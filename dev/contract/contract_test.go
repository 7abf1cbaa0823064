package contract_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/dev/contract"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/routes"
)

// loaded is api/openapi.yaml parsed once for all the package's tests:
// parsing it and building its validator is a good part of what a test
// spends, a Contract is safe for concurrent use, and no test changes it
// (a test that plants a mistake parses a copy of its own).
var loaded = sync.OnceValues(contract.Load)

// load is the document, parsed once (loaded).
func load(t *testing.T) *contract.Contract {
	t.Helper()
	c, err := loaded()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDocumentIsValidOpenAPI(t *testing.T) {
	if err := load(t).Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDocumentMatchesTheRouteTable: every public route of internal/routes is
// exactly one operation (same method, path and function name as operationId),
// and nothing else is; token routes declare a security requirement and 401,
// admin routes 403.
func TestDocumentMatchesTheRouteTable(t *testing.T) {
	ops := map[string]contract.Operation{}
	for _, op := range load(t).Operations() {
		ops[op.Method+" "+op.Path] = op
	}
	for _, r := range routes.Table() {
		if r.Kind != routes.Public {
			for _, op := range ops {
				if op.ID == r.Function {
					t.Errorf("%s is %s, not public, but is operation %s %s", r.Function, r.Kind, op.Method, op.Path)
				}
			}
			continue
		}
		key := r.Method + " " + r.Path
		op, ok := ops[key]
		if !ok {
			t.Errorf("route %s (%s) is missing from api/openapi.yaml", key, r.Function)
			continue
		}
		delete(ops, key)
		if op.ID != r.Function {
			t.Errorf("%s: operationId %q, the route table says %q", key, op.ID, r.Function)
		}
		if op.Secured != r.NeedsToken() {
			t.Errorf("%s: security declared %v, the route needs a token: %v", key, op.Secured, r.NeedsToken())
		}
		if r.NeedsToken() && !slices.Contains(op.Statuses, "401") {
			t.Errorf("%s: a token route must declare 401", key)
		}
		if r.Access == routes.Admin && !slices.Contains(op.Statuses, "403") {
			t.Errorf("%s: an admin route must declare 403", key)
		}
		if !slices.ContainsFunc(op.Statuses, func(s string) bool { return strings.HasPrefix(s, "2") || s == "304" }) {
			t.Errorf("%s: no success status declared", key)
		}
	}
	for key, op := range ops {
		t.Errorf("api/openapi.yaml has %s (%s), which is not a public route of internal/routes", key, op.ID)
	}
}

// TestProblemCodesAreTheFaultCodes: Problem.code lists exactly the Code
// constants of internal/fault/codes.go, each with the codes' syntax (a
// connector repeats only such a code of a function's answer).
func TestProblemCodesAreTheFaultCodes(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../internal/fault/codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Values) != 1 {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, _ := strconv.Unquote(lit.Value)
			codes = append(codes, s)
		}
		return true
	})
	if len(codes) < 10 {
		t.Fatalf("read only %d codes from internal/fault/codes.go", len(codes))
	}
	doc := load(t).ProblemCodes()
	for _, c := range codes {
		if !fault.Code(c).Valid() {
			t.Errorf("fault code %q does not have the codes' syntax (fault.Code.Valid)", c)
		}
		if !slices.Contains(doc, c) {
			t.Errorf("fault code %q is missing from Problem.code in api/openapi.yaml", c)
		}
	}
	for _, c := range doc {
		if !slices.Contains(codes, c) {
			t.Errorf("Problem.code %q is not a code of internal/fault/codes.go", c)
		}
	}
}

// TestEveryFaultCodeIsAnsweredSomewhere: each Code constant of
// internal/fault/codes.go is named by the shop's code outside its tests, so
// the document's Problem.code (which lists exactly those constants) promises
// no code nothing can answer. Until 2026-12-08 it listed stock_conflict,
// which set-stock stopped answering on 2026-12-07 (a CHECK violation is an
// internal error since).
func TestEveryFaultCodeIsAnsweredSomewhere(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../../internal/fault/codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	constants := map[string]bool{} // constant name -> named outside codes.go
	for _, d := range f.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.CONST {
			for _, s := range gd.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					constants[n.Name] = false
				}
			}
		}
	}
	if len(constants) < 10 {
		t.Fatalf("read only %d constants from internal/fault/codes.go", len(constants))
	}
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == ".git" || name == "vendor" || name == "testdata" || name == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			filepath.ToSlash(path) == "../../internal/fault/codes.go" {
			return nil
		}
		src, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(src, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				if _, known := constants[id.Name]; known {
					constants[id.Name] = true
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, named := range constants {
		if !named {
			t.Errorf("fault.%s is named by no code outside tests: no answer carries it; remove it from internal/fault/codes.go and api/openapi.yaml", name)
		}
	}
}

// TestEveryProblemAnswerListsItsCodes: every answer whose content is a
// problem lists the codes it may carry (x-codes), each one of Problem.code's,
// so a client can tell from the document which codes an operation answers
// (the recorder holds every answer of the integration suite to them).
func TestEveryProblemAnswerListsItsCodes(t *testing.T) {
	c := load(t)
	known := c.ProblemCodes()
	answers := c.ProblemAnswers()
	if len(answers) < 100 {
		t.Fatalf("read only %d problem answers", len(answers))
	}
	for where, codes := range answers {
		if len(codes) == 0 {
			t.Errorf("%s: a problem answer without x-codes", where)
		}
		for _, code := range codes {
			if !slices.Contains(known, code) {
				t.Errorf("%s: x-codes lists %q, which is not a Problem.code", where, code)
			}
		}
	}
}

// TestRecorderCatchesWhatBreaksTheContract drives the recorder with a fake
// edge whose answers are right or wrong in known ways.
func TestRecorderCatchesWhatBreaksTheContract(t *testing.T) {
	const product = `{"id":"01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f","sku":"A-1","name":"A","description":"","category":"c","price":{"amount":100,"currency":"USD"},"sold_count":0,"in_stock":true,"archived":false,"version":1,"created_at":"2026-12-01T00:00:00Z","updated_at":"2026-12-01T00:00:00Z"}`
	answers := map[string]struct {
		status      int
		contentType string
		body        string
		header      []string // name, value, …
	}{
		"/api/v1/products/good":        {200, "application/json", product, []string{"ETag", `"x-1"`}}, // ETag is required
		"/api/v1/products/no-sku":      {200, "application/json", strings.Replace(product, `"sku":"A-1",`, "", 1), nil},
		"/api/v1/products/bad-uuid":    {200, "application/json", strings.Replace(product, "01936a6e-", "zz", 1), nil},
		"/api/v1/products/teapot":      {418, "application/problem+json", `{"type":"about:blank","title":"x","status":418,"code":"not_found"}`, nil},
		"/api/v1/products/bad-code":    {404, "application/problem+json", `{"type":"about:blank","title":"x","status":404,"code":"nope"}`, nil},
		"/api/v1/products/missing":     {404, "application/problem+json", `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found"}`, nil},
		"/api/v1/nowhere":              {404, "application/problem+json", `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found"}`, nil},
		"/api/v1/elsewhere":            {200, "application/json", `{}`, nil},
		"/api/v1/users/me":             {200, "application/json", `{"id":"01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f","email":"a@b.c","name":"A","role":"customer","created_at":"2026-12-01T00:00:00Z"}`, nil},
		"/api/v1/inventory/refused":    {200, "application/json", `{"product_id":"01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f","on_hand":1,"reserved":0,"available":1,"version":1}`, nil},
		"/api/v1/inventory/refused400": {400, "application/problem+json", `{"type":"about:blank","title":"Bad Request","status":400,"code":"invalid_json"}`, nil},
		// Headers the document names: declared for the answer, or not.
		"/api/v1/products/etag":       {200, "application/json", product, []string{"ETag", `"x-1"`}},
		"/api/v1/products/etag404":    {404, "application/problem+json", `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found"}`, []string{"ETag", `"x-1"`}},
		"/api/v1/products/busy":       {503, "application/problem+json", `{"type":"about:blank","title":"x","status":503,"code":"unavailable"}`, []string{"Retry-After", "1"}},
		"/api/v1/products/late":       {504, "application/problem+json", `{"type":"about:blank","title":"x","status":504,"code":"upstream_timeout"}`, nil},
		"/api/v1/products/late-retry": {504, "application/problem+json", `{"type":"about:blank","title":"x","status":504,"code":"upstream_timeout"}`, []string{"Retry-After", "1"}},
		"/api/v1/products/other":      {200, "application/json", product, []string{"ETag", `"x-1"`, "X-Correlation-ID", "abc", "Cache-Control", "no-store"}},
		"/api/v1/products":            {200, "application/json", `{"items":[],"next_cursor":null}`, nil},
		// A code of Problem.code that the answer's x-codes do not list.
		"/api/v1/products/other-code": {404, "application/problem+json", `{"type":"about:blank","title":"x","status":404,"code":"forbidden"}`, nil},
	}
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.URL.Path]
		for i := 0; i+1 < len(a.header); i += 2 {
			w.Header().Set(a.header[i], a.header[i+1])
		}
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	defer edge.Close()

	cases := []struct {
		method, path, token, body string
		broken                    bool
	}{
		{"GET", "/api/v1/products/good", "", "", false},
		{"GET", "/api/v1/products/missing", "", "", false},
		{"GET", "/api/v1/nowhere", "", "", false},
		{"GET", "/api/v1/products/no-sku", "", "", true},
		{"GET", "/api/v1/products/bad-uuid", "", "", true},
		{"GET", "/api/v1/products/teapot", "", "", true},
		{"GET", "/api/v1/products/bad-code", "", "", true},
		{"GET", "/api/v1/elsewhere", "", "", true},
		{"GET", "/api/v1/users/me", "", "", true},          // no token, yet 200
		{"GET", "/api/v1/users/me", "Bearer x", "", false}, // the token's validity is the edge's business
		{"PUT", "/api/v1/inventory/refused", "Bearer x", `{"on_hand":1,"price":3}`, true},
		{"PUT", "/api/v1/inventory/refused400", "Bearer x", `{"on_hand":1,"price":3}`, false},
		{"GET", "/api/v1/products/etag", "", "", false},
		{"GET", "/api/v1/products/etag404", "", "", true}, // ETag is declared for 200 and 304 only
		{"GET", "/api/v1/products/busy", "", "", false},
		{"GET", "/api/v1/products/late", "", "", false}, // 5XX
		{"GET", "/api/v1/products/late-retry", "", "", true},
		{"GET", "/api/v1/products/other", "", "", false}, // headers the document never names
		{"GET", "/api/v1/products/other-code", "", "", true},
		{"GET", "/api/v1/products?limit=&category=", "", "", false}, // sent empty: left out
		{"GET", "/api/v1/products?limit=abc", "", "", true},
		{"GET", "/api/v1/products?limit=&limit=abc", "", "", true},
		{"GET", "/api/v1/products?limit=5&limit=", "", "", false},
	}
	for _, tc := range cases {
		rec := &contract.Recorder{Contract: load(t)}
		client := &http.Client{Transport: rec}
		req, err := http.NewRequest(tc.method, edge.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tc.token != "" {
			req.Header.Set("Authorization", tc.token)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		got := rec.Violations()
		if rec.Checked() != 1 || (len(got) > 0) != tc.broken {
			t.Errorf("%s %s: checked %d, broken %v, want broken %v: %q", tc.method, tc.path, rec.Checked(), len(got) > 0, tc.broken, got)
		}
	}
}

// TestRecorderChecksTheDocumentsOtherPaths: the recorder checks the
// document's paths outside Prefix (GET /openapi.yaml, which the edge serves
// and may refuse with 413) as it checks the public routes, and leaves alone
// paths that are neither (the gateway's, the edge's own pages).
func TestRecorderChecksTheDocumentsOtherPaths(t *testing.T) {
	answers := map[string]canned{
		"/openapi.yaml?ok":       {200, "application/yaml", "openapi: 3.1.0\n"},
		"/openapi.yaml?json":     {200, "application/json", `{}`},
		"/openapi.yaml?too-big":  {413, "application/problem+json", `{"type":"about:blank","title":"x","status":413,"code":"body_too_large"}`},
		"/openapi.yaml?bad-code": {413, "application/problem+json", `{"type":"about:blank","title":"x","status":413,"code":"not_found"}`},
		"/docs?":                 {200, "text/html", "<html></html>"},
		"/function/api-docs?":    {200, "application/json", `{}`},
	}
	edge := cannedServer(t, answers)
	for _, tc := range []struct {
		path            string
		checked, broken bool
	}{
		{"/openapi.yaml?ok", true, false},
		{"/openapi.yaml?json", true, true},
		{"/openapi.yaml?too-big", true, false},
		{"/openapi.yaml?bad-code", true, true},
		{"/docs", false, false},
		{"/function/api-docs", false, false},
	} {
		rec := &contract.Recorder{Contract: load(t)}
		res, err := (&http.Client{Transport: rec}).Get(edge.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		got := rec.Violations()
		if (rec.Checked() == 1) != tc.checked || (len(got) > 0) != tc.broken {
			t.Errorf("GET %s: checked %d, broken %v, want checked %v, broken %v: %q", tc.path, rec.Checked(), len(got) > 0, tc.checked, tc.broken, got)
		}
	}
}

// canned is a cannedServer's answer.
type canned struct {
	status      int
	contentType string
	body        string
}

// cannedServer answers each request with answers[path+"?"+raw query].
func cannedServer(t *testing.T, answers map[string]canned) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.URL.Path+"?"+r.URL.RawQuery]
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRecorderChecksFunctionCallsThroughTheGateway: with FunctionCalls, a
// call of a public function straight through the gateway,
// /function/<name>/<path>, is checked as that function's answer on <path>
// (a 200 without its required members breaks the contract, a declared
// problem does not), and only when <name> is the function of <path>'s
// operation: another function's name, an internal function, a function's
// root and the gateway API are left alone. Without FunctionCalls none is
// checked, as before.
func TestRecorderChecksFunctionCallsThroughTheGateway(t *testing.T) {
	const me = `{"id":"01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f","email":"a@b.c","name":"A","role":"customer","created_at":"2026-12-01T00:00:00Z"}`
	answers := map[string]canned{
		"/function/get-me/api/v1/users/me?":          {200, "application/json", me},
		"/function/get-me/api/v1/users/me?short":     {200, "application/json", `{"id":"01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f"}`},
		"/function/get-me/api/v1/users/me?teapot":    {418, "application/problem+json", `{"type":"about:blank","title":"x","status":418,"code":"not_found"}`},
		"/function/login-user/api/v1/auth/login?bad": {401, "application/problem+json", `{"type":"about:blank","title":"x","status":401,"code":"unauthenticated"}`},
		"/function/login-user/api/v1/auth/login?ok":  {401, "application/problem+json", `{"type":"about:blank","title":"x","status":401,"code":"invalid_credentials"}`},
		"/function/get-cart/api/v1/users/me?short":   {200, "application/json", `{}`},
		"/function/reserve-stock?":                   {200, "application/json", `{}`},
		"/function/get-me?":                          {200, "application/json", `{}`},
		"/system/functions?":                         {200, "application/json", `[]`},
	}
	gateway := cannedServer(t, answers)
	for _, tc := range []struct {
		method, path, body string
		checked, broken    bool
	}{
		{"GET", "/function/get-me/api/v1/users/me", "", true, false},
		{"GET", "/function/get-me/api/v1/users/me?short", "", true, true},
		{"GET", "/function/get-me/api/v1/users/me?teapot", "", true, true},
		{"POST", "/function/login-user/api/v1/auth/login?bad", `{"email":"a@b.c","password":"p"}`, true, true},
		{"POST", "/function/login-user/api/v1/auth/login?ok", `{"email":"a@b.c","password":"p"}`, true, false},
		{"GET", "/function/get-cart/api/v1/users/me?short", "", false, false}, // not get-cart's path
		{"POST", "/function/reserve-stock", `{}`, false, false},
		{"GET", "/function/get-me", "", false, false},
		{"GET", "/system/functions", "", false, false},
	} {
		for _, on := range []bool{true, false} {
			rec := &contract.Recorder{Contract: load(t), FunctionCalls: on}
			req, err := http.NewRequest(tc.method, gateway.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer x")
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			res, err := (&http.Client{Transport: rec}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			got := rec.Violations()
			checked, broken := tc.checked && on, tc.broken && on
			if (rec.Checked() == 1) != checked || (len(got) > 0) != broken {
				t.Errorf("FunctionCalls %v: %s %s: checked %d, broken %v, want checked %v, broken %v: %q",
					on, tc.method, tc.path, rec.Checked(), len(got) > 0, checked, broken, got)
			}
		}
	}
}

// TestDocumentRefusesWhatTheCodeRefuses: bodies the functions refuse with
// 422 for a rule of the schema's kind (a length, a number of members, text
// that is only whitespace where the code trims and requires it) are refused
// by the document too, so a client that validates against it learns the rule
// before it asks. Each is checked as if it had been answered 200: the
// recorder then reports the request the contract refuses. The same bodies
// with text that is not blank are accepted (refused false), so each refusal
// is the blank text's and not another rule's.
func TestDocumentRefusesWhatTheCodeRefuses(t *testing.T) {
	c := load(t)
	const product = "/api/v1/products/01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f"
	order := func(name, line1, city, postalCode string) string {
		return `{"shipping_address":{"name":"` + name + `","line1":"` + line1 + `","city":"` + city +
			`","postal_code":"` + postalCode + `","country":"US"},"payment":{"token":"tok_visa"}}`
	}
	for _, tc := range []struct {
		method, path, body string
		refused            bool
	}{
		{"POST", "/api/v1/auth/login", `{"email":"","password":"secret-enough"}`, true},
		{"POST", "/api/v1/auth/login", `{"email":"a@b.co","password":""}`, true},
		{"POST", "/api/v1/auth/login", `{"email":"   ","password":"secret-enough"}`, true},
		{"PATCH", product, `{}`, true},
		{"PATCH", product, `{"price":{}}`, true},
		// Trimmed and then required (users.NewRegistration,
		// catalog.Product.Validate, orders.PlaceRequest.Validate).
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"   "}`, true},
		{"POST", "/api/v1/users", `{"email":"","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"   ","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"   ","category":"c","price":{"amount":100}}`, true},
		{"PATCH", product, `{"name":"   "}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"Mug","category":"   ","price":{"amount":100}}`, true},
		{"PATCH", product, `{"category":"   "}`, true},
		// A category filter is taken as sent (list-products,
		// search.ParseQuery): padded, it is not a slug.
		{"GET", "/api/v1/products?category=%20audio%20", "", true},
		{"GET", "/api/v1/search/products?category=%20audio%20", "", true},
		{"POST", "/api/v1/orders", order("   ", "1 Main St", "Springfield", "12345"), true},
		{"POST", "/api/v1/orders", order("Ann", "   ", "Springfield", "12345"), true},
		{"POST", "/api/v1/orders", order("Ann", "1 Main St", "   ", "12345"), true},
		{"POST", "/api/v1/orders", order("Ann", "1 Main St", "Springfield", "   "), true},
		// Only Unicode spaces (U+00A0, U+3000), which the code trims as it
		// trims ASCII ones: the patterns write them out.
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"\u00a0\u3000"}`, true},
		{"POST", "/api/v1/users", `{"email":"\u00a0","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/auth/login", `{"email":"\u3000","password":"secret-enough"}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"\u00a0","category":"c","price":{"amount":100}}`, true},
		{"PATCH", product, `{"name":"\u2003"}`, true},
		{"POST", "/api/v1/orders", order(`\u00a0`, "1 Main St", "Springfield", "12345"), true},
		{"POST", "/api/v1/orders", order("Ann", `\u00a0`, "Springfield", "12345"), true},
		{"POST", "/api/v1/orders", order("Ann", "1 Main St", `\u3000`, "12345"), true},
		{"POST", "/api/v1/orders", order("Ann", "1 Main St", "Springfield", `\u00a0`), true},
		// Registration's email rules (users.NewRegistration): one @, a
		// domain of two labels or more, no space, no empty run of the local
		// part, at most 64 bytes before the @ and 63 in a label.
		{"POST", "/api/v1/users", `{"email":"ann","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"ann@example","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"a@b@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"a..b@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":".ab@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"a b@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"a\u00a0b@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"a(b)@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"ann@-example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"ann@example_shop.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"` + strings.Repeat("a", 65) + `@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"ann@` + strings.Repeat("b", 64) + `.com","password":"secret-enough","name":"Ann"}`, true},
		// Counted in bytes once lower-cased: 33 characters of two bytes
		// are 66; U+023A is two bytes that lower-case to three.
		{"POST", "/api/v1/users", `{"email":"` + strings.Repeat("é", 33) + `@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"` + strings.Repeat("\u023a", 32) + `@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"ann@` + strings.Repeat("ü", 32) + `.de","password":"secret-enough","name":"Ann"}`, true},
		// A category's 64 characters are the slug's, padding aside.
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"Mug","category":"` + strings.Repeat("a", 65) + `","price":{"amount":100}}`, true},
		// Lengths counted as sent, padding included (catalog.checkSent,
		// users.NewRegistration, search.ParseQuery): one over once padded.
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":" ` + strings.Repeat("a", 100) + `"}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":" ` + strings.Repeat("a", 200) + `","category":"c","price":{"amount":100}}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"Mug","description":"` + strings.Repeat("x", 5000) + ` ","category":"c","price":{"amount":100}}`, true},
		{"PATCH", product, `{"name":"` + strings.Repeat("a", 200) + `\u00a0"}`, true},
		{"PATCH", product, `{"description":" ` + strings.Repeat("x", 5000) + `"}`, true},
		{"GET", "/api/v1/search/products?q=%20" + strings.Repeat("a", 200), "", true},
		// A SKU's letters are ASCII, in either case (catalog.upperASCII):
		// strings.ToUpper would have stored "ſku-1" as SKU-1.
		{"POST", "/api/v1/products", `{"sku":"ſku-1","name":"Mug","category":"c","price":{"amount":100}}`, true},
		{"PATCH", product, `{"sku":"ıtem-1"}`, true},
		{"PATCH", product, `{"sku":" sku-1 "}`, false},
		// Invisible formatting characters (Unicode category Cf) in an
		// email's local part, a registration's name and a product's name,
		// bidi controls in a description (users.NewRegistration,
		// catalog.checkSent); U+037E, which composes into ";".
		{"POST", "/api/v1/users", `{"email":"ad\u200bmin@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"a\u202eb@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"\ufeffab@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"a\u037eb@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"A\u200bnn"}`, true},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"\u2066Ann\u2069"}`, true},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"\u200b"}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"Mu\u200bg","category":"c","price":{"amount":100}}`, true},
		// The joiners U+200C and U+200D pass in a name only where they join
		// (formatchar.InName): after a virama, or a non-joiner between
		// letters of a joining script, as Persian and Indic names need them;
		// never between Latin letters, first, last, doubled or beside a space
		// or digit. An email holds neither.
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"Ad\u200dmin"}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"Mu\u200dg","category":"c","price":{"amount":100}}`, true},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"\u0646\u06cc\u06a9\u200c\u0646\u0627\u0645"}`, false},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"\u200cAnn"}`, true},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"Ann\u200d"}`, true},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"A\u200c\u200cnn"}`, true},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"Ann \u200cB"}`, true},
		{"POST", "/api/v1/users", `{"email":"a\u200cb@example.com","password":"secret-enough","name":"Ann"}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"\u06a9\u062a\u0627\u0628\u200c\u0647\u0627","category":"c","price":{"amount":100}}`, false},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"Mug\u200d","category":"c","price":{"amount":100}}`, true},
		{"PATCH", product, `{"name":"\u200cMug"}`, true},
		{"PATCH", product, `{"name":"M\u200d\u200dug"}`, true},
		{"PATCH", product, `{"name":"\u0915\u094d\u200d\u0937"}`, false},
		{"PATCH", product, `{"name":"\u202eMug"}`, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"Mug","description":"a \u202egum","category":"c","price":{"amount":100}}`, true},
		{"PATCH", product, `{"description":"a \u2067gum\u2069"}`, true},
		{"PATCH", product, `{"description":"Family \ud83d\udc68\u200d\ud83d\udc69 edition\nline two"}`, false},
		// The nil UUID names no product.
		{"POST", "/api/v1/orders", `{"items":[{"product_id":"00000000-0000-0000-0000-000000000000","quantity":1}],` + order("Ann", "1 Main St", "Springfield", "12345")[1:], true},
		// The same bodies with the text filled in (padded, as the code
		// trims it): accepted.
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":" Ann "}`, false},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":" a@b.co ","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":" Mug ","category":"c","price":{"amount":100}}`, false},
		{"PATCH", product, `{"name":" Mug "}`, false},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"Mug","category":" home-audio ","price":{"amount":100}}`, false},
		{"PATCH", product, `{"category":" home-audio "}`, false},
		{"GET", "/api/v1/products?category=home-audio", "", false},
		{"GET", "/api/v1/search/products?category=home-audio", "", false},
		{"POST", "/api/v1/orders", order(" Ann ", "1 Main St", "Springfield", "12345"), false},
		{"POST", "/api/v1/orders", order("Ann", " 1 Main St ", "Springfield", "12345"), false},
		{"POST", "/api/v1/orders", order("Ann", "1 Main St", " Springfield ", "12345"), false},
		{"POST", "/api/v1/orders", order("Ann", "1 Main St", "Springfield", " 12345 "), false},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":"\u00a0Ann\u3000"}`, false},
		{"POST", "/api/v1/users", `{"email":"\u00a0Jos\u00e9.P@ex\u00e4mple.co.uk ","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":"` + strings.Repeat("a", 64) + `@` + strings.Repeat("b", 63) + `.com","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":"` + strings.Repeat("é", 16) + `@example.com","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":"` + strings.Repeat("é", 32) + `@example.com","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":"` + strings.Repeat("日", 21) + `@example.com","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":"françois.dupont-lefebvre@example.fr","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":"info@bücherhalle-hamburg.de","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":"ann@` + strings.Repeat("ü", 31) + `.de","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/users", `{"email":"ada@İstanbul.example","password":"secret-enough","name":"Ann"}`, false},
		{"POST", "/api/v1/products", `{"sku":"\u00a0a-1\u00a0","name":"\u2003Mug","category":"\u00a0` + strings.Repeat("a", 64) + ` ","price":{"amount":100}}`, false},
		{"POST", "/api/v1/orders", `{"items":[{"product_id":"01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f","quantity":1}],` + order("Ann", "1 Main St", "Springfield", "12345")[1:], false},
		{"POST", "/api/v1/users", `{"email":"a@b.co","password":"secret-enough","name":" ` + strings.Repeat("a", 99) + `"}`, false},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":" ` + strings.Repeat("a", 199) + `","description":"` + strings.Repeat("x", 4999) + ` ","category":"c","price":{"amount":100}}`, false},
		{"PATCH", product, `{"name":"` + strings.Repeat("a", 199) + `\u00a0","description":" ` + strings.Repeat("x", 4999) + `"}`, false},
		{"GET", "/api/v1/search/products?q=%20" + strings.Repeat("a", 199), "", false},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer x")
		res := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}}
		err := c.Check(req, []byte(tc.body), res, []byte(`{}`))
		refused := err != nil && strings.Contains(err.Error(), "a request the contract refuses")
		switch {
		case tc.refused && !refused:
			t.Errorf("%s %s %s: the document accepts it (%v)", tc.method, tc.path, tc.body, err)
		case !tc.refused && refused:
			t.Errorf("%s %s %s: the document refuses it: %v", tc.method, tc.path, tc.body, err)
		}
	}
}

// TestRecorderRequiresTheHeadersAlwaysSent: the headers the functions send
// with every such answer (a new product's Location and ETag, a product's or
// a stock level's ETag, a 429's Retry-After) are required by the document, so
// an answer without one breaks the contract instead of passing as one that
// may leave it out.
func TestRecorderRequiresTheHeadersAlwaysSent(t *testing.T) {
	const id = "01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f"
	const product = `{"id":"` + id + `","sku":"A-1","name":"A","description":"","category":"c","price":{"amount":100,"currency":"USD"},"sold_count":0,"in_stock":true,"archived":false,"version":1,"created_at":"2026-12-01T00:00:00Z","updated_at":"2026-12-01T00:00:00Z"}`
	const stock = `{"product_id":"` + id + `","on_hand":1,"reserved":0,"available":1,"version":1}`
	const login = `{"email":"a@example.com","password":"correct horse battery"}`
	const problem = `Content-Type=application/problem+json`
	const limited = `{"type":"about:blank","title":"Too Many Requests","status":429,"code":"rate_limited"}`
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range strings.Fields(r.Header.Get("X-Send")) {
			name, value, _ := strings.Cut(h, "=")
			w.Header().Set(name, value)
		}
		status, _ := strconv.Atoi(r.Header.Get("X-Status"))
		if status != http.StatusNotModified && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		if status != http.StatusNotModified {
			_, _ = w.Write([]byte(r.Header.Get("X-Body")))
		}
	}))
	defer edge.Close()
	for _, tc := range []struct {
		method, path, body string
		status             int
		send, answer       string
		broken             bool
	}{
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"A","category":"c","price":{"amount":100}}`, 201, `Location=/api/v1/products/` + id + ` ETag="x-1"`, product, false},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"A","category":"c","price":{"amount":100}}`, 201, `ETag="x-1"`, product, true},
		{"POST", "/api/v1/products", `{"sku":"A-1","name":"A","category":"c","price":{"amount":100}}`, 201, `Location=/api/v1/products/` + id, product, true},
		{"GET", "/api/v1/products/" + id, "", 200, `ETag="x-1"`, product, false},
		{"GET", "/api/v1/products/" + id, "", 200, "", product, true},
		{"GET", "/api/v1/products/" + id, "", 304, "", "", true},
		{"PATCH", "/api/v1/products/" + id, `{"name":"B"}`, 200, "", product, true},
		{"GET", "/api/v1/inventory/" + id, "", 200, "", stock, true},
		{"PUT", "/api/v1/inventory/" + id, `{"on_hand":1}`, 200, `ETag="stock-1"`, stock, false},
		{"PUT", "/api/v1/inventory/" + id, `{"on_hand":1}`, 200, "", stock, true},
		{"POST", "/api/v1/auth/login", login, 429, problem + ` Retry-After=7`, limited, false},
		{"POST", "/api/v1/auth/login", login, 429, problem, limited, true},
		{"DELETE", "/api/v1/cart", "", 429, problem + ` Retry-After=7 RateLimit-Limit=1 RateLimit-Remaining=0 RateLimit-Reset=7`, limited, false},
		{"DELETE", "/api/v1/cart", "", 429, problem + ` RateLimit-Limit=1 RateLimit-Remaining=0 RateLimit-Reset=7`, limited, true},
	} {
		rec := &contract.Recorder{Contract: load(t)}
		req, err := http.NewRequest(tc.method, edge.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer x")
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("If-Match", "*")
		req.Header.Set("X-Send", tc.send)
		req.Header.Set("X-Status", strconv.Itoa(tc.status))
		req.Header.Set("X-Body", tc.answer)
		res, err := (&http.Client{Transport: rec}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if got := rec.Violations(); (len(got) > 0) != tc.broken {
			t.Errorf("%s %s %d with %q: broken %v, want %v: %q", tc.method, tc.path, tc.status, tc.send, len(got) > 0, tc.broken, got)
		}
	}
}

// TestDocumentSaysHowIntegersAreWritten: JSON Schema counts 100.0 and 1e2 as
// integers, the functions' decoder (encoding/json into int64) refuses them
// with 400 invalid_json; the document must say so, or a client that checks
// its bodies against the schema is refused for a body the schema passes.
func TestDocumentSaysHowIntegersAreWritten(t *testing.T) {
	var doc struct {
		Info struct {
			Description string `yaml:"description"`
		} `yaml:"info"`
		Components struct {
			Responses struct {
				BadRequest struct {
					Description string `yaml:"description"`
				} `yaml:"BadRequest"`
			} `yaml:"responses"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for where, text := range map[string]string{"info.description": doc.Info.Description, "BadRequest": doc.Components.Responses.BadRequest.Description} {
		if !strings.Contains(text, "`100.0`") || !strings.Contains(text, "`1e2`") {
			t.Errorf("%s does not say that an integer written with a fraction or an exponent (`100.0`, `1e2`) is 400 invalid_json", where)
		}
	}
}

// TestTheCurrencyMismatchProblemIsTheDocuments: the problem a mixed cart is
// answered with (cart.Mixed, written by fnhttp) is what the document declares
// for the cart's 409s and for a checkout of the cart (CurrencyMismatch), and
// one without its "currencies" member breaks the contract; create-order's
// other 409s stay plain problems.
func TestTheCurrencyMismatchProblemIsTheDocuments(t *testing.T) {
	c := load(t)
	usd, eur := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	named := cart.Mixed("", map[string][]uuid.UUID{"USD": {usd}, "EUR": {eur}})
	bare := fault.E(fault.Conflict, fault.CodeCurrencyMismatch, "a cart holds products of one currency")
	checkout := `{"shipping_address":{"name":"Ada","line1":"1 Loop Rd","city":"S","postal_code":"1","country":"US"},"payment":{"token":"tok_visa"}}`
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/cart", ""},
		{http.MethodPut, "/api/v1/cart/items/" + usd.String(), `{"quantity":0}`},
		{http.MethodPost, "/api/v1/orders", checkout},
	} {
		answers := []*fault.Error{named, bare}
		if tc.method == http.MethodPost {
			answers = append(answers, fault.E(fault.Conflict, fault.CodeOutOfStock, "not enough stock"))
		}
		for _, answer := range answers {
			rec := httptest.NewRecorder()
			fnhttp.WriteProblem(rec, answer)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("Authorization", "Bearer x")
			err := c.Check(req, []byte(tc.body), rec.Result(), rec.Body.Bytes())
			if ok := answer.Members != nil || answer.Code != fault.CodeCurrencyMismatch; (err == nil) != ok {
				t.Errorf("%s %s answered %s: contract says %v", tc.method, tc.path, rec.Body, err)
			}
		}
	}
}

// TestGetProductsNotFoundNamesTheProduct: get-product's 404 may carry the
// product_id member naming the product (what internal/catalogclient reads as
// "no such product"), and the document declares it as a UUID.
func TestGetProductsNotFoundNamesTheProduct(t *testing.T) {
	c := load(t)
	id := uuid.Must(uuid.NewV7())
	for _, tc := range []struct {
		members map[string]any
		ok      bool
	}{{map[string]any{"product_id": id}, true}, {nil, true}, {map[string]any{"product_id": "not-a-uuid"}, false}} {
		answer := fault.E(fault.NotFound, fault.CodeNotFound, "no such product")
		answer.Members = tc.members
		rec := httptest.NewRecorder()
		fnhttp.WriteProblem(rec, answer)
		req := httptest.NewRequest(http.MethodGet, "/api/v1/products/"+id.String(), nil)
		if err := c.Check(req, nil, rec.Result(), rec.Body.Bytes()); (err == nil) != tc.ok {
			t.Errorf("GET %s answered %s: contract says %v", req.URL.Path, rec.Body, err)
		}
	}
}

// TestTheDocumentSaysHowABadPathIsAnswered: the document's text rule says
// how a path holding a control character is answered, and it is what the
// code answers (fnhttp.CheckRequestText, which fnserve applies before every
// handler): a client reading the document expects that status and code.
func TestTheDocumentSaysHowABadPathIsAnswered(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/orders/%00", nil)
	p := fnhttp.ProblemFor(fnhttp.CheckRequestText(r))
	if want := fmt.Sprintf("A path that breaks the rule is %d `%s`", p.Status, p.Code); !load(t).Says(want) {
		t.Errorf("the code answers a path with a control character %d %s, and the document's text rule does not say %q", p.Status, p.Code, want)
	}
}

// TestSetCartItemsUnavailableNamesTheCartThatKeptChanging: set-cart-item
// answers 503 not only when a dependency is down but when it gives up on a
// cart that kept changing under its writes (cart.ErrChanged), where waiting
// for an outage to end is the wrong advice: its 503 says so, with the detail
// the client then reads.
func TestSetCartItemsUnavailableNamesTheCartThatKeptChanging(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var put struct {
		Responses map[string]struct {
			Description string `yaml:"description"`
		} `yaml:"responses"`
	}
	node := doc.Paths["/api/v1/cart/items/{product_id}"]["put"]
	if err := node.Decode(&put); err != nil {
		t.Fatal(err)
	}
	got := put.Responses["503"].Description
	if !strings.Contains(got, "kept changing") || !strings.Contains(got, cart.ErrChanged.Message) {
		t.Errorf("set-cart-item's 503 reads %q; want it to name the cart that kept changing and its detail %q", got, cart.ErrChanged.Message)
	}
}
