package main

import (
	"os/exec"
	"strings"
	"testing"
)

// deniedDeps are packages (or prefixes ending in /) that must never be linked
// into a function process: test and development code, the browser and the
// OpenAPI tooling of the dev tools, and gRPC, which no function speaks — the
// OTLP exporter of otlptracehttp linked it (66 gRPC packages and their
// package initialisation, in every function's resident memory;
// docs/performance.md, "Memory (item 5)").
var deniedDeps = []string{
	"testing",
	"net/http/httptest",
	"google.golang.org/grpc",
	"google.golang.org/grpc/",
	"github.com/grpc-ecosystem/",
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc",
	// telemetry writes the OTLP request with protowire (otlpwire.go): the
	// generated types' descriptors cost every function ~0.35 MiB idle.
	"go.opentelemetry.io/proto/otlp/",
	// telemetry makes otelhttp's HTTP spans itself (httpspans.go): otelhttp's
	// semconv and metric packages cost every function ~0.25 MiB idle.
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp/",
	"github.com/felixge/httpsnoop",
	"github.com/chromedp/",
	"github.com/getkin/kin-openapi/",
	"gopkg.in/yaml.v3", // only internal/apidocs used it, to rewrite one entry of our own document
	// internal/search/meili speaks Meilisearch's HTTP API itself: the client
	// library and its brotli encoder cost every function ~0.75 MiB idle.
	"github.com/meilisearch/meilisearch-go",
	"github.com/andybalholm/brotli",
	"github.com/andybalholm/brotli/",
	// smtpmail sends through net/smtp with its own MIME writer: go-mail
	// linked html/template and text/template (~0.5 MiB idle per function).
	"github.com/wneessen/go-mail",
	"github.com/wneessen/go-mail/",
	"html/template",
	"text/template",
	"text/template/parse",
	"github.com/shopfaas/shop/dev/",
	"github.com/shopfaas/shop/tests/",
}

// TestFunctionBinariesLinkNoDeniedPackage checks the multi-call binary the
// local runtime runs and fnserve, which the template's main links into every
// function image.
func TestFunctionBinariesLinkNoDeniedPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list; -short was asked for")
	}
	for _, pkg := range []string{"github.com/shopfaas/shop/cmd/shop-functions", "github.com/shopfaas/shop/fnserve"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for dep := range strings.FieldsSeq(string(out)) {
			for _, d := range deniedDeps {
				if dep == d || (strings.HasSuffix(d, "/") && strings.HasPrefix(dep, d)) {
					t.Errorf("%s links %s (denied: %s)", pkg, dep, d)
				}
			}
		}
	}
}
