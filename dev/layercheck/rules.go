package main

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// The layer rules of docs/architecture.md. Paths are relative to the module
// root ("internal/orders"); an import outside the module keeps its own path.

// areas are the top-level folders that hold Go packages, each with the areas
// its packages (their tests included) may import. A package may always
// import the packages of its own unit (see unit).
var areas = map[string][]string{
	"internal":   {"internal"},
	"api":        {},
	"fnserve":    {"internal"},
	"functions":  {"api", "internal"},
	"bundles":    {"internal", "functions"},
	"connectors": {"internal"},
	"cmd":        {"api", "internal", "fnserve", "functions", "bundles", "connectors", "dev"},
	"dev":        {"api", "internal", "fnserve", "functions", "bundles", "connectors", "dev"},
	"tests":      {"api", "internal", "fnserve", "functions", "bundles", "connectors", "dev"},
}

// ownUnits are the areas whose first-level folders are separate units: one
// function, bundle, connector or command, which no sibling imports.
var ownUnits = []string{"functions", "bundles", "connectors", "cmd"}

// domain are the service domain packages: they decide, and do no I/O.
var domain = []string{
	"internal/users", "internal/catalog", "internal/cart", "internal/inventory",
	"internal/orders", "internal/payments", "internal/notifications",
}

// kernel are the shop's packages a domain package may import besides the
// other domain packages: error kinds, the event envelope, identities, the
// API's spelling of ids and of a body's integers, and the invisible
// characters a name may not hold.
var kernel = []string{"internal/fault", "internal/events", "internal/auth", "internal/ids", "internal/jsonint", "internal/formatchar"}

// domainThirdParty are the only packages outside the standard library a
// domain package may import: ids, and Unicode normalisation (users compose
// an email before they compare it: pure computation over tables, as
// unicode/utf8 is, which the standard library does not carry).
var domainThirdParty = []string{"github.com/google/uuid", "golang.org/x/text/unicode/norm"}

// noIO are the standard-library trees a domain package may not import: the
// network (net/http among it), databases, files and processes, logging.
var noIO = []string{"net", "database/sql", "os", "syscall", "log"}

// httpPackages are the HTTP trees no store package may import.
var httpPackages = []string{
	"net/http", "internal/fnhttp", "internal/catalogclient", "internal/gatewayurl", "fnserve",
	"go.opentelemetry.io/contrib/instrumentation/net/http", "github.com/gorilla/mux",
}

// storePackage matches the last element of a store package's path:
// ordersdb, cartredis.
var storePackage = regexp.MustCompile(`^[a-z]+(db|redis)$`)

// A Known violation exists today and is scheduled to go.
type Known struct {
	From string // the importing package, module-relative
	Rule string // the rule it breaks
	Why  string // the change that removes it
}

// known are the shop's known violations. They are not reported; an entry
// that matches nothing is, so the list can only shrink. None today.
var known []Known

// Rule names, as a violation reports them.
const (
	ruleAreas  = "areas"
	ruleDomain = "domain"
	ruleStore  = "store"
	ruleKnown  = "known"
)

// A Package is what the check needs of one package of the module.
type Package struct {
	// Path is the package's import path.
	Path string
	// Imports are the import paths of the package's own files.
	Imports []string
	// TestImports are those of its _test.go files (both test packages).
	TestImports []string
}

// A Violation is one import that crosses a boundary of the rules. Paths of
// the module's packages are relative to its root (internal/orders).
type Violation struct {
	Rule   string // ruleAreas, ruleDomain, ruleStore or ruleKnown
	From   string // the importing package
	Import string // the imported package; "" when the package itself is the problem
	Test   bool   // the import is in a _test.go file
	Why    string // the rule in words
}

func (v Violation) String() string {
	if v.Import == "" {
		return fmt.Sprintf("%s: %s [%s]", v.From, v.Why, v.Rule)
	}
	by := "imports"
	if v.Test {
		by = "imports in a test"
	}
	return fmt.Sprintf("%s %s %s: %s [%s]", v.From, by, v.Import, v.Why, v.Rule)
}

