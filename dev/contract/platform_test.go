package contract_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/dev/contract"
	"github.com/shopfaas/shop/dev/faaslocal/edge"
	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/fntest"
)

// platformAnswer is one answer the platform gives an operation whatever its
// handler would say: fnserve's before the handler runs (or in its stead),
// and the edge's before the call reaches the function.
type platformAnswer struct {
	status int
	code   string
	who    string // fnserve, the edge, or one of its plugins
	on     string // the request or failure it answers
}

// fnserveProbes are requests fnserve refuses before any handler, or answers
// in a handler's stead. Only the requests are written here: the statuses and
// codes are what fnserve.Handler answers them (fnhttp.CheckRequestText,
// fnhttp.Lazy, its panic recovery), so a change there changes what every
// operation must declare.
var fnserveProbes = []struct {
	why   string
	query string // appended to the operation's path
	path  bool   // the first path parameter breaks the text rule (%01)
	build bool   // the function's Build fails (a database or secret missing)
	panic bool   // the handler panics
}{
	{why: "a query that does not parse", query: "?a=%zz"},
	{why: "a query parameter that breaks the text rule", query: "?a=%01"},
	{why: "a query parameter sent twice", query: "?a=1&a=2"},
	{why: "a path parameter that breaks the text rule", path: true},
	{why: "a Build that fails", build: true},
	{why: "a handler that panics", panic: true},
}

// edgeProbes are requests the local edge refuses by a plugin of
// gateway/kong.yml (plugin; "" for what it answers on every route) before
// the call reaches its upstream, or answers for an upstream that gives no
// answer. Only the requests are written here: the statuses and codes are
// what the edge answers them (dev/faaslocal/edge: request-size-limiting's
// tooLarge, jwt, upstreamFailed), behind a route of one service that has
// that plugin only, configured as gateway/kong.yml configures it. The
// rate-limiting plugin's 429 has its own tests (edge_test.go).
//
// The probes put the function directly behind the edge. In the real stack
// and in dev/faaslocal the OpenFaaS gateway sits between: the edge answers
// 502 only when the gateway itself is unreachable or drops the call, and
// 504 when the gateway does not answer within the service's read_timeout (a
// function that hangs gets its own 504 at exec_timeout first). The
// gateway's own answers (500 "Can't reach service", 503 "No endpoints
// available", 404 for a function not deployed, a bare 405) and
// of-watchdog's (its 504 at exec_timeout) are plain text or empty, which no
// operation can declare as a problem, and are not checked here.
var edgeProbes = []edgeProbe{
	{plugin: "request-size-limiting", why: "a body over its limit",
		probe: func(r *http.Request) { r.ContentLength = 1 << 40 }}, // refused on the Content-Length alone
	{plugin: "jwt", why: "no token"},
	// A minute, so that a slow run (-race on a loaded machine) cannot make
	// it the 504 of the probe below.
	{why: "an upstream (the OpenFaaS gateway) that drops the call",
		serve: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })},
	{why: "an upstream (the OpenFaaS gateway) that does not answer within the service's read_timeout",
		timeout: 50 * time.Millisecond,
		serve: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		})},
}

// edgeProbe is one of edgeProbes.
type edgeProbe struct {
	plugin  string
	why     string
	probe   func(r *http.Request) // changes the request sent
	serve   http.Handler          // the upstream behind the edge (nil: it answers 204)
	timeout time.Duration         // the service's read_timeout (0: a minute)
}

// edgeNeverAnswers are the plugins of the local edge that never answer a
// request of an operation before its upstream does, each with why. A plugin
// on a route of gateway/kong.yml that is neither here nor probed
// (edgeProbes, or rate-limiting's own tests in edge_test.go) fails
// TestEveryPluginOnARouteIsProbed: what it answers is not asked of the
// document.
var edgeNeverAnswers = map[string]string{
	"cors":                 "answers only preflight OPTIONS requests, which are no operation's; adds headers to others",
	"correlation-id":       "sets a request and response header",
	"opentelemetry":        "records a span",
	"prometheus":           "counts the request",
	"request-transformer":  "changes the request's headers",
	"response-transformer": "changes the answer's headers",
}

