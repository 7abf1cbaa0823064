package routes

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// InternalPrefix is the reserved path prefix by which a bundle of the
// faasd-CE stack (stack.ce.yml) receives a call meant for one of its members:
// POST /function/<service>/_fn/<member>[/rest] reaches <member>'s handler with
// the path rewritten to /rest (or /). No public route starts with it.
const InternalPrefix = "/_fn/"

// ScheduleHeader is the header the scheduler (connectors/scheduler) sets on
// every scheduled invocation; a bundle dispatches a call to / that carries it
// to its one scheduled member.
const ScheduleHeader = "X-Scheduled-At"

// TopicHeader is the header the RabbitMQ connector sets on every event
// invocation; a bundle dispatches a call to / that carries it to the member
// subscribed to that topic.
const TopicHeader = "X-Topic"

// Bundle returns the function of the bundled faasd-CE stack that serves
// function: its service. Every function of the table is bundled.
func Bundle(function string) (string, bool) {
	r, ok := Lookup(function)
	if !ok {
		return "", false
	}
	return r.Service, true
}

// Members returns the routes of service's functions, in table order.
func Members(service string) []Route {
	var out []Route
	for _, r := range Table() {
		if r.Service == service {
			out = append(out, r)
		}
	}
	return out
}

// CheckBundles reports every reason the routes cannot be bundled one function
// per service: two members of a service subscribed to the same topic (the
// connector would invoke the bundle once and only one member would see the
// event), more than one scheduled member in a service (a bundle has one
// schedule annotation), two public routes of a service that serve the same
// method and path, a public path under InternalPrefix, and a service name that
// is also a function name (the two stacks would disagree on what it is).
func CheckBundles(table []Route) error {
	var errs []error
	functions := map[string]bool{}
	for _, r := range table {
		functions[r.Function] = true
	}
	topicOwner := map[string]string{} // service/topic -> function
	scheduled := map[string]string{}  // service -> function
	var services []string
	for i, r := range table {
		if !slices.Contains(services, r.Service) {
			services = append(services, r.Service)
		}
		switch r.Kind {
		case Event:
			for _, t := range r.Topics {
				key := r.Service + "/" + t
				if other, dup := topicOwner[key]; dup {
					errs = append(errs, fmt.Errorf("service %s: %s and %s both subscribe to %s", r.Service, other, r.Function, t))
					continue
				}
				topicOwner[key] = r.Function
			}
		case Scheduled:
			if other, dup := scheduled[r.Service]; dup {
				errs = append(errs, fmt.Errorf("service %s: %s and %s are both scheduled (a bundle has one schedule)", r.Service, other, r.Function))
				continue
			}
			scheduled[r.Service] = r.Function
		case Public:
			if strings.HasPrefix(r.Path+"/", "/"+strings.Trim(InternalPrefix, "/")+"/") {
				errs = append(errs, fmt.Errorf("%s: public path %s is under the reserved prefix %s", r.Function, r.Path, InternalPrefix))
			}
			for _, o := range table[:i] {
				if o.Kind == Public && o.Service == r.Service && o.Method == r.Method && samePattern(o.Path, r.Path) {
					errs = append(errs, fmt.Errorf("service %s: %s and %s both serve %s %s", r.Service, o.Function, r.Function, r.Method, r.Path))
				}
			}
		}
	}
	for _, s := range services {
		if functions[s] {
			errs = append(errs, fmt.Errorf("service %s is also the name of a function", s))
		}
	}
	return errors.Join(errs...)
}

// samePattern reports whether two ServeMux-style paths match the same
// requests (wildcard names aside).
func samePattern(a, b string) bool {
	return wildcard.ReplaceAllString(a, "{}") == wildcard.ReplaceAllString(b, "{}")
}
