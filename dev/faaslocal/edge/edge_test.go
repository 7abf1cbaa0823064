package edge

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// upstream answers with the path it received and the service it plays.
func upstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// docEdge serves doc's edge, its gateway service proxied to up, until the
// test ends.
func docEdge(t *testing.T, up *httptest.Server) *httptest.Server {
	t.Helper()
	_, srv := edgeOf(t, doc, up)
	return srv
}

// edgeOf serves the edge of the declaration text, its gateway service
// proxied to up, until the test ends.
func edgeOf(t *testing.T, text string, up *httptest.Server) (*Edge, *httptest.Server) {
	t.Helper()
	e := newEdge(t, text, Options{Upstreams: map[string]string{"gateway:8080": strings.TrimPrefix(up.URL, "http://")}})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv
}

// newEdge is the edge of the declaration text with opts; the test fails if
// the text does not parse or compile.
func newEdge(t *testing.T, text string, opts Options) *Edge {
	t.Helper()
	decl, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(decl, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const doc = `
_format_version: "3.0"
services:
  - name: short-prefix
    url: http://gateway:8080/function/short-prefix
    routes:
      - name: short-prefix
        paths: [/api]
        strip_path: false
  - name: long-prefix
    url: http://gateway:8080/function/long-prefix
    routes:
      - name: long-prefix
        paths: [/api/v1/products]
        strip_path: false
  - name: regex
    url: http://gateway:8080/function/regex
    routes:
      - name: regex
        paths: ["~/api/v1/products/[0-9a-f-]+$"]
        methods: [GET]
        strip_path: false
  - name: stripped
    url: http://gateway:8080/function/stripped
    routes:
      - name: stripped
        paths: [/strip]
  - name: stripped-regex
    url: http://gateway:8080/svc/
    routes:
      - name: stripped-regex
        paths: ["~/re/[a-z]+"]
        strip_path: true
plugins:
  - name: correlation-id
    config: {header_name: X-Correlation-ID, generator: uuid, echo_downstream: true}
  - name: request-size-limiting
    service: stripped
    config: {allowed_payload_size: 10, size_unit: bytes}
`

func TestRoutingFollowsKongPriorities(t *testing.T) {
	up := upstream(t)
	srv := docEdge(t, up)

	tests := []struct {
		method, path, body string
		wantStatus         int
		want               string
	}{
		// regex before prefix, whatever the declaration order
		{"GET", "/api/v1/products/0190-ab", "", 200, "GET /function/regex/api/v1/products/0190-ab"},
		// regex anchored with $: a longer path falls back to the longest prefix
		{"GET", "/api/v1/products/0190-ab/stock", "", 200, "GET /function/long-prefix/api/v1/products/0190-ab/stock"},
		// methods restrict the regex route; the prefix route still matches
		{"POST", "/api/v1/products/0190-ab", "", 200, "POST /function/long-prefix/api/v1/products/0190-ab"},
		// longest prefix first, prefixes are plain string prefixes
		{"GET", "/api/v1/products?limit=5", "", 200, "GET /function/long-prefix/api/v1/products?limit=5"},
		{"GET", "/api/v1/productsx", "", 200, "GET /function/long-prefix/api/v1/productsx"},
		{"GET", "/api/other", "", 200, "GET /function/short-prefix/api/other"},
		// strip_path defaults to true
		{"GET", "/strip/a/b", "", 200, "GET /function/stripped/a/b"},
		{"GET", "/strip", "", 200, "GET /function/stripped"},
		{"GET", "/re/abc/def", "", 200, "GET /svc/def"},
		// service-scoped plugin applies to its service only
		{"POST", "/strip/x", "01234567890", 413, ""},
		{"POST", "/api/x", "01234567890", 200, "POST /function/short-prefix/api/x"},
		{"GET", "/nothing", "", 404, ""},
		// dot segments are resolved before matching, as Kong does, so no
		// function sees them (issue 12: its mux answered 301 with an
		// internal Location)
		{"GET", "/api/v1/products/0190-ab/..", "", 200, "GET /function/long-prefix/api/v1/products/"},
		{"GET", "/api/v1/products/../../x/./y", "", 200, "GET /function/short-prefix/api/x/y"},
		{"GET", "/nothing/../api/v1/products/0190-ab", "", 200, "GET /function/regex/api/v1/products/0190-ab"},
		{"GET", "/api/v1/products/%2e%2e/%2E%2E/z", "", 200, "GET /function/short-prefix/api/z"},
		{"GET", "/../..", "", 404, ""},
		// Kong's normalisation (kongNormalize): slashes merged; an encoded
		// slash stays one, so it makes no dot segment and reaches the
		// upstream encoded; octets other than reserved characters decoded
		{"GET", "//api/v1//products/0190-ab", "", 200, "GET /function/regex/api/v1/products/0190-ab"},
		{"GET", "/api/v1/products/0190-ab%2f..%2F..%2Fx", "", 200, "GET /function/long-prefix/api/v1/products/0190-ab%2F..%2F..%2Fx"},
		{"GET", "/api/v1/products/%30190-%61b", "", 200, "GET /function/regex/api/v1/products/0190-ab"},
		{"GET", "/api/v1/products/%252e%252e/x", "", 200, "GET /function/long-prefix/api/v1/products/%252e%252e/x"},
		// what normalising decoded goes upstream encoded again, as Kong writes it
		{"GET", "/api/v1/products/a%20b%2fc%C3%A9", "", 200, "GET /function/long-prefix/api/v1/products/a%20b%2Fc%C3%A9"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.wantStatus, b)
			}
			if tc.want != "" && string(b) != tc.want {
				t.Errorf("upstream saw %q, want %q", b, tc.want)
			}
			if res.Header.Get("X-Correlation-ID") == "" {
				t.Error("no correlation id")
			}
		})
	}
}