// unprobedPlugins lists the plugins decl puts on a route that are neither
// probed (edgeProbes; rate-limiting, by edge_test.go) nor in
// edgeNeverAnswers, as "service/route: plugin".
func unprobedPlugins(decl *edge.Declarative) []string {
	var out []string
	for _, s := range decl.Services {
		for _, r := range s.Routes {
			for _, p := range decl.PluginsFor(s.Name, r.Name) {
				probed := p.Name == "rate-limiting" || slices.ContainsFunc(edgeProbes, func(e edgeProbe) bool { return e.plugin == p.Name })
				if _, never := edgeNeverAnswers[p.Name]; !probed && !never {
					out = append(out, s.Name+"/"+r.Name+": "+p.Name)
				}
			}
		}
	}
	return out
}

// edgeAnswersOf lists, by operationId (a service of gateway/kong.yml is
// named after its function), the edge's answers to edgeProbes on its routes,
// as the edge resolves their plugins.
func edgeAnswersOf(t *testing.T, decl *edge.Declarative) map[string][]platformAnswer {
	t.Helper()
	out := map[string][]platformAnswer{}
	for _, s := range decl.Services {
		for _, r := range s.Routes {
			plugins := decl.PluginsFor(s.Name, r.Name)
			for _, p := range edgeProbes {
				var plugin []edge.Plugin
				if p.plugin != "" {
					i := slices.IndexFunc(plugins, func(pl edge.Plugin) bool { return pl.Name == p.plugin })
					if i < 0 {
						continue // not on this route
					}
					plugin = plugins[i : i+1]
				}
				status, code := probeEdge(t, plugin, decl.Consumers, p)
				who := "the edge"
				if p.plugin != "" {
					who = "the edge's " + p.plugin + " plugin"
				}
				out[s.Name] = append(out[s.Name], platformAnswer{status, code, who, p.why})
			}
		}
	}
	return out
}

