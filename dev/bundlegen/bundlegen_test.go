package bundlegen_test

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/bundlegen"
	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/routes"
)

func inputs(t *testing.T) (stack, kong []byte) {
	t.Helper()
	stack, err := os.ReadFile("../../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	kong, err = os.ReadFile("../../gateway/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	return stack, kong
}

// The bundled stack has one function per service, within the CE cap, and
// the bundled Kong config points every route at its service's bundle.
func TestRender(t *testing.T) {
	stack, kong := inputs(t)
	files, err := bundlegen.Render(routes.Table(), stack, kong)
	if err != nil {
		t.Fatal(err)
	}
	ce := string(files[bundlegen.StackCEFile])
	for _, svc := range routes.Services() {
		if !strings.Contains(ce, "\n  "+svc+":\n") {
			t.Errorf("stack.ce.yml has no function %s", svc)
		}
		if _, ok := files[bundlegen.Dir+"/"+svc+"/handler.go"]; !ok {
			t.Errorf("no bundle package for %s", svc)
		}
	}
	if n := strings.Count(ce, "\n    lang: "); n != len(routes.Services()) || n > bundlegen.MaxFunctions {
		t.Errorf("stack.ce.yml has %d functions, want %d (at most %d)", n, len(routes.Services()), bundlegen.MaxFunctions)
	}
	k := string(files[bundlegen.KongCEFile])
	for _, r := range routes.Table() {
		if strings.Contains(k, "/function/"+r.Function+"\n") {
			t.Errorf("kong.ce.yml still routes to the member %s", r.Function)
		}
	}
	if !strings.Contains(k, "url: http://gateway:8080/function/orders\n") {
		t.Error("kong.ce.yml does not route to the orders bundle")
	}
}

// Render refuses inputs the bundled stack could not serve.
func TestRenderRefuses(t *testing.T) {
	stack, kong := inputs(t)
	table := routes.Table()

	internal := strings.Replace(string(kong), "/function/get-me\n", "/function/reserve-stock\n", 1)
	if _, err := bundlegen.Render(table, stack, []byte(internal)); err == nil || !strings.Contains(err.Error(), "reserve-stock, which is not a public function") {
		t.Errorf("kong routing an internal function: %v", err)
	}

	missing := strings.Replace(string(kong), "/function/get-me\n", "/function/get-me-not\n", 1)
	if _, err := bundlegen.Render(table, stack, []byte(missing)); err == nil || !strings.Contains(err.Error(), "no route for the public function get-me") {
		t.Errorf("kong without get-me: %v", err)
	}

	clash := append(table[:0:0], table...)
	clash = append(clash, routes.Route{Function: "notify-user-twice", Service: "users", Kind: routes.Event, Topics: []string{"order.placed.v1"}})
	if _, err := bundlegen.Render(clash, stack, kong); err == nil || !strings.Contains(err.Error(), "both subscribe to order.placed.v1") {
		t.Errorf("two members on one topic: %v", err)
	}

	extra := append(table[:0:0], table...)
	extra = append(extra, routes.Route{Function: "ghost", Service: "users", Kind: routes.Internal})
	if _, err := bundlegen.Render(extra, stack, kong); err == nil || !strings.Contains(err.Error(), "ghost is in the route table but not in stack.yml") {
		t.Errorf("a member missing from stack.yml: %v", err)
	}

	many := append(table[:0:0], table...)
	for i := range bundlegen.MaxFunctions {
		many = append(many, routes.Route{Function: fmt.Sprintf("f%d", i), Service: fmt.Sprintf("s%d", i), Kind: routes.Internal})
	}
	if _, err := bundlegen.Render(many, stack, kong); err == nil || !strings.Contains(err.Error(), "exceed the CE cap") {
		t.Errorf("more bundles than the cap: %v", err)
	}
}

// A bundle is one process with one environment: its members share one lang
// and one environment_file, whichever member comes first in the table (one
// without an environment_file included).
func TestRenderRefusesMembersWithAnotherEnvironmentFile(t *testing.T) {
	fn := func(name, envFile string) string {
		s := "  " + name + ":\n    lang: shop-go\n    handler: ./functions/" + name + "\n    image: r/" + name + ":dev\n"
		if envFile != "" {
			s += "    environment_file:\n      - " + envFile + "\n"
		}
		return s + "    limits:\n      memory: 64Mi\n"
	}
	table := []routes.Route{
		{Function: "first", Service: "a", Kind: routes.Internal},
		{Function: "second", Service: "a", Kind: routes.Internal},
	}
	for _, tc := range []struct{ first, second string }{
		{"env/production.yml", ""},
		{"", "env/production.yml"},
		{"env/production.yml", "env/development.yml"},
	} {
		stack := "provider:\n  name: openfaas\n  gateway: http://127.0.0.1:8080\nfunctions:\n" + fn("first", tc.first) + fn("second", tc.second)
		_, err := bundlegen.Render(table, []byte(stack), nil)
		if err == nil || !strings.Contains(err.Error(), "second has another lang or environment_file") {
			t.Errorf("environment_file %q, then %q: %v, want second refused", tc.first, tc.second, err)
		}
	}
}

// A bundle is one process: where it also serves a writer of a database,
// its readers log in as the writer does (the readers' password dropped,
// <SERVICE>_READER_SHARES_WRITERS_ROLE=true, so postgres.ReaderConfigFrom
// returns the writers' settings: the readers' URL of env/production.yml
// cannot be set empty, faas-cli merges the file over the entry), and the
// writer keeps its password and migrates; a bundle whose members only read
// a database keeps the readers' password and URL. The committed stack's
// catalog and inventory bundles are of the first kind.
func TestABundleWithAWriterSharesItsRole(t *testing.T) {
	fn := func(name string, secrets ...string) string {
		return "  " + name + ":\n    lang: shop-go\n    handler: ./functions/" + name + "\n    image: r/" + name + ":dev\n" +
			"    environment_file:\n      - env/production.yml\n    secrets:\n      - " + strings.Join(secrets, "\n      - ") +
			"\n    limits:\n      memory: 64Mi\n"
	}
	stack := "provider:\n  name: openfaas\n  gateway: http://127.0.0.1:8080\nfunctions:\n" +
		fn("read-a", "db-password-catalog-reader", "redis-password") + fn("write-a", "db-password-catalog") +
		fn("read-b", "db-password-inventory-reader")
	table := []routes.Route{
		{Function: "read-a", Service: "a", Kind: routes.Internal},
		{Function: "write-a", Service: "a", Kind: routes.Internal},
		{Function: "read-b", Service: "b", Kind: routes.Internal},
	}
	files, err := bundlegen.Render(table, []byte(stack), nil)
	if err != nil {
		t.Fatal(err)
	}
	ce := bundles(t, files[bundlegen.StackCEFile])
	if a := ce["a"]; slices.Contains(a.Secrets, "db-password-catalog-reader") || !slices.Contains(a.Secrets, "db-password-catalog") ||
		a.Environment["CATALOG_READER_SHARES_WRITERS_ROLE"] != "true" {
		t.Errorf("a bundle with a writer: secrets %v, environment %v; want db-password-catalog alone and CATALOG_READER_SHARES_WRITERS_ROLE true",
			a.Secrets, a.Environment)
	}
	if b := ce["b"]; !slices.Contains(b.Secrets, "db-password-inventory-reader") || hasKey(b.Environment, "INVENTORY_READER_SHARES_WRITERS_ROLE") {
		t.Errorf("a bundle of readers only: secrets %v, environment %v; want the readers' password and URL kept", b.Secrets, b.Environment)
	}

	real, kong := inputs(t)
	if files, err = bundlegen.Render(routes.Table(), real, kong); err != nil {
		t.Fatal(err)
	}
	ce = bundles(t, files[bundlegen.StackCEFile])
	for _, service := range []string{"catalog", "inventory"} {
		b, shares := ce[service], strings.ToUpper(service)+"_READER_SHARES_WRITERS_ROLE"
		if slices.Contains(b.Secrets, "db-password-"+service+"-reader") || !slices.Contains(b.Secrets, "db-password-"+service) ||
			b.Environment[shares] != "true" {
			t.Errorf("stack.ce.yml's %s: secrets %v, environment %v; want db-password-%s alone and %s true",
				service, b.Secrets, b.Environment, service, shares)
		}
	}
}

type bundleEntry struct {
	Environment map[string]string `yaml:"environment"`
	Secrets     []string          `yaml:"secrets"`
}

func bundles(t *testing.T, stackCE []byte) map[string]bundleEntry {
	t.Helper()
	var doc struct {
		Functions map[string]bundleEntry `yaml:"functions"`
	}
	if err := yaml.Unmarshal(stackCE, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Functions
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// As faasd deploys them with env/production.yml (its file merged over each
// entry's environment, as faas-cli merges them: stackfile.Environment),
// the public readers of stack.yml log in as their readers' role, read-only,
// and the readers inside stack.ce.yml's catalog and inventory bundles as
// the writers' role, migrating.
func TestProductionReadersLogInAsTheirRole(t *testing.T) {
	for _, tc := range []struct {
		file, function, service, user string
		readOnly                      bool
	}{
		{"stack.yml", "get-product", "catalog", "shop_catalog_reader", true},
		{"stack.yml", "get-stock", "inventory", "shop_inventory_reader", true},
		{"stack.ce.yml", "catalog", "catalog", "shop_catalog", false},
		{"stack.ce.yml", "inventory", "inventory", "shop_inventory", false},
	} {
		s, err := stackfile.LoadEnv("../../"+tc.file, func(k string) string {
			if k == "SHOP_ENV" {
				return "production"
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		env, err := stackfile.Environment("../..", s.Functions[tc.function])
		if err != nil {
			t.Fatalf("%s's %s: %v", tc.file, tc.function, err)
		}
		c := config.New(config.Env(env))
		got := postgres.ReaderConfigFrom(c, tc.service, nil)
		u, err := url.Parse(got.URL)
		if err != nil || c.Err() != nil || u.User.Username() != tc.user || got.ReadOnly != tc.readOnly {
			t.Errorf("%s's %s in production: a reader logs in as %v (read-only %t; %v, %v), want %s (read-only %t)",
				tc.file, tc.function, u, got.ReadOnly, err, c.Err(), tc.user, tc.readOnly)
		}
	}
}

// A bundle runs every member's code: its root filesystem is read-only only
// when every member's is.
func TestABundleIsReadOnlyOnlyWhenEveryMemberIs(t *testing.T) {
	fn := func(name string, readOnly bool) string {
		s := "  " + name + ":\n    lang: shop-go\n    handler: ./functions/" + name + "\n    image: r/" + name + ":dev\n"
		if readOnly {
			s += "    readonly_root_filesystem: true\n"
		}
		return s + "    limits:\n      memory: 64Mi\n"
	}
	table := []routes.Route{
		{Function: "first", Service: "a", Kind: routes.Internal},
		{Function: "second", Service: "a", Kind: routes.Internal},
	}
	for _, tc := range []struct{ first, second, want bool }{
		{true, true, true},
		{true, false, false},
		{false, true, false},
	} {
		stack := "provider:\n  name: openfaas\n  gateway: http://127.0.0.1:8080\nfunctions:\n" + fn("first", tc.first) + fn("second", tc.second)
		files, err := bundlegen.Render(table, []byte(stack), nil)
		if err != nil {
			t.Fatal(err)
		}
		var ce struct {
			Functions map[string]struct {
				ReadOnly bool `yaml:"readonly_root_filesystem"`
			} `yaml:"functions"`
		}
		if err := yaml.Unmarshal(files[bundlegen.StackCEFile], &ce); err != nil {
			t.Fatal(err)
		}
		if got := ce.Functions["a"].ReadOnly; got != tc.want {
			t.Errorf("members read-only %v and %v: the bundle's readonly_root_filesystem %v, want %v", tc.first, tc.second, got, tc.want)
		}
	}
}
