package fnserve

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/routes"
)

// AtRoot lets a public function be invoked the way faas-cli invoke and every
// OpenFaaS gateway call a function: at its root (POST /function/<name>, or
// --method GET), with the path parameters of its public route in the query
// string (?id=…). A root call is served as the public route it names, so the
// handler, its checks and its answers are the same; the public path itself
// works as before. Any other path is a 404 problem that says which paths the
// function serves. Functions that are not public (internal, event and
// scheduled ones, and the bundles of several functions) already serve at their
// root and are returned unchanged.
func AtRoot(name string, next http.Handler) http.Handler {
	route, ok := routes.Lookup(name)
	if !ok || route.Kind != routes.Public {
		return next
	}
	params := pathParams(route.Path)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || r.URL.Path == "/" {
			path, query, missing := fill(route.Path, params, r.URL.Query())
			if len(missing) > 0 {
				fnhttp.WriteProblem(w, fault.E(fault.NotFound, fault.CodeNotFound, fmt.Sprintf(
					"%s needs the query parameter %s at its root; %s", name, strings.Join(missing, ", "), Serves(route))))
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath, r2.URL.RawQuery = path, "", query.Encode()
			r2.RequestURI = r2.URL.RequestURI()
			next.ServeHTTP(w, r2)
			return
		}
		if !route.Matches(route.Method, r.URL.Path) {
			fnhttp.WriteProblem(w, fault.E(fault.NotFound, fault.CodeNotFound, fmt.Sprintf("no such path: %s", Serves(route))))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Serves says where a public function is served, e.g. "get-product serves GET
// /api/v1/products/{id} (its public path) and GET / with ?id= (its root, as
// faas-cli invoke calls it)".
func Serves(route routes.Route) string {
	root := route.Method + " /"
	if ps := pathParams(route.Path); len(ps) > 0 {
		root += " with ?" + strings.Join(ps, "=&") + "="
	}
	return fmt.Sprintf("%s serves %s %s (its public path) and %s (its root, as faas-cli invoke calls it)",
		route.Function, route.Method, route.Path, root)
}

// pathParams are the {names} of a route path, in order.
func pathParams(path string) []string {
	var out []string
	for seg := range strings.SplitSeq(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}

// fill puts the query's values of params into path (escaped as one segment)
// and returns the query without them, and the params that have no value. A
// value with a slash makes a path the handler does not serve (404).
func fill(path string, params []string, query url.Values) (string, url.Values, []string) {
	var missing []string
	for _, p := range params {
		v := query.Get(p)
		if v == "" {
			missing = append(missing, p)
			continue
		}
		path = strings.Replace(path, "{"+p+"}", v, 1)
		query.Del(p)
	}
	return path, query, missing
}
