package integration

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/shopfaas/shop/dev/apidocs"
	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
)

// chromium is Debian's Chromium, or a skip when it is missing and
// SHOP_REQUIRE_BROWSER is unset (CI sets it, and installs chromium: .ci/run).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SHOP_REQUIRE_BROWSER") != "" {
		t.Fatal("chromium is not installed and SHOP_REQUIRE_BROWSER is set (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium; SHOP_REQUIRE_BROWSER=1 makes this a failure)")
	return ""
}

// TestAPIReferencePageCallsTheEdge opens the local edge's API reference
// (/docs, Swagger UI vendored from npm) in headless Chromium, waits for it to
// render the operations of api/openapi.yaml, runs GET /api/v1/products with
// its "Try it out" and finds the product the test made in the answer the
// page shows; every request the browser made stayed on the edge's own
// origin, and the page carries a Content-Security-Policy of default-src
// 'self'.
func TestAPIReferencePageCallsTheEdge(t *testing.T) {
	browser := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if dir := apidocs.Dir(runtimetest.Root(t)); !apidocs.Present(dir) {
		if err := apidocs.Vendor(ctx, dir); err != nil {
			t.Fatalf("vendoring the page's assets (make api-docs): %v", err)
		}
	}
	s := startShop(t, []string{"list-products", "get-product", "set-stock"}, nil, nil)
	p := s.product(t, "DOCS-"+s.Suffix, 1999, 3)
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

// run runs one chromedp action, failing the test on error.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("page: %v", err)
	}
	return v
}