// probeEdge serves one route, GET and POST /probe, through the local edge
// with plugins (their configuration as gateway/kong.yml's, with its
// consumers; the jwt key resolved to the tests' own) and p's read_timeout
// in front of p.serve, sends it a POST changed by p.probe, and returns the
// answer's status and problem code.
func probeEdge(t *testing.T, plugins []edge.Plugin, consumers []edge.Consumer, p edgeProbe) (int, string) {
	t.Helper()
	readTimeout := int(time.Minute / time.Millisecond)
	if p.timeout > 0 {
		readTimeout = int(p.timeout / time.Millisecond)
	}
	serve := p.serve
	decl := &edge.Declarative{FormatVersion: "3.0", Consumers: consumers, Services: []edge.Service{{
		Name: "probe", URL: "http://gateway:8080/function/probe", ReadTimeout: &readTimeout,
		Routes:  []edge.Route{{Name: "probe", Paths: []string{"~/probe$"}, Methods: []string{"GET", "POST"}}},
		Plugins: plugins,
	}}}
	if serve == nil {
		serve = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	}
	e, err := edge.New(decl, edge.Options{
		Local: map[string]http.Handler{"gateway:8080": serve}, Log: slog.New(slog.DiscardHandler),
		Getenv: func(name string) string {
			if name == "SHOP_JWT_VERIFY_KEY" {
				return fntest.JWTVerifyKey
			}
			return ""
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	req := httptest.NewRequest(http.MethodPost, "/probe", strings.NewReader("{}"))
	if p.probe != nil {
		p.probe(req)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var problem struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &problem); err != nil || problem.Code == "" {
		t.Fatalf("the edge answered the probe %d without a problem code: %s", rec.Code, rec.Body)
	}
	return rec.Code, problem.Code
}

// concrete is path with every {parameter} filled in, the first one with
// first.
func concrete(path, first string) string {
	var segs []string
	done := false
	for seg := range strings.SplitSeq(path, "/") {
		if strings.HasPrefix(seg, "{") {
			if !done {
				seg, done = first, true
			} else {
				seg = "01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f"
			}
		}
		segs = append(segs, seg)
	}
	return strings.Join(segs, "/")
}

// fnserveAnswers probes fnserve, serving op's function as in production,
// with fnserveProbes, and returns the answers it gave without reaching the
// handler (or in its stead).
func fnserveAnswers(t *testing.T, op contract.Operation) []platformAnswer {
	t.Helper()
	const id = "01936a6e-2f7c-7d3c-9f0e-3a1b2c3d4e5f"
	log := slog.New(slog.DiscardHandler)
	cfg := fnserve.Config{Name: op.ID, ExecTimeout: 5 * time.Second, MaxRequestBytes: 1 << 20}
	serve := func(build fnhttp.Builder, target string) (reached bool, res *http.Response) {
		h := fnserve.Handler(cfg, log, prometheus.NewRegistry(),
			fnhttp.NewLazy(func(c *config.Reader, l *slog.Logger) (http.Handler, error) {
				h, err := build(c, l)
				if err != nil {
					return nil, err
				}
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					reached = true
					h.ServeHTTP(w, r)
				}), nil
			}, config.New(func(string) string { return "" }), log))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(op.Method, target, nil))
		return reached, rec.Result()
	}
	ok := func(*config.Reader, *slog.Logger) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }), nil
	}
	if reached, res := serve(ok, concrete(op.Path, id)); !reached || res.StatusCode != http.StatusNoContent {
		t.Fatalf("%s %s: a plain request did not reach the handler (answered %d)", op.Method, op.Path, res.StatusCode)
	}
	var out []platformAnswer
	for _, p := range fnserveProbes {
		build, target := ok, concrete(op.Path, id)+p.query
		switch {
		case p.path:
			if !strings.Contains(op.Path, "{") {
				continue // no path of this operation breaks the rule
			}
			target = concrete(op.Path, "%01")
		case p.build:
			build = func(*config.Reader, *slog.Logger) (http.Handler, error) { return nil, errors.New("planted") }
		case p.panic:
			build = func(*config.Reader, *slog.Logger) (http.Handler, error) {
				return http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("planted") }), nil
			}
		}
		reached, res := serve(build, target)
		if reached && !p.panic {
			continue // the handler answers it: the operation's own answer
		}
		body, _ := io.ReadAll(res.Body)
		var problem struct {
			Code string `json:"code"`
		}
		if err := json.Unmarshal(body, &problem); err != nil || problem.Code == "" {
			t.Fatalf("%s %s, %s: fnserve answered %d without a problem code: %s", op.Method, op.Path, p.why, res.StatusCode, body)
		}
		out = append(out, platformAnswer{res.StatusCode, problem.Code, "fnserve", p.why})
	}
	return out
}

// operation names an operation of the document.
type operation struct{ method, path, id string }

// platformAnswers is, for each operation of api/openapi.yaml, what fnserve
// and the edge answer it whatever its handler would (fnserveAnswers,
// edgeAnswersOf). It probes once per run of the package; the tests that
// ask after a failed probe fail too.
func platformAnswers(t *testing.T) map[operation][]platformAnswer {
	t.Helper()
	platform.once.Do(func() { platform.answers = probePlatform(t) })
	if platform.answers == nil {
		t.Fatal("probing the platform failed (see the first test that asked)")
	}
	return platform.answers
}

var platform struct {
	once    sync.Once
	answers map[operation][]platformAnswer
}

func probePlatform(t *testing.T) map[operation][]platformAnswer {
	t.Helper()
	decl := loadKong(t)
	byEdge := edgeAnswersOf(t, decl)
	out := map[operation][]platformAnswer{}
	for _, op := range load(t).Operations() {
		answers := append(fnserveAnswers(t, op), byEdge[op.ID]...)
		if miss := missingAnswers(op, answers, pluginsOf(decl, op.ID)); len(miss) > 0 {
			t.Fatalf("%s %s: %s; found only %v", op.Method, op.Path, strings.Join(miss, "; "), answers)
		}
		out[operation{op.Method, op.Path, op.ID}] = answers
	}
	return out
}