func TestUpstreamDownIs502(t *testing.T) {
	e := newEdge(t, `
_format_version: "3.0"
services:
  - name: down
    url: http://127.0.0.1:1/function/down
    routes: [{name: down, paths: [/down]}]
`, Options{})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/down", nil))
	if rec.Code != http.StatusBadGateway || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

func TestRefusesWhatItCannotHonour(t *testing.T) {
	bad := map[string]string{
		"format": `_format_version: "2.1"`,
		"hosts": `
_format_version: "3.0"
services:
  - name: s
    url: http://gateway:8080/function/s
    routes: [{name: r, paths: [/a], hosts: [example.com]}]`,
		"regex": `
_format_version: "3.0"
services:
  - name: s
    url: http://gateway:8080/function/s
    routes: [{name: r, paths: ["~/a("]}]`,
		"unknown plugin": `
_format_version: "3.0"
plugins: [{name: bot-detection}]`,
		"unknown plugin field": `
_format_version: "3.0"
plugins: [{name: request-size-limiting, config: {allowed_payload_sise: 1}}]`,
		"plugin for unknown service": `
_format_version: "3.0"
plugins: [{name: correlation-id, service: nope}]`,
		// Kong refuses a repeated username or custom_id (each unique among
		// its kind), so the two would be one count of limit_by consumer.
		"repeated username": `
_format_version: "3.0"
consumers: [{username: X}, {username: X}]`,
		"repeated custom_id": `
_format_version: "3.0"
consumers: [{custom_id: X}, {username: Y, custom_id: X}]`,
	}
	for name, src := range bad {
		t.Run(name, func(t *testing.T) {
			decl, err := Parse([]byte(src))
			if err == nil {
				_, err = New(decl, Options{})
			}
			if err == nil {
				t.Error("accepted")
			}
		})
	}
}

// Kong runs a plugin only for the protocols it lists, and matches a route
// only for its own: a jwt for grpc alone never runs on HTTP, so its route
// would be open on Kong and guarded here. A route or plugin whose protocols
// leave out http or https is refused. A list that holds both (Kong's
// defaults, with grpc and grpcs for plugins) is accepted: the local edge is
// HTTP.
func TestProtocolsMustIncludeHTTPAndHTTPS(t *testing.T) {
	bad := map[string]string{
		"route for https only": `
_format_version: "3.0"
services:
  - name: s
    url: http://gateway:8080/function/s
    routes: [{name: r, paths: [/a], protocols: [https]}]`,
		"global plugin for grpc only": `
_format_version: "3.0"
plugins: [{name: correlation-id, protocols: [grpc, grpcs]}]`,
		"service plugin for grpc only": `
_format_version: "3.0"
services:
  - name: s
    url: http://gateway:8080/function/s
    routes: [{name: r, paths: [/a]}]
    plugins: [{name: jwt, protocols: [grpc, grpcs]}]`,
		"route plugin for http only": `
_format_version: "3.0"
services:
  - name: s
    url: http://gateway:8080/function/s
    routes: [{name: r, paths: [/a], plugins: [{name: jwt, protocols: [http]}]}]`,
	}
	for name, src := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(src)); err == nil || !strings.Contains(err.Error(), "protocols") {
				t.Errorf("got %v, want an error naming protocols", err)
			}
		})
	}
	decl, err := Parse([]byte(`
_format_version: "3.0"
services:
  - name: s
    url: http://gateway:8080/function/s
    routes: [{name: r, paths: [/a], protocols: [http, https], plugins: [{name: correlation-id, protocols: [grpc, grpcs, http, https]}]}]
plugins: [{name: request-size-limiting, protocols: [https, http]}]`))
	if err == nil {
		_, err = New(decl, Options{})
	}
	if err != nil {
		t.Errorf("http and https refused: %v", err)
	}
}

