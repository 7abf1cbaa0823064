package deploycheck

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cartStoreBuilders are the functions whose handler builds the cart store:
// the cart functions (cartenv.Load) and the saga's (ordersenv.Load with
// Needs.Saga), read from their handler.go.
func cartStoreBuilders(t *testing.T) []string {
	t.Helper()
	saga := regexp.MustCompile(`ordersenv\.Needs\{[^}]*\bSaga: true`)
	files, err := filepath.Glob(filepath.Join(root(t), "functions", "*", "handler.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no handlers: %v", err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "cartenv.Load(") || saga.Match(b) {
			out = append(out, filepath.Base(filepath.Dir(f)))
		}
	}
	return out
}

// The checklist's advice to give carts a Redis of their own names the
// REDIS_ADDR of exactly the functions that build the cart store: one left
// out (recover-orders, cancel-order) would take ordered lines out of the
// wrong Redis, leaving them in the cart for a later checkout to buy again.
func TestTheChecklistNamesEveryFunctionThatBuildsTheCartStore(t *testing.T) {
	builders := cartStoreBuilders(t)
	if len(builders) < 4 {
		t.Fatalf("found only %v building the cart store: is the pattern stale?", builders)
	}
	entries, err := os.ReadDir(filepath.Join(root(t), "functions"))
	if err != nil {
		t.Fatal(err)
	}
	var functions []string
	for _, e := range entries {
		if e.IsDir() {
			functions = append(functions, e.Name())
		}
	}
	text := string(read(t, "docs/production-checklist.md"))
	start := strings.Index(text, "- [ ] Redis `maxmemory` fits the carts")
	if start < 0 {
		t.Fatal(`docs/production-checklist.md has no item "Redis ` + "`maxmemory`" + ` fits the carts"`)
	}
	item := text[start+1:]
	if end := strings.Index(item, "\n- "); end >= 0 {
		item = item[:end]
	}
	var named []string
	for _, w := range regexp.MustCompile(`[a-z]+(?:-[a-z]+)+`).FindAllString(item, -1) {
		if slices.Contains(functions, w) && !slices.Contains(named, w) {
			named = append(named, w)
		}
	}
	slices.Sort(named)
	if diff := cmp.Diff(builders, named); diff != "" {
		t.Errorf("functions the checklist's cart Redis item names (-built the cart store +named):\n%s", diff)
	}
}
