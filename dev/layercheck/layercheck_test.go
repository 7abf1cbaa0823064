package main

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Every kind of violation planted in the fixture module (each marked
// VIOLATION in its source) is reported, and nothing else: the application
// package using HTTP, the bundle importing a function and the command
// importing its own subpackage pass.
func TestEveryPlantedViolationIsCaughtAndNothingElse(t *testing.T) {
	t.Setenv("GOWORK", "off")
	module, pkgs, err := load(context.Background(), "testdata/shop", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"connectors/relay imports dev/helper: connectors/ may import only internal/ [areas]",
		"dev/helper imports cmd/tool/flags: nothing imports a command [areas]",
		"functions/a imports functions/b: one function imports no other [areas]",
		"internal/cart imports in a test dev/helper: internal/ may import only internal/ [areas]",
		"internal/orders imports internal/orders/ordersdb: a domain package imports only domain packages and internal/fault, internal/events, internal/auth, internal/ids, internal/jsonint, internal/formatchar [domain]",
		"internal/orders imports net/http: a domain package does no I/O (network, database, files, processes, logs) [domain]",
		"internal/orders/ordersdb imports net/http: a store package imports no HTTP package [store]",
		"internal/routes imports functions/b: internal/ may import only internal/ [areas]",
		`misc/thing: "misc" is not an area of the layer rules; add it to dev/layercheck and docs/architecture.md [areas]`,
	}
	var got []string
	for _, v := range Check(module, pkgs, nil) {
		got = append(got, v.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

// The domain and store rules, import by import.
func TestDomainAndStoreRules(t *testing.T) {
	const m = "example.com/shop"
	cases := []struct {
		from, imp string
		broken    bool
	}{
		{"internal/orders", "github.com/google/uuid", false},
		{"internal/orders", "encoding/json", false},
		{"internal/orders", "internal/fault", false},
		{"internal/notifications", "internal/events", false},
		{"internal/orders", "internal/cart", false},
		{"internal/users", "golang.org/x/text/unicode/norm", false},
		{"internal/users", "golang.org/x/text/language", true},
		{"internal/orders", "github.com/google/go-cmp/cmp", true},
		{"internal/orders", "os", true},
		{"internal/orders", "log/slog", true},
		{"internal/orders", "database/sql", true},
		{"internal/orders", "net", true},
		{"internal/orders", "internal/postgres", true},
		{"internal/orders", "internal/telemetry", true},
		{"internal/orders", "internal/fnhttp", true},
		{"internal/orders/saga", "internal/fnhttp", false}, // not a domain package
		{"internal/cart/cartredis", "net/http", true},
		{"internal/cart/cartredis", "net/http/httptrace", true},
		{"internal/orders/ordersdb", "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", true},
		{"internal/orders/ordersdb", "internal/fnhttp", true},
		{"internal/orders/ordersdb", "github.com/jackc/pgx/v5", false},
		{"internal/cart/cartredis/cartredistest", "net/http", false}, // a test helper, not a store
	}
	for _, c := range cases {
		imp := c.imp
		if strings.HasPrefix(imp, "internal/") {
			imp = m + "/" + imp
		}
		got := Check(m, []Package{{Path: m + "/" + c.from, Imports: []string{imp}}}, nil)
		if (len(got) > 0) != c.broken {
			t.Errorf("%s importing %s: violations %v, want broken=%v", c.from, c.imp, got, c.broken)
		}
	}
}

// Each areas violation says what the area may import: the list of areas, or
// for api, which may import none, that it imports nothing of the shop.
func TestAnAreasViolationSaysWhatTheAreaMayImport(t *testing.T) {
	const m = "example.com/shop"
	for _, c := range []struct{ from, imp, want string }{
		{"api", "internal/fault", "api imports internal/fault: api/ imports nothing of the shop [areas]"},
		{"fnserve", "dev/helper", "fnserve imports dev/helper: fnserve/ may import only internal/ [areas]"},
	} {
		got := Check(m, []Package{{Path: m + "/" + c.from, Imports: []string{m + "/" + c.imp}}}, nil)
		if len(got) != 1 || got[0].String() != c.want {
			t.Errorf("%s importing %s: %v, want %q", c.from, c.imp, got, c.want)
		}
	}
}

// A known violation is not reported while it exists; once it is gone, its
// entry is, so the list of known violations only shrinks.
func TestKnownViolationsHideAndThenExpire(t *testing.T) {
	const m = "example.com/shop"
	known := []Known{{From: "functions/cart", Rule: ruleAreas, Why: "moves to bundles/"}}
	bundle := Package{Path: m + "/functions/cart", Imports: []string{m + "/functions/get-cart"}}
	if got := Check(m, []Package{bundle}, known); len(got) != 0 {
		t.Errorf("a known violation was reported: %v", got)
	}
	moved := Package{Path: m + "/bundles/cart", Imports: []string{m + "/functions/get-cart"}}
	got := Check(m, []Package{moved}, known)
	if len(got) != 1 || got[0].Rule != ruleKnown || got[0].From != "functions/cart" {
		t.Errorf("a known violation that is gone: got %v, want one %q violation for functions/cart", got, ruleKnown)
	}
}
