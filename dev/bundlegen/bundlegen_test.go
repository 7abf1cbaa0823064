package bundlegen_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/bundlegen"
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
