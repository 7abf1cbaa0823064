package contract_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/api"
	listnotifications "github.com/shopfaas/shop/functions/list-notifications"
	listproducts "github.com/shopfaas/shop/functions/list-products"
	loginuser "github.com/shopfaas/shop/functions/login-user"
	"github.com/shopfaas/shop/internal/cart"
	"github.com/shopfaas/shop/internal/catalog"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/inventory"
	"github.com/shopfaas/shop/internal/notifications"
	"github.com/shopfaas/shop/internal/orders"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/users"
)

// Every member a view always writes (a JSON field without omitempty) is in
// its schema's required list, so a client generated from the document need
// not treat it as optional. Found 2026-12-06: Payment lacked provider_ref,
// which payments.View always sends; 2026-12-07: Order lacked
// shipping_address and updated_at, the timeline's step detail and trace_id,
// Product in_stock, archived, version, created_at and updated_at, SearchHit
// description, sold_count and in_stock, and User created_at.
//
// A schema is named by its path under components/schemas, through nested
// schemas ("Timeline/properties/steps/items"). The page types of list-orders
// and get-order-timeline are unexported; their items are checked here.
func TestSchemasRequireWhatTheViewsAlwaysSend(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]any `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		schema string
		view   any
	}{
		{"Payment", payments.View{}},
		{"Order", orders.View{}},
		{"OrderLine", orders.Line{}},
		{"Money", orders.Money{}},
		{"Money", cart.Money{}},
		{"Money", catalog.Money{}},
		{"Address", orders.Address{}},
		{"Timeline/properties/steps/items", orders.Step{}},
		{"Product", catalog.Product{}},
		{"ProductPage", listproducts.Page{}},
		{"SearchHit", search.Document{}},
		{"SearchResult", search.Result{}},
		{"Stock", inventory.View{}},
		{"Cart", cart.View{}},
		{"CartItem", cart.ItemView{}},
		{"User", users.User{}},
		{"Token", loginuser.Token{}},
		{"Notification", notifications.View{}},
		{"NotificationPage", listnotifications.Page{}},
		{"Problem", fnhttp.Problem{}},
	} {
		required := requiredAt(t, doc.Components.Schemas, c.schema)
		typ := reflect.TypeOf(c.view)
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Anonymous {
				t.Fatalf("%s embeds %s, whose fields encoding/json lifts: teach this test to follow it", typ, f.Type)
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !slices.Contains(required, name) {
				t.Errorf("%s.required lacks %q, which %s always sends", c.schema, name, typ)
			}
		}
	}
}

// A notification's type is one of the values Notification.type lists, and
// the list names no type the shop never writes, so a client generated from
// the document can tell them apart. Until 2026-12-07 the schema said only
// "a string": notifications.New's types, "stable strings of the API", were
// written down nowhere a client reads.
func TestTheNotificationTypesAreTheDocuments(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Notification struct {
					Properties struct {
						Type struct {
							Enum []string `yaml:"enum"`
						} `yaml:"type"`
					} `yaml:"properties"`
				} `yaml:"Notification"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var written []string
	for _, typ := range notifications.Types {
		n, err := notifications.New(notifications.Event{ID: uuid.New(), Type: typ, UserID: uuid.New(), OrderID: uuid.New()}, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !slices.Contains(written, n.Type) {
			written = append(written, n.Type)
		}
	}
	documented := doc.Components.Schemas.Notification.Properties.Type.Enum
	slices.Sort(written)
	slices.Sort(documented)
	if !slices.Equal(written, documented) {
		t.Errorf("Notification.type lists %q; the notifications of the events notify-user handles have the types %q", documented, written)
	}
}

// requiredAt is the required list of the schema at path (names joined by
// "/") under schemas.
func requiredAt(t *testing.T, schemas map[string]any, path string) []string {
	t.Helper()
	var node any = schemas
	for name := range strings.SplitSeq(path, "/") {
		m, ok := node.(map[string]any)
		if !ok {
			t.Fatalf("schema %s: %q is not under an object in api/openapi.yaml", path, name)
		}
		if node, ok = m[name]; !ok {
			t.Fatalf("schema %s is missing from api/openapi.yaml (no %q)", path, name)
		}
	}
	m, ok := node.(map[string]any)
	if !ok {
		t.Fatalf("schema %s is not an object in api/openapi.yaml", path)
	}
	list, _ := m["required"].([]any)
	var required []string
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("schema %s: required holds %v, not a name", path, v)
		}
		required = append(required, s)
	}
	return required
}
