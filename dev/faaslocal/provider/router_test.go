package provider

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
)

// The gateway answers every path as gorilla/mux alone would: a call to a
// function reaches the proxy with the same mux variables, and everything
// else (system routes, redirects of unclean paths, names outside nameExpr,
// 404s) is the router's answer.
func TestRouterRoutesFunctionCallsAsTheMuxDoes(t *testing.T) {
	var got map[string]string
	other := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }
	h := &Handlers{FaaSHandlers: types.FaaSHandlers{FunctionLister: other, DeployFunction: other, UpdateFunction: other,
		DeleteFunction: other, FunctionStatus: other, ScaleFunction: other, Secrets: other, Logs: other, Info: other,
		ListNamespaces: other, Health: other}, AsyncFunction: other}
	h.FunctionProxy = func(w http.ResponseWriter, r *http.Request) {
		got = maps.Clone(mux.Vars(r))
		w.WriteHeader(http.StatusTeapot)
	}
	paths := []string{
		"/function/fn", "/function/fn/", "/function/fn/a", "/function/fn/a/b/", "/function/fn.openfaas-fn/x",
		"/function/f-n_0.9/api/v1/products/0b5e3c1a", "/function/", "/function", "/function//x", "/function/fn//x",
		"/function/fn/./x", "/function/fn/../x", "/function/../system/functions", "/function/fn/x/..",
		"/function/bad name/x", "/function/fn%2Fx/y", "/function/fn/a%0Ab", "/function/fn/a\nb", "/function/fn/%2e%2e/x",
		"/function/é/x", "/functions/fn", "/system/functions", "/system/info", "/healthz", "/async-function/fn",
	}
	type answer struct {
		status   int
		location string
		vars     map[string]string
	}
	serve := func(hd http.Handler, m, p string) answer {
		got = nil
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(m, "http://127.0.0.1:8080/", nil)
		req.URL.Path, req.URL.RawPath = p, ""
		hd.ServeHTTP(rec, req)
		return answer{rec.Code, rec.Header().Get("Location"), got}
	}
	fast, plain := h.Router(), h.routes()
	calls := 0
	for _, p := range paths {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			want, have := serve(plain, m, p), serve(fast, m, p)
			if fmt.Sprint(want) != fmt.Sprint(have) {
				t.Errorf("%s %q: router %+v, gateway %+v", m, p, want, have)
			}
			if want.status == http.StatusTeapot {
				calls++
			}
		}
	}
	if calls < 20 {
		t.Fatalf("only %d of the cases reached the function proxy: the table no longer tests the fast path", calls)
	}
}
