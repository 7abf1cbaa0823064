package gatewayurl_test

import (
	"testing"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/gatewayurl"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct {
		gateway, function string
		bundled           bool
		want              string
	}{
		{"http://gateway:8080", "reserve-stock", false, "http://gateway:8080/function/reserve-stock"},
		{"http://gateway:8080/", "reserve-stock", true, "http://gateway:8080/function/inventory/_fn/reserve-stock"},
		{"http://gateway:8080", "charge-payment", true, "http://gateway:8080/function/payments/_fn/charge-payment"},
		{"http://gateway:8080", "get-product", true, "http://gateway:8080/function/catalog/_fn/get-product"},
		{"http://gateway:8080", "not-in-table", true, "http://gateway:8080/function/not-in-table"},
	} {
		if got := gatewayurl.URL(tc.gateway, tc.function, tc.bundled); got != tc.want {
			t.Errorf("URL(%q, %q, %v) = %q, want %q", tc.gateway, tc.function, tc.bundled, got, tc.want)
		}
	}
}

func TestFromConfig(t *testing.T) {
	c := config.New(config.Env(map[string]string{"GATEWAY_URL": "http://gw:8080", "FUNCTION_BUNDLES": "true"}))
	l := gatewayurl.FromConfig(c)
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if l != (gatewayurl.Locator{Gateway: "http://gw:8080", Bundled: true}) {
		t.Errorf("FromConfig = %+v", l)
	}
	c = config.New(config.Env(map[string]string{"GATEWAY_URL": "http://gw:8080", "FUNCTION_BUNDLES": "maybe"}))
	gatewayurl.FromConfig(c)
	if c.Err() == nil {
		t.Error("FUNCTION_BUNDLES=maybe was accepted")
	}
	c = config.New(config.Env(map[string]string{}))
	if l := gatewayurl.FromConfig(c); l.Bundled || c.Err() == nil {
		t.Errorf("empty environment: %+v, err %v; want unbundled and a missing GATEWAY_URL", l, c.Err())
	}
}