// Check returns every violation of the rules by the packages of module,
// sorted, leaving out those in known and reporting an entry of known that
// matches none.
func Check(module string, pkgs []Package, known []Known) []Violation {
	rel := func(imp string) (string, bool) { return strings.CutPrefix(imp, module+"/") }
	var out []Violation
	for _, p := range pkgs {
		from, _ := rel(p.Path)
		if _, ok := areas[area(from)]; !ok {
			out = append(out, Violation{Rule: ruleAreas, From: from,
				Why: fmt.Sprintf("%q is not an area of the layer rules; add it to dev/layercheck and docs/architecture.md", area(from))})
			continue
		}
		for _, full := range p.Imports {
			imp, inModule := rel(full)
			out = appendIf(out, checkArea(from, imp, inModule, false))
			out = appendIf(out, checkDomain(from, imp, inModule))
			out = appendIf(out, checkStore(from, imp))
		}
		for _, full := range p.TestImports {
			imp, inModule := rel(full)
			out = appendIf(out, checkArea(from, imp, inModule, true))
		}
	}
	out = dropKnown(out, known)
	slices.SortFunc(out, func(a, b Violation) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

// dropKnown removes the violations listed in known and adds one for each
// entry of known that matched none.
func dropKnown(vs []Violation, known []Known) []Violation {
	used := make([]bool, len(known))
	vs = slices.DeleteFunc(vs, func(v Violation) bool {
		for i, k := range known {
			if k.From == v.From && k.Rule == v.Rule {
				used[i] = true
				return true
			}
		}
		return false
	})
	for i, k := range known {
		if !used[i] {
			vs = append(vs, Violation{Rule: ruleKnown, From: k.From,
				Why: fmt.Sprintf("listed as a known violation of rule %q (%s) but has none: remove it from known in dev/layercheck", k.Rule, k.Why)})
		}
	}
	return vs
}

func appendIf(out []Violation, v *Violation) []Violation {
	if v == nil {
		return out
	}
	return append(out, *v)
}

// checkArea enforces the areas table: which top-level folders a package may
// import from, and that no function, bundle, connector or command imports a
// sibling.
func checkArea(from, imp string, inModule, test bool) *Violation {
	if !inModule || unit(from) == unit(imp) {
		return nil
	}
	to := area(imp)
	if slices.Contains(areas[area(from)], to) && (area(from) != to || !slices.Contains(ownUnits, to)) {
		return nil
	}
	why := fmt.Sprintf("%s/ may import only %s/", area(from), strings.Join(areas[area(from)], "/, "))
	if len(areas[area(from)]) == 0 {
		why = fmt.Sprintf("%s/ imports nothing of the shop", area(from))
	}
	if area(from) == to {
		why = fmt.Sprintf("one %s imports no other", strings.TrimSuffix(to, "s"))
	}
	if to == "cmd" {
		why = "nothing imports a command"
	}
	return &Violation{Rule: ruleAreas, From: from, Import: imp, Test: test, Why: why}
}

// checkDomain keeps the domain packages free of I/O: from the module they
// import only other domain packages and the kernel; from outside, the
// standard library without its I/O trees, and domainThirdParty.
func checkDomain(from, imp string, inModule bool) *Violation {
	if !slices.Contains(domain, from) {
		return nil
	}
	v := &Violation{Rule: ruleDomain, From: from, Import: imp}
	switch {
	case inModule:
		if slices.Contains(domain, imp) || slices.Contains(kernel, imp) {
			return nil
		}
		v.Why = "a domain package imports only domain packages and " + strings.Join(kernel, ", ")
	case standard(imp):
		if !under(imp, noIO...) {
			return nil
		}
		v.Why = "a domain package does no I/O (network, database, files, processes, logs)"
	default:
		if under(imp, domainThirdParty...) {
			return nil
		}
		v.Why = "a domain package imports no third-party module but " + strings.Join(domainThirdParty, ", ")
	}
	return v
}

// checkStore keeps HTTP out of the store packages: they speak SQL or Redis
// and return domain values and fault kinds.
func checkStore(from, imp string) *Violation {
	if !strings.HasPrefix(from, "internal/") || !storePackage.MatchString(path.Base(from)) || !under(imp, httpPackages...) {
		return nil
	}
	return &Violation{Rule: ruleStore, From: from, Import: imp, Why: "a store package imports no HTTP package"}
}

// area is the first element of a module-relative path.
func area(rel string) string {
	first, _, _ := strings.Cut(rel, "/")
	return first
}

// unit is the area for internal/, dev/, fnserve/ and tests/, and the first
// two elements (functions/get-order) for the areas of ownUnits.
func unit(rel string) string {
	parts := strings.SplitN(rel, "/", 3)
	if len(parts) >= 2 && slices.Contains(ownUnits, parts[0]) {
		return parts[0] + "/" + parts[1]
	}
	return parts[0]
}

// standard reports whether imp is a standard-library path: its first element
// has no dot.
func standard(imp string) bool {
	return !strings.Contains(area(imp), ".")
}

// under reports whether imp is one of roots or inside one of them.
func under(imp string, roots ...string) bool {
	for _, r := range roots {
		if imp == r || strings.HasPrefix(imp, r+"/") {
			return true
		}
	}
	return false
}
