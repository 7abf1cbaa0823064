package provider

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/proxy"
	"github.com/openfaas/faas-provider/types"
)

// proxyTimeout bounds one synchronous invocation through the gateway.
const proxyTimeout = 5 * time.Minute

// invocationCounter counts an invocation of a deployed function
// (functions.Store); false when it is not deployed.
type invocationCounter interface {
	Invoked(name string) bool
}

// proxyHandler is /function/{name}[/path]: faas-provider's proxy to an
// available replica (503 when none becomes available in time), behind a 404
// for a function that is not deployed. The ".<namespace>" suffix go-sdk adds
// to the name is removed first.
func proxyHandler(fns invocationCounter, resolver proxy.BaseURLResolver) http.HandlerFunc {
	forward := proxy.NewHandlerFunc(types.FaaSConfig{ReadTimeout: proxyTimeout}, resolver, false)
	return func(w http.ResponseWriter, r *http.Request) {
		vars := mux.Vars(r)
		name, ok := splitName(vars["name"])
		if !ok || !fns.Invoked(name) {
			http.Error(w, fmt.Sprintf("function %q not found", vars["name"]), http.StatusNotFound)
			return
		}
		vars = maps.Clone(vars)
		vars["name"] = name
		forward(w, mux.SetURLVars(r, vars))
	}
}

// resolver is faas-provider's BaseURLResolver over the supervisor: an
// available replica, round-robin, waiting up to wait for one.
type resolver struct {
	replicas Replicas
	wait     time.Duration
}

// Resolve implements proxy.BaseURLResolver.
func (rs resolver) Resolve(name string) (url.URL, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rs.wait)
	defer cancel()
	addr, err := rs.replicas.Pick(ctx, name)
	if err != nil {
		return url.URL{}, err
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}
