package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/docassets"
	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/proctest"
)

// chromiumNames are the names Debian's and other distributions' Chromium
// installs under.
var chromiumNames = []string{"chromium", "chromium-browser"}

// chromium is Debian's Chromium: missing, the test fails (skipped with -short).
func chromium(t *testing.T) string {
	t.Helper()
	return proctest.Binary(t, "Debian: apt-get install chromium", chromiumNames...)
}

// TestAPIReferencePageCallsTheEdge opens the API reference the local edge
// routes to the api-docs function as Kong does (/docs, Swagger UI vendored
// from npm and embedded in the function) in headless Chromium, waits for it to
// render the operations of api/openapi.yaml, runs GET /api/v1/products with
// its "Try it out" and finds the product the test made in the answer the
// page shows; every request the browser made stayed on the edge's own
// origin, and the page carries a Content-Security-Policy of default-src
// 'self'.
func TestAPIReferencePageCallsTheEdge(t *testing.T) {
	browser := chromium(t)
	if !docassets.Present(docassets.Dir(runtimetest.Root(t))) {
		t.Fatal("the page's assets are missing: TestMain vendors them when Chromium is installed")
	}
	s := startShop(t, []string{"list-products", "get-product", "set-stock", "api-docs"}, nil, nil)
	p := s.product(t, "DOCS-"+s.Suffix, 1999, 3)
	badCursor(t, s.EdgeURL+"/api/v1/products", "")
	edge, err := url.Parse(s.EdgeURL)
	if err != nil {
		t.Fatal(err)
	}

	res, err := http.Get(s.EdgeURL + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); res.StatusCode != http.StatusOK || !strings.HasPrefix(csp, "default-src 'self';") {
		t.Fatalf("GET /docs: %d, Content-Security-Policy %q, want 200 and default-src 'self'", res.StatusCode, csp)
	}

	// The browser lives as long as bctx, which has no deadline (chromedp's
	// rule for the context of the first Run); each step gets one below.
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()

	// Every request the browser sends, and every security message it logs:
	// a load the CSP blocked never becomes a request, only such a message.
	var mu sync.Mutex
	var requested, blocked []string
	if err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if e.Request != nil {
				requested = append(requested, e.Request.URL)
			}
		case *cdplog.EventEntryAdded:
			if e.Entry != nil && e.Entry.Source == "security" {
				blocked = append(blocked, e.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	step, cancelSteps := context.WithTimeout(bctx, 3*time.Minute)
	defer cancelSteps()

	const op = "#operations-catalog-list-products"
	sel := func(s string) chromedp.CSS { return chromedp.CSS(op + " " + s) }
	if err := chromedp.Do(step,
		chromedp.Navigate(s.EdgeURL+"/docs"),
		chromedp.WaitVisible(chromedp.CSS(op)),
		chromedp.Click(sel(".opblock-summary")),
		chromedp.Click(sel(".try-out__btn")),
		chromedp.Click(sel(".execute")),
		chromedp.WaitVisible(sel(".live-responses-table tr.response .response-col_status")),
	); err != nil {
		t.Fatalf("driving the page: %v", err)
	}
	status := run(t, step, chromedp.Text(sel(".live-responses-table tr.response .response-col_status")))
	body := run(t, step, chromedp.Text(sel(".live-responses-table .response-col_description pre")))
	pageCSP := run(t, step, chromedp.AttributeValue(chromedp.CSS(`meta[http-equiv="Content-Security-Policy"]`), "content")).Value
	// A script of the page reaches the API through the same origin.
	fetched := run(t, step, chromedp.Evaluate[string](
		`fetch("/api/v1/products?category=test&limit=1").then(r => r.json()).then(j => j.items[0].id)`, chromedp.EvalAwaitPromise))
	if !strings.HasPrefix(pageCSP, "default-src 'self';") {
		t.Errorf("page's CSP meta = %q", pageCSP)
	}
	if strings.TrimSpace(status) != "200" || !strings.Contains(body, p.ID.String()) || !strings.Contains(body, p.Name) {
		t.Errorf("try it out of GET /api/v1/products shows status %q and body %q, want 200 with product %s", status, body, p.ID)
	}
	if fetched != p.ID.String() {
		t.Errorf("fetch from the page found product %q, want %s", fetched, p.ID)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, m := range blocked {
		t.Errorf("the page tried to load something its CSP forbids: %s", m)
	}
	sawAPI := false
	for _, u := range requested {
		ru, err := url.Parse(u)
		if err != nil || ru.Scheme != "http" || ru.Host != edge.Host {
			if !strings.HasPrefix(u, "data:") {
				t.Errorf("the page requested %s, outside the edge %s", u, edge.Host)
			}
			continue
		}
		if strings.HasPrefix(ru.Path, "/api/v1/products") {
			sawAPI = true
		}
	}
	if !sawAPI {
		t.Errorf("no request of the page reached /api/v1/products: %q", requested)
	}
}

// vendorDocs vendors the page's assets (make api-docs) before any test
// builds the functions binary, which embeds them in api-docs: when they are
// missing and Chromium is there to test the page (without it the page's test
// fails, or is skipped with -short). Without them api-docs still serves the
// document.
func vendorDocs() error {
	if !slices.ContainsFunc(chromiumNames, func(n string) bool { _, err := exec.LookPath(n); return err == nil }) {
		return nil
	}
	if dir := docassets.Dir("../.."); !docassets.Present(dir) { // the module root
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := docassets.Vendor(ctx, dir); err != nil {
			return fmt.Errorf("vendoring the API reference page's assets (make api-docs): %w", err)
		}
	}
	return nil
}

// The api-docs function through the gateway, as faas-cli invoke and the
// edge reach it, and through the edge's Kong route: the document names the
// origin each caller used (the edge's, from its X-Forwarded-Host, which the
// gateway passes on), and the page comes with its CSP and the headers of
// Kong's global plugins.
func TestAPIDocsThroughTheGatewayAndTheEdge(t *testing.T) {
	s := startShop(t, []string{"api-docs"}, nil, nil)
	for _, tc := range []struct{ base, path, server string }{
		{s.GatewayURL, "/function/api-docs/openapi.yaml", s.GatewayURL},
		{s.GatewayURL, "/function/api-docs", s.GatewayURL}, // the root, as faas-cli invoke calls it
		{s.EdgeURL, "/openapi.yaml", s.EdgeURL},
	} {
		res, err := http.Get(tc.base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var doc struct {
			Servers []struct{ URL string } `yaml:"servers"`
			Paths   map[string]any         `yaml:"paths"`
		}
		if err := yaml.Unmarshal(body, &doc); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s%s: %d %v: %.300s", tc.base, tc.path, res.StatusCode, err, body)
		}
		if len(doc.Servers) != 1 || doc.Servers[0].URL != tc.server || doc.Paths["/api/v1/products"] == nil {
			t.Errorf("GET %s%s: servers %+v, want only %s (and every path)", tc.base, tc.path, doc.Servers, tc.server)
		}
	}
	want := http.StatusServiceUnavailable // an image built before make api-docs
	if docassets.Present(docassets.Dir(runtimetest.Root(t))) {
		want = http.StatusOK
	}
	for _, path := range []string{"/docs", "/docs/swagger-ui.css"} {
		res, err := http.Get(s.EdgeURL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want || !strings.HasPrefix(res.Header.Get("Content-Security-Policy"), "default-src 'self';") ||
			res.Header.Get("Strict-Transport-Security") == "" || res.Header.Get("X-Correlation-ID") == "" {
			t.Errorf("GET %s through the edge: %d %v, want %d with the CSP and Kong's global headers", path, res.StatusCode, res.Header, want)
		}
	}
	for _, path := range []string{"/docs/a/b", "/openapi.yml", "/docs/package.json"} {
		res, err := http.Get(s.EdgeURL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s through the edge: %d, want 404", path, res.StatusCode)
		}
	}
}

// run runs one chromedp action, failing the test on error.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("page: %v", err)
	}
	return v
}