// pluginsOf lists the names of the plugins decl puts on a route of service.
func pluginsOf(decl *edge.Declarative, service string) []string {
	var out []string
	for _, s := range decl.Services {
		if s.Name != service {
			continue
		}
		for _, r := range s.Routes {
			for _, p := range decl.PluginsFor(s.Name, r.Name) {
				out = append(out, p.Name)
			}
		}
	}
	return out
}

// missingAnswers lists the probes answers has no answer of for op: each of
// fnserveProbes (the path one only when op's path has a parameter), and
// each of edgeProbes whose plugin is one of plugins, those on op's routes
// (or that answers on every route).
func missingAnswers(op contract.Operation, answers []platformAnswer, plugins []string) []string {
	answered := func(who, why string) bool {
		return slices.ContainsFunc(answers, func(a platformAnswer) bool { return a.on == why && strings.HasPrefix(a.who, who) })
	}
	var out []string
	for _, p := range fnserveProbes {
		if (!p.path || strings.Contains(op.Path, "{")) && !answered("fnserve", p.why) {
			out = append(out, "fnserve gave no answer to "+p.why)
		}
	}
	for _, p := range edgeProbes {
		if (p.plugin == "" || slices.Contains(plugins, p.plugin)) && !answered("the edge", p.why) {
			out = append(out, "the edge gave no answer to "+p.why)
		}
	}
	return out
}