// The project's kong.yml loads and compiles.
func TestProjectKongFile(t *testing.T) {
	decl, err := Load("../../../gateway/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(decl, Options{Getenv: testEnv})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, s := range decl.Services {
		for _, r := range s.Routes {
			if r.StripPath == nil || *r.StripPath {
				t.Errorf("route %s must set strip_path: false", r.Name)
			}
		}
	}
}

// testEnv resolves the Kong file's vault references in tests.
func testEnv(name string) string {
	if name == "SHOP_JWT_VERIFY_KEY" {
		return testVerifyKey
	}
	return ""
}

// testKey signs the tests' tokens; testVerifyKey is its PEM public key, the
// jwt-verify-key the Kong file's credential resolves to.
var testKey, testVerifyKey = func() (ed25519.PrivateKey, string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return priv, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}()

// testVerifyDER is the DER (PKIX) bytes of testVerifyKey.
func testVerifyDER() []byte {
	b, _ := pem.Decode([]byte(testVerifyKey))
	return b.Bytes
}

// kongNormalize is Kong 3's path normalisation (kong/tools/uri.lua).
func TestKongNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v1/products":                  "/api/v1/products",
		"/api/v1/products/%2e%2E/x":         "/api/v1/x",
		"/a/%2f..%2F/b":                     "/a/%2F..%2F/b",
		"/a/%3f%23%25%5b%5D%40%21%2a":       "/a/%3F%23%25%5B%5D%40%21%2A",
		"/a/%41%7e%2D%5f%20":                "/a/A~-_ ",
		"/a/%252e%252e/b":                   "/a/%252e%252e/b",
		"//a///b//":                         "/a/b/",
		"/a/b/../../../c":                   "/c",
		"/a/%":                              "/a/%",
		"/a/%4":                             "/a/%4",
		"/a/%zz":                            "/a/%zz",
		"/api/v1/users%2Fme":                "/api/v1/users%2Fme",
		"/api/v1/products/x%2f..%2f..%2fme": "/api/v1/products/x%2F..%2F..%2Fme",
	} {
		if got := kongNormalize(in); got != want {
			t.Errorf("kongNormalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// A client's X-Forwarded-Port and X-Forwarded-Prefix do not reach the
// upstream: Kong sets the first itself and the second only for a route that
// strips its path, whatever an untrusted client sent (api-docs builds the
// document's servers entry from them).
func TestClientForwardedPortAndPrefixDoNotReachTheUpstream(t *testing.T) {
	clientHeadersDoNotReachTheUpstream(t, "X-Forwarded-Port", "4444", "X-Forwarded-Prefix", "/evil")
}

// A client's X-Real-IP and X-Forwarded-Path do not reach the upstream
// either: Kong overwrites both with its own (the address it saw, the path
// asked for), so behind Kong no function ever sees a client's, and the local
// edge, which sets neither, must not pass one on. Until 2026-12-07 it did.
func TestClientRealIPAndForwardedPathDoNotReachTheUpstream(t *testing.T) {
	clientHeadersDoNotReachTheUpstream(t, "X-Real-IP", "203.0.113.7", "X-Forwarded-Path", "/evil")
}

// clientHeadersDoNotReachTheUpstream sends headers a and b with the values
// given through the edge and fails unless the upstream saw neither.
func clientHeadersDoNotReachTheUpstream(t *testing.T, a, aValue, b, bValue string) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get(a)+"|"+r.Header.Get(b))
	}))
	defer up.Close()
	srv := docEdge(t, up)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/products/0190-ab", nil)
	req.Header.Set(a, aValue)
	req.Header.Set(b, bValue)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "|" {
		t.Errorf("the upstream saw %s|%s %q, want neither", a, b, body)
	}
}

