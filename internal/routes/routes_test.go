package routes_test

import (
	"os"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/routes"
)

// gateway/kong.yml routes exactly the public functions, each with the table's
// method and path, retries 0 on non-idempotent writes.
func TestTableMatchesKong(t *testing.T) {
	raw, err := os.ReadFile("../../gateway/kong.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services []struct {
			Name    string `yaml:"name"`
			URL     string `yaml:"url"`
			Retries *int   `yaml:"retries"`
			Routes  []struct {
				Paths   []string `yaml:"paths"`
				Methods []string `yaml:"methods"`
			} `yaml:"routes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	routed := map[string]bool{}
	for _, s := range doc.Services {
		r, ok := routes.Lookup(s.Name)
		if !ok || r.Kind != routes.Public {
			t.Errorf("kong.yml routes %s, which is not a public function", s.Name)
			continue
		}
		routed[s.Name] = true
		if want := "http://gateway:8080/function/" + s.Name; s.URL != want {
			t.Errorf("%s: url %s, want %s", s.Name, s.URL, want)
		}
		if len(s.Routes) != 1 || !slices.Equal(s.Routes[0].Methods, r.KongMethods()) ||
			!slices.Equal(s.Routes[0].Paths, r.KongPaths()) {
			t.Errorf("%s: routes %+v, want %s %s", s.Name, s.Routes, r.Method, r.KongPaths())
		}
		if !r.Idempotent && (s.Retries == nil || *s.Retries != 0) {
			t.Errorf("%s is not idempotent: it needs retries: 0", s.Name)
		}
	}
	for _, r := range routes.Table() {
		if r.Kind == routes.Public && !routed[r.Function] {
			t.Errorf("public function %s has no route in kong.yml", r.Function)
		}
	}
}

func TestMatches(t *testing.T) {
	r, _ := routes.Lookup("cancel-order")
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/api/v1/orders/abc/cancel", true},
		{"GET", "/api/v1/orders/abc/cancel", false},
		{"POST", "/api/v1/orders//cancel", false},
		{"POST", "/api/v1/orders/abc/cancel/x", false},
		{"POST", "/api/v1/orders/abc", false},
	} {
		if got := r.Matches(tc.method, tc.path); got != tc.want {
			t.Errorf("Matches(%s %s) = %v, want %v", tc.method, tc.path, got, tc.want)
		}
	}
	if got := r.KongPath(); got != "~/api/v1/orders/[^/%]+/cancel$" {
		t.Errorf("KongPath = %s", got)
	}
}

// api-docs serves its document and, with the same method and access, its
// page and the page's assets (Also), and nothing under them.
func TestAlsoPathsAreServedByTheSameRoute(t *testing.T) {
	r, _ := routes.Lookup("api-docs")
	for _, tc := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/openapi.yaml", true},
		{"GET", "/docs", true},
		{"GET", "/docs/swagger-ui.css", true},
		{"POST", "/docs", false},
		{"GET", "/docs/a/b", false},
		{"GET", "/openapiXyaml", false},
		{"GET", "/api/v1/products", false},
	} {
		if got := r.Matches(tc.method, tc.path); got != tc.want {
			t.Errorf("Matches(%s %s) = %v, want %v", tc.method, tc.path, got, tc.want)
		}
	}
	if got := r.KongPaths(); !slices.Equal(got, []string{`~/openapi\.yaml$`, "~/docs$", "~/docs/[^/%]+$"}) {
		t.Errorf("KongPaths = %q", got)
	}
}

// Every internal, event and scheduled function accepts some callers, a public
// one none, and every caller is a function of the table, a connector or the
// operator: a typo would lock a caller out (403) everywhere.
func TestEveryInternalFunctionDeclaresItsCallers(t *testing.T) {
	known := map[string]bool{routes.CallerRabbitMQ: true, routes.CallerScheduler: true, routes.CallerOperator: true}
	for _, r := range routes.Table() {
		known[r.Function] = true
	}
	for _, r := range routes.Table() {
		if (r.Kind == routes.Public) != (len(r.Callers) == 0) {
			t.Errorf("%s is %s with callers %v", r.Function, r.Kind, r.Callers)
		}
		for _, c := range r.Callers {
			if !known[c] {
				t.Errorf("%s accepts unknown caller %q", r.Function, c)
			}
		}
	}
	if got := routes.Callers("reserve-stock"); len(got) != 2 || got[0] != "create-order" || got[1] != "recover-orders" {
		t.Errorf("reserve-stock accepts %v", got)
	}
	if got := routes.Callers("get-product"); got != nil {
		t.Errorf("a public function accepts internal callers %v", got)
	}
}

// Every event type the shop publishes (events.Types) has an event function
// subscribed to it, so none lands in shop.unrouted by design: that queue,
// and the UnroutedEvents alert on it, are for a mistake (a topic annotation
// gone wrong), not for an event nobody was meant to read. And every topic a
// function subscribes to is a published type: the connector unbinds only
// those (KnownTopics) when a function gives one up, and a topic nothing
// publishes is a typo. stack.yml's topic annotations are checked against the
// table (dev/stackfile), and stack.ce.yml's are generated from it
// (cmd/generate -check).
func TestEveryPublishedEventTypeHasASubscriber(t *testing.T) {
	subscribers := map[string][]string{}
	for _, r := range routes.Table() {
		if r.Kind != routes.Event && len(r.Topics) > 0 {
			t.Errorf("%s is %s but subscribes to %v", r.Function, r.Kind, r.Topics)
		}
		for _, topic := range r.Topics {
			subscribers[topic] = append(subscribers[topic], r.Function)
		}
	}
	published := events.Types()
	for _, typ := range published {
		if len(subscribers[typ]) == 0 {
			t.Errorf("%s is published but no function subscribes to it: every one would wait in shop.unrouted", typ)
		}
	}
	for topic, fns := range subscribers {
		if !slices.Contains(published, topic) {
			t.Errorf("%v subscribe to %s, which is not in events.Types()", fns, topic)
		}
	}
}