// undeclared lists what c does not declare of answers (platformAnswers),
// one line per operation, status and code, naming the operation and who
// answers.
func undeclared(c *contract.Contract, answers map[operation][]platformAnswer) []string {
	var out []string
	for op, list := range answers {
		for _, a := range list {
			if miss := c.Undeclared(op.method, op.path, a.status, a.code); miss != "" {
				out = append(out, fmt.Sprintf("%s: %s, which %s answers on %s", op.id, miss, a.who, a.on))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestEveryOperationDeclaresWhatThePlatformAnswersFirst: every operation
// declares, with its problem code, each answer fnserve gives before its
// handler runs (a query that does not parse, text that breaks the rule, a
// parameter sent twice, a path parameter that breaks it, a failed Build) or
// in its stead (a panic), and each answer the edge's plugins on its route
// give (413 over 64 KiB, 401 without a token) or the edge gives when its
// upstream, the OpenFaaS gateway, drops the call or does not answer in time
// (502, 504). Undeclared, the first such answer the
// integration suite meets fails it ("response code '422' does not exist").
func TestEveryOperationDeclaresWhatThePlatformAnswersFirst(t *testing.T) {
	for _, miss := range undeclared(load(t), platformAnswers(t)) {
		t.Error(miss)
	}
}

// TestAnOperationMissingAPlatformAnswerFails plants, in a copy of
// api/openapi.yaml, each mistake the check above is for, and wants it named
// with the operation and the status.
func TestAnOperationMissingAPlatformAnswerFails(t *testing.T) {
	cases := []struct {
		name, path, method string
		edit               func(responses map[string]any)
		want               []string
	}{
		{"only its own answers, as the newcomer's operation", "/api/v1/users/me", "get", func(r map[string]any) {
			for status := range r {
				if !slices.Contains([]string{"200", "401", "503", "5XX"}, status) {
					delete(r, status)
				}
			}
		}, []string{"GET /api/v1/users/me does not declare 400", "GET /api/v1/users/me does not declare 413",
			"GET /api/v1/users/me does not declare 422"}},
		{"no 400", "/api/v1/users/me", "get", func(r map[string]any) { delete(r, "400") }, []string{"GET /api/v1/users/me does not declare 400"}},
		{"no 422", "/api/v1/users/me", "get", func(r map[string]any) { delete(r, "422") }, []string{"GET /api/v1/users/me does not declare 422"}},
		{"no 413", "/api/v1/users/me", "get", func(r map[string]any) { delete(r, "413") }, []string{"GET /api/v1/users/me does not declare 413"}},
		{"no 401", "/api/v1/users/me", "get", func(r map[string]any) { delete(r, "401") }, []string{"GET /api/v1/users/me does not declare 401"}},
		{"no 404 with a path parameter", "/api/v1/orders/{id}", "get", func(r map[string]any) { delete(r, "404") },
			[]string{"GET /api/v1/orders/{id} does not declare 404"}},
		{"no 503, and 5XX does not list unavailable", "/api/v1/products", "post", func(r map[string]any) { delete(r, "503") },
			[]string{`POST /api/v1/products declares 503 (as 5XX) without the code "unavailable"`}},
		{"no 5XX", "/api/v1/products", "post", func(r map[string]any) { delete(r, "5XX") },
			[]string{"POST /api/v1/products does not declare 500"}},
		{"422 without invalid_text", "/api/v1/products/{id}", "get",
			func(r map[string]any) { r["422"] = map[string]any{"$ref": "#/components/responses/BadQuery"} },
			[]string{`GET /api/v1/products/{id} declares 422 (as 422) without the code "invalid_text"`}},
	}
	answers := platformAnswers(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var doc map[string]any
			if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
				t.Fatal(err)
			}
			op, _ := doc["paths"].(map[string]any)[tc.path].(map[string]any)[tc.method].(map[string]any)
			if op == nil {
				t.Fatalf("api/openapi.yaml has no %s %s", tc.method, tc.path)
			}
			tc.edit(op["responses"].(map[string]any))
			spec, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			c, err := contract.Parse(spec)
			if err != nil {
				t.Fatal(err)
			}
			misses := undeclared(c, answers)
			for _, want := range tc.want {
				if !slices.ContainsFunc(misses, func(m string) bool { return strings.Contains(m, want) }) {
					t.Errorf("want a failure saying %q, got %q", want, misses)
				}
			}
		})
	}
}

// TestEveryPluginOnARouteIsProbed: every plugin gateway/kong.yml puts on a
// route is probed (edgeProbes, or rate-limiting's tests) or known never to
// answer before the function (edgeNeverAnswers), so that a plugin added to
// kong.yml cannot answer what no operation declares unseen.
func TestEveryPluginOnARouteIsProbed(t *testing.T) {
	for _, miss := range unprobedPlugins(loadKong(t)) {
		t.Errorf("%s: the plugin is neither in edgeProbes nor in edgeNeverAnswers; probe what it answers before the function, or say why it never does", miss)
	}
}

// TestAnUnprobedPluginFails plants a plugin the probes do not know (Kong's
// key-auth, which answers 401) on every route of a copy of gateway/kong.yml.
func TestAnUnprobedPluginFails(t *testing.T) {
	decl := loadKong(t)
	decl.Plugins = append(decl.Plugins, edge.Plugin{Name: "key-auth"})
	misses := unprobedPlugins(decl)
	if len(misses) == 0 || !strings.HasSuffix(misses[0], ": key-auth") {
		t.Errorf("want every route named with key-auth, got %q", misses)
	}
}

// TestAPlatformAnswerDroppedFails drops, one at a time, each answer the
// platform gives an operation with a path parameter and a jwt route, and
// wants missingAnswers to name the probe left without one.
func TestAPlatformAnswerDroppedFails(t *testing.T) {
	var op contract.Operation
	for _, o := range load(t).Operations() {
		if o.Method == http.MethodGet && o.Path == "/api/v1/orders/{id}" {
			op = o
		}
	}
	if op.ID == "" {
		t.Fatal("api/openapi.yaml has no GET /api/v1/orders/{id}")
	}
	answers := platformAnswers(t)[operation{op.Method, op.Path, op.ID}]
	plugins := pluginsOf(loadKong(t), op.ID)
	if miss := missingAnswers(op, answers, plugins); len(miss) > 0 {
		t.Fatalf("the operation's answers already miss %v", miss)
	}
	if want := len(fnserveProbes) + len(edgeProbes); len(answers) != want {
		t.Fatalf("want %d answers (every probe's), got %d: %v", want, len(answers), answers)
	}
	for i, a := range answers {
		dropped := slices.Delete(slices.Clone(answers), i, i+1)
		if miss := missingAnswers(op, dropped, plugins); !slices.ContainsFunc(miss, func(m string) bool { return strings.HasSuffix(m, " to "+a.on) }) {
			t.Errorf("dropped %s's answer to %s: want it named, got %q", a.who, a.on, miss)
		}
	}
}
