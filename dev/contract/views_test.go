package contract_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	"github.com/shopfaas/shop/internal/payments"
)

// Every member a view always writes (a JSON field without omitempty) is in
// its schema's required list, so a client generated from the document need
// not treat it as optional. Found 2026-12-06: Payment lacked provider_ref,
// which payments.View always sends.
func TestSchemasRequireWhatTheViewsAlwaysSend(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Required []string `yaml:"required"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for schema, view := range map[string]any{"Payment": payments.View{}} {
		s, ok := doc.Components.Schemas[schema]
		if !ok {
			t.Fatalf("schema %s is missing from api/openapi.yaml", schema)
		}
		typ := reflect.TypeOf(view)
		for i := range typ.NumField() {
			name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
				continue
			}
			if !slices.Contains(s.Required, name) {
				t.Errorf("%s.required lacks %q, which %s always sends", schema, name, typ)
			}
		}
	}
}