// The path is normalised as the client sent it, whatever bytes it holds: a
// raw { or | made Go's EscapedPath re-escape the decoded path, where %2F is
// a slash, so ..%2F became a dot segment again (helper-139).
func TestRawRequestLinesKeepTheirEncodedSlashes(t *testing.T) {
	up := upstream(t)
	srv := docEdge(t, up)
	for target, want := range map[string]string{
		"/api/v1/products/x{%2F..%2F0190-ab":             "GET /function/long-prefix/api/v1/products/x%7B%2F..%2F0190-ab",
		"/api/v1/products/x|%2F..%2F..%2F..%2Fstrip%2Fa": "GET /function/long-prefix/api/v1/products/x%7C%2F..%2F..%2F..%2Fstrip%2Fa",
		"/api/v1/products/\xc3\xa9%2F..%2F0190-ab":       "GET /function/long-prefix/api/v1/products/%C3%A9%2F..%2F0190-ab",
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		conn.Close()
		if string(b) != want {
			t.Errorf("%q: the upstream saw %q (%d), want %q", target, b, res.StatusCode, want)
		}
	}
}

// Kong matches routes before any plugin runs, so a preflight no route
// matches (an unrouted path, or a route that does not list OPTIONS) gets
// Kong's 404 and no CORS grant: cors never sees it. The local edge answers
// such a preflight 404 (the problem of any unmatched request) too, and a
// routed preflight 200 with the grant.
func TestCORSAnswersOnlyRoutedPreflights(t *testing.T) {
	e := newEdge(t, `
_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:1/function/s
    routes:
      - {name: with-options, paths: ["~/with$"], methods: [GET, OPTIONS]}
      - {name: without-options, paths: ["~/without$"], methods: [GET]}
plugins:
  - name: cors
    config: {origins: [http://localhost:3000], methods: [GET]}
`, Options{})
	for path, want := range map[string]int{"/with": http.StatusOK, "/without": http.StatusNotFound, "/nowhere": http.StatusNotFound} {
		r := httptest.NewRequest(http.MethodOptions, path, nil)
		r.Header.Set("Origin", "http://localhost:3000")
		r.Header.Set("Access-Control-Request-Method", "GET")
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, r)
		granted := rec.Header().Get("Access-Control-Allow-Methods") != ""
		if rec.Code != want || granted != (want == http.StatusOK) {
			t.Errorf("preflight of %s: %d (Access-Control-Allow-Methods %q), want %d", path, rec.Code, rec.Header().Get("Access-Control-Allow-Methods"), want)
		}
		if want == http.StatusNotFound && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("preflight of %s: Content-Type %q, want the 404 problem", path, rec.Header().Get("Content-Type"))
		}
	}
}

// Kong forwards the query as the client sent it (nginx checks the escapes
// of the path, not of the query): a malformed one (?a=%zz, a ';') reaches
// the function, which answers it 400 invalid_request
// (fnhttp.CheckRequestText), over TCP and in process alike. Until
// 2026-12-07 the local edge re-encoded it without what did not parse, as
// httputil.ReverseProxy does, so a function answered as if it were absent:
// GET /api/v1/users/me?a=%zz with a valid token got get-me's own answer
// (401 for the probe's token, whose subject has no account) instead of 400.
func TestAQueryReachesTheUpstreamAsSent(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.RawQuery) })
	tcp := httptest.NewServer(echo)
	t.Cleanup(tcp.Close)
	edges := map[string]*Edge{
		"over TCP": newEdge(t, doc, Options{Upstreams: map[string]string{"gateway:8080": strings.TrimPrefix(tcp.URL, "http://")}}),
		"in process": newEdge(t, doc, Options{Upstreams: map[string]string{"gateway:8080": "127.0.0.1:1"},
			Local: map[string]http.Handler{"gateway:8080": echo}}),
	}
	for name, e := range edges {
		t.Cleanup(func() { _ = e.Close() })
		srv := httptest.NewServer(e)
		t.Cleanup(srv.Close)
		for _, q := range []string{"a=%zz", "a=1;b=2", "a=%zz&b=%41", "a=%"} {
			res, err := http.Get(srv.URL + "/api/v1/products/0190-ab?" + q)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(b) != q {
				t.Errorf("%s: ?%s: the upstream saw the query %q (%d), want it as sent", name, q, b, res.StatusCode)
			}
		}
	}
}
