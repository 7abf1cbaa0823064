package routes_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/internal/routes"
)

// Every function of stack.yml is in the table and every function of the table
// is in stack.yml, with the annotations its kind needs.
func TestTableMatchesStack(t *testing.T) {
	s, err := stackfile.Load("../../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	var inTable []string
	for _, r := range routes.Table() {
		inTable = append(inTable, r.Function)
		fn, ok := s.Functions[r.Function]
		if !ok {
			t.Errorf("%s is in the route table but not in stack.yml", r.Function)
			continue
		}
		var ann map[string]string
		if fn.Annotations != nil {
			ann = *fn.Annotations
		}
		switch r.Kind {
		case routes.Event:
			got := strings.Split(ann["topic"], ",")
			if !slices.Equal(got, r.Topics) {
				t.Errorf("%s: topic annotation %q, table says %v", r.Function, ann["topic"], r.Topics)
			}
		case routes.Scheduled:
			if ann["schedule"] != r.Schedule {
				t.Errorf("%s: schedule annotation %q, table says %q", r.Function, ann["schedule"], r.Schedule)
			}
		default:
			if ann["topic"] != "" || ann["schedule"] != "" {
				t.Errorf("%s is %s but has topic/schedule annotations %v", r.Function, r.Kind, ann)
			}
		}
		if r.Kind != routes.Public && !slices.Contains(fn.Secrets, "internal-token") {
			t.Errorf("%s is %s but does not get the internal-token secret", r.Function, r.Kind)
		}
	}
	for _, name := range stackfile.Names(s) {
		if !slices.Contains(inTable, name) {
			t.Errorf("%s is in stack.yml but not in the route table", name)
		}
	}
}

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
			!slices.Equal(s.Routes[0].Paths, []string{r.KongPath()}) {
			t.Errorf("%s: routes %+v, want %s %s", s.Name, s.Routes, r.Method, r.KongPath())
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
	if got := r.KongPath(); got != "~/api/v1/orders/[^/]+/cancel$" {
		t.Errorf("KongPath = %s", got)
	}
}
