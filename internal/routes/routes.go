// Package routes is the one table of every function of the shop: its service,
// how it is reached (a public route of the edge, an internal call through the
// gateway, an event topic or a schedule) and who may call it. gateway/kong.yml,
// stack.yml and the bundled faasd-CE stack are checked against it, so the
// three cannot drift apart.
package routes

import (
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Kind says how a function is reached.
type Kind int

// The kinds of function.
const (
	Public    Kind = iota + 1 // routed by the edge: under /api/v1, and api-docs' document and page
	Internal                  // called by other functions through the gateway only
	Event                     // invoked by the RabbitMQ connector for its topics
	Scheduled                 // invoked by the scheduler on its cron schedule
)

func (k Kind) String() string {
	switch k {
	case Public:
		return "public"
	case Internal:
		return "internal"
	case Event:
		return "event"
	case Scheduled:
		return "scheduled"
	}
	return "unknown"
}

// Access levels of a public route.
const (
	Anyone = "anyone"
	User   = "user"
	Admin  = "admin"
)

// Route is one function and how it is reached.
type Route struct {
	// Function is the OpenFaaS function name (functions/<Function>).
	Function string
	// Service is the domain service the function belongs to; the faasd-CE
	// stack bundles each service's functions into one function of this name.
	Service string
	// Kind says how the function is reached.
	Kind Kind
	// Method and Path are the public route (Public only), Path in Go ServeMux
	// pattern form, e.g. /api/v1/products/{id}.
	Method, Path string
	// Also are further paths of a public route, in the same form, served
	// by the same function with the same Method and Access, routed by the
	// edge with Path but, unlike Path, not operations of the contract
	// (api-docs' page at /docs and its assets beside its document).
	Also []string
	// Access is Anyone, User or Admin (Public only).
	Access string
	// Idempotent is false for public writes the edge must never retry.
	Idempotent bool
	// Topics are the event types an Event function subscribes to.
	Topics []string
	// Schedule is the cron schedule of a Scheduled function.
	Schedule string
	// Callers are the internal callers an Internal, Event or Scheduled
	// function accepts: auth.CheckInternal admits a valid credential of one
	// of them, answers 403 to any other valid caller and 401 to anything
	// else. Each is a function calling through the gateway, a connector
	// (CallerRabbitMQ, CallerScheduler) or CallerOperator; each has its own
	// credential, the secret internal-token-<caller> (docs/security.md).
	Callers []string
}

// The internal callers that are not functions.
const (
	// CallerRabbitMQ is the RabbitMQ connector invoking event functions.
	CallerRabbitMQ = "rabbitmq-connector"
	// CallerScheduler is the scheduler invoking scheduled functions.
	CallerScheduler = "scheduler"
	// CallerOperator is a person or tool running a runbook step by hand
	// (recover-orders, expire-reservations; dev/chaos's sweeps).
	CallerOperator = "operator"
)

// Table returns every function of the shop, in a stable order.
func Table() []Route {
	saga := []string{"create-order", "recover-orders"}                       // forward steps: create-order and recovery drive checkouts
	compensate := []string{"create-order", "cancel-order", "recover-orders"} // release and refund: a failed checkout, a cancel, recovery
	scheduled := []string{CallerScheduler, CallerOperator}
	events := []string{CallerRabbitMQ}
	pub := func(fn, svc, method, path, access string) Route {
		idem := method == "GET" || method == "PUT" || method == "DELETE"
		return Route{Function: fn, Service: svc, Kind: Public, Method: method, Path: path, Access: access, Idempotent: idem}
	}
	return []Route{
		pub("register-user", "users", "POST", "/api/v1/users", Anyone),
		pub("login-user", "users", "POST", "/api/v1/auth/login", Anyone),
		pub("get-me", "users", "GET", "/api/v1/users/me", User),
		pub("list-notifications", "users", "GET", "/api/v1/users/me/notifications", User),
		{Function: "notify-user", Service: "users", Kind: Event,
			Topics: []string{"user.registered.v1", "order.placed.v1", "order.cancelled.v1", "order.payment_failed.v1"}, Callers: events},

		pub("list-products", "catalog", "GET", "/api/v1/products", Anyone),
		pub("get-product", "catalog", "GET", "/api/v1/products/{id}", Anyone),
		pub("create-product", "catalog", "POST", "/api/v1/products", Admin),
		pub("update-product", "catalog", "PATCH", "/api/v1/products/{id}", Admin),
		pub("archive-product", "catalog", "DELETE", "/api/v1/products/{id}", Admin),
		pub("search-products", "catalog", "GET", "/api/v1/search/products", Anyone),
		{Function: "update-product-stats", Service: "catalog", Kind: Event, Topics: []string{"order.placed.v1", "order.cancelled.v1"}, Callers: events},
		{Function: "index-product", Service: "catalog", Kind: Event, Topics: []string{"product.changed.v1", "stock.changed.v1"}, Callers: events},

		pub("get-stock", "inventory", "GET", "/api/v1/inventory/{product_id}", Anyone),
		pub("set-stock", "inventory", "PUT", "/api/v1/inventory/{product_id}", Admin),
		{Function: "reserve-stock", Service: "inventory", Kind: Internal, Callers: saga},
		{Function: "commit-stock", Service: "inventory", Kind: Internal, Callers: saga},
		{Function: "release-stock", Service: "inventory", Kind: Internal, Callers: compensate},
		{Function: "expire-reservations", Service: "inventory", Kind: Scheduled, Schedule: "*/1 * * * *", Callers: scheduled},

		pub("get-cart", "cart", "GET", "/api/v1/cart", User),
		pub("set-cart-item", "cart", "PUT", "/api/v1/cart/items/{product_id}", User),
		pub("clear-cart", "cart", "DELETE", "/api/v1/cart", User),

		pub("create-order", "orders", "POST", "/api/v1/orders", User),
		pub("list-orders", "orders", "GET", "/api/v1/orders", User),
		pub("get-order", "orders", "GET", "/api/v1/orders/{id}", User),
		pub("cancel-order", "orders", "POST", "/api/v1/orders/{id}/cancel", User),
		pub("get-order-timeline", "orders", "GET", "/api/v1/orders/{id}/timeline", User),
		{Function: "recover-orders", Service: "orders", Kind: Scheduled, Schedule: "*/1 * * * *", Callers: scheduled},
		// The inventory sweep asks the statuses of the orders whose holds it settles.
		{Function: "order-statuses", Service: "orders", Kind: Internal, Callers: []string{"expire-reservations"}},

		pub("get-payment", "payments", "GET", "/api/v1/orders/{id}/payment", User),
		{Function: "charge-payment", Service: "payments", Kind: Internal, Callers: saga},
		{Function: "refund-payment", Service: "payments", Kind: Internal, Callers: compensate},

		{Function: "api-docs", Service: "docs", Kind: Public, Method: "GET", Path: "/openapi.yaml",
			Also: []string{"/docs", "/docs/{file}"}, Access: Anyone, Idempotent: true},
	}
}

// Lookup returns the function's route.
func Lookup(function string) (Route, bool) {
	for _, r := range Table() {
		if r.Function == function {
			return r, true
		}
	}
	return Route{}, false
}

// Callers are the internal callers function accepts (none for a public or
// unknown function: CheckInternal then admits no one). Internal functions
// ask on every call, so the table is read once; the slice is shared and
// must not be modified.
func Callers(function string) []string { return callersOf()[function] }

var callersOf = sync.OnceValue(func() map[string][]string {
	m := map[string][]string{}
	for _, r := range Table() {
		m[r.Function] = r.Callers
	}
	return m
})

// AllCallers are the names of every internal caller of the table, sorted:
// each has its own credential (secret internal-token-<caller>).
func AllCallers() []string {
	var out []string
	for _, r := range Table() {
		for _, c := range r.Callers {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Services returns the service names in table order.
func Services() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range Table() {
		if !seen[r.Service] {
			seen[r.Service] = true
			out = append(out, r.Service)
		}
	}
	return out
}

var wildcard = regexp.MustCompile(`\{[a-z_]+\}`)

// KongPath is the route's Kong 3 path: an anchored regex in which every
// {wildcard} matches one path segment with no percent-encoded octet left in
// it, e.g. ~/api/v1/products/[^/%]+$, and everything else itself. Kong
// routes by the path with every octet but the reserved characters decoded
// (kong/tools/uri.lua), and proxies it as it is: a segment such as
// ..%2F..%2Ffunction%2Freserve-stock would match [^/]+, and the OpenFaaS
// gateway, which cleans the decoded path, answer it with a redirect naming
// /function/reserve-stock. No identifier of the shop holds a reserved
// character.
func (r Route) KongPath() string {
	if r.Kind != Public {
		return ""
	}
	return kongPath(r.Path)
}

// KongPaths are the Kong paths of Path and of Also, in that order.
func (r Route) KongPaths() []string {
	if r.Kind != Public {
		return nil
	}
	out := []string{kongPath(r.Path)}
	for _, p := range r.Also {
		out = append(out, kongPath(p))
	}
	return out
}

// kongPath turns a ServeMux pattern into a Kong regex path: each {wildcard}
// one segment, every other character literal (the dot of /openapi.yaml too).
func kongPath(path string) string {
	var b strings.Builder
	last := 0
	for _, m := range wildcard.FindAllStringIndex(path, -1) {
		b.WriteString(regexp.QuoteMeta(path[last:m[0]]) + "[^/%]+")
		last = m[1]
	}
	return "~" + b.String() + regexp.QuoteMeta(path[last:]) + "$"
}

// KongMethods are the route's Kong methods: its own and OPTIONS, without
// which Kong matches no route for a browser's CORS preflight.
func (r Route) KongMethods() []string {
	if r.Kind != Public {
		return nil
	}
	return []string{r.Method, "OPTIONS"}
}

// NeedsToken reports whether the edge must require a verified token (the
// jwt plugin) on the route: User and Admin routes.
func (r Route) NeedsToken() bool {
	return r.Kind == Public && (r.Access == User || r.Access == Admin)
}

// Matches reports whether the public route serves method and path (its
// Path or one of Also).
func (r Route) Matches(method, path string) bool {
	if r.Kind != Public || r.Method != method {
		return false
	}
	if PathMatches(r.Path, path) {
		return true
	}
	for _, p := range r.Also {
		if PathMatches(p, path) {
			return true
		}
	}
	return false
}

// PathMatches reports whether path fits pattern (a route's path, or a path
// template of the contract), a {wildcard} taking one non-empty segment.
func PathMatches(pattern, path string) bool {
	want := strings.Split(strings.Trim(pattern, "/"), "/")
	got := strings.Split(strings.Trim(path, "/"), "/")
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if strings.HasPrefix(want[i], "{") {
			if got[i] == "" {
				return false
			}
			continue
		}
		if want[i] != got[i] {
			return false
		}
	}
	return true
}
