package stackfile_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/openfaas/go-sdk/stack"

	"github.com/shopfaas/shop/dev/stackfile"
	"github.com/shopfaas/shop/fnserve"
	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/routes"
)

// Every function of stack.yml is in the table and every function of the table
// is in stack.yml, with the annotations its kind needs.
func TestStackMatchesRouteTable(t *testing.T) {
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
		if r.Kind == routes.Public {
			// What faas-cli describe shows: the public route, the root call
			// faas-cli invoke makes, and who may call (docs/faas-cli.md).
			invoke := r.Method + " /function/" + r.Function
			if ps := pathParams(r.Path); len(ps) > 0 {
				invoke += "?" + strings.Join(ps, "=&") + "="
			}
			want := map[string]string{"shop.route": r.Method + " " + r.Path, "shop.invoke": invoke, "shop.access": r.Access}
			for k, v := range want {
				if ann[k] != v {
					t.Errorf("%s: annotation %s is %q, the route table says %q", r.Function, k, ann[k], v)
				}
			}
		}
		if r.Kind != routes.Public && !slices.Contains(fn.Secrets, auth.CallersSecret) {
			t.Errorf("%s is %s but does not get the %s secret", r.Function, r.Kind, auth.CallersSecret)
		}
		own := auth.CredentialSecret(r.Function)
		if calls := slices.Contains(routes.AllCallers(), r.Function); calls != slices.Contains(fn.Secrets, own) {
			t.Errorf("%s: is an internal caller %v, declares its credential %s %v", r.Function, calls, own, !calls)
		}
		for _, sec := range fn.Secrets {
			if strings.HasPrefix(sec, "internal-token") && sec != own {
				t.Errorf("%s declares %s: a function reads its own credential only", r.Function, sec)
			}
		}
	}
	for _, name := range stackfile.Names(s) {
		if !slices.Contains(inTable, name) {
			t.Errorf("%s is in stack.yml but not in the route table", name)
		}
	}
}

// pathParams are the {names} of a route path, in order.
func pathParams(path string) []string {
	var out []string
	for seg := range strings.SplitSeq(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.Trim(seg, "{}"))
		}
	}
	return out
}

// Every function of both stacks sets OPENFAAS_NAME to its own name: fnserve
// takes the function's name (its metrics' function label, its root route,
// its logs) from it, else from the host name, and a pod's host name on
// Kubernetes is the pod's name (faas-netes sets no OPENFAAS_NAME).
func TestEveryFunctionNamesItself(t *testing.T) {
	eachFunctionOfBothStacks(t, func(file, name string, fn stack.Function) {
		if got, ok := fn.Environment["OPENFAAS_NAME"]; !ok || got != name {
			t.Errorf("%s: %s sets OPENFAAS_NAME %q (set: %v), want %q in its environment", file, name, got, ok, name)
		}
	})
}

// Every function of both stacks runs on a read-only root filesystem, as the
// connectors and Kong do on Kubernetes (dev/kubecheck's CheckPodSecurity):
// faas-netes then sets the container's readOnlyRootFilesystem and mounts an
// emptyDir at /tmp, the one place of-watchdog writes (its /tmp/.lock) and
// fnserve writes nothing (faas-netes, pkg/k8s/securityContext.go). faasd
// ignores the field.
func TestEveryFunctionRunsOnAReadOnlyRootFilesystem(t *testing.T) {
	eachFunctionOfBothStacks(t, func(file, name string, fn stack.Function) {
		if !fn.ReadOnlyRootFilesystem {
			t.Errorf("%s: %s does not set readonly_root_filesystem: true", file, name)
		}
	})
}

// eachFunctionOfBothStacks calls check with every function of stack.yml and
// of the generated stack.ce.yml (the stack's defaults, not the caller's
// environment); a stack that fails to load or holds no function fails the
// test.
func eachFunctionOfBothStacks(t *testing.T, check func(file, name string, fn stack.Function)) {
	t.Helper()
	for _, file := range []string{"../../stack.yml", "../../stack.ce.yml"} {
		s, err := stackfile.LoadEnv(file, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Functions) == 0 {
			t.Fatalf("%s has no function", file)
		}
		for _, name := range stackfile.Names(s) {
			check(file, name, s.Functions[name])
		}
	}
}

// Every function of both stacks is probed where it says whether it is built:
// ready_path makes of-watchdog forward its own /_/ready to fnserve's
// readiness path (of-watchdog's README, "ready_path"; pkg/readiness.go),
// and com.openfaas.ready.http.path points OpenFaaS Standard's readiness
// probe at the watchdog's /_/ready (OpenFaaS's docs, reference/workloads.md,
// "Custom HTTP health checks"). Either one alone leaves a replica whose
// handler cannot be built Ready: the watchdog's /_/ready then only checks
// its lock file, and Standard probes /_/health.
func TestEveryFunctionIsProbedWhereItSaysItIsBuilt(t *testing.T) {
	const (
		envKey        = "ready_path"
		annotationKey = "com.openfaas.ready.http.path"
	)
	eachFunctionOfBothStacks(t, func(file, name string, fn stack.Function) {
		if got := fn.Environment[envKey]; got != fnserve.ReadyPath {
			t.Errorf("%s: %s's environment sets %s %q, want %q (fnserve.ReadyPath)", file, name, envKey, got, fnserve.ReadyPath)
		}
		var got string
		if fn.Annotations != nil {
			got = (*fn.Annotations)[annotationKey]
		}
		if got != fnserve.ReadyPath {
			t.Errorf("%s: %s's annotation %s is %q, want %q (the watchdog's /_/ready)", file, name, annotationKey, got, fnserve.ReadyPath)
		}
	})
}

// substLine is a line of a stack file's environment whose value is a single
// ${VAR...} substitution: either "KEY: <value>" (quoted or not) or, on the
// line after "KEY: |2-", the literal block's one line.
var (
	substLine  = regexp.MustCompile(`^      ([A-Za-z_][A-Za-z0-9_]*): (.*\$\{.*)$`)
	blockKey   = regexp.MustCompile(`^      ([A-Za-z_][A-Za-z0-9_]*): \|2-$`)
	blockValue = regexp.MustCompile(`^        \$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}$`)
)

// faas-cli substitutes ${VAR} in the stack file's raw text before parsing
// the YAML, so a substituted value holding ": " or " #" (an SMTP user name)
// breaks a plain scalar or loses the rest of the value, and one holding a
// double quote or a backslash (SMTP_FROM='"Shop" <orders@example.com>')
// breaks a quoted one. Every substitution in an environment value is a
// literal block (|2-), and such a value arrives whole.
func TestSubstitutedValuesSurviveTheYAML(t *testing.T) {
	const tricky = `"Shop: orders" #1 'x' \n\ <a@b>`
	for _, file := range []string{"../../stack.yml", "../../stack.ce.yml"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		entries, vars, problems := substitutions(file, string(raw))
		for _, p := range problems {
			t.Error(p)
		}
		if file == "../../stack.yml" && len(entries) < 5 {
			t.Fatalf("%s: found %d substituted environment values; is the pattern stale?", file, len(entries))
		}
		s, err := stackfile.LoadEnv(file, func(k string) string {
			if vars[k] {
				return tricky
			}
			return ""
		})
		if err != nil {
			t.Errorf("%s with %q substituted: %v", file, tricky, err)
			continue
		}
		for _, e := range entries {
			if got := s.Functions[e.fn].Environment[e.key]; got != tricky {
				t.Errorf("%s: %s's %s is %q, want %q", file, e.fn, e.key, got, tricky)
			}
		}
	}
}

// A substitution of a function's environment in any other form than a
// literal block (|2-) of its own is named, whatever the form: a plain or
// quoted value, a block of another style (|-, >-), a block's second line.
func TestSubstitutionsOutsideALiteralBlockAreNamed(t *testing.T) {
	const stack = `functions:
  f:
    environment:
      GOOD: |2-
        ${GOOD:-}
      PLAIN: ${PLAIN:-}
      QUOTED: "${QUOTED:-}"
      STRIP: |-
        ${STRIP:-}
      FOLDED: >-
        ${FOLDED:-}
      SECOND: |2-
        text
        ${SECOND:-}
      TWO: |2-
        ${A:-}${B:-}
`
	entries, vars, problems := substitutions("stack.yml", stack)
	if len(entries) != 1 || entries[0] != (substitution{"f", "GOOD"}) || !vars["GOOD"] || len(vars) != 1 {
		t.Errorf("substitutions read %v (variables %v), want f's GOOD alone", entries, vars)
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{"(PLAIN: ${PLAIN:-})", `(QUOTED: "${QUOTED:-}")`, "(${STRIP:-})", "(${FOLDED:-})", "(${SECOND:-})", "(${A:-}${B:-})"} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem names %s; problems:\n%s", want, all)
		}
	}
	if len(problems) != 6 {
		t.Errorf("%d problems, want 6:\n%s", len(problems), all)
	}
}

// A substitution is one ${VAR} substituted in a function's environment.
type substitution struct{ fn, key string }

// substitutions reads the stack file raw (named file) line by line, as
// faas-cli's substitution sees it: the environment values that are one
// ${VAR} alone in a literal block (|2-), the variables they substitute, and
// a problem for every other ${ in an environment.
func substitutions(file, raw string) (entries []substitution, vars map[string]bool, problems []string) {
	vars = map[string]bool{}
	fn, inEnv, block := "", false, ""
	for line := range strings.SplitSeq(raw, "\n") {
		switch {
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			fn, inEnv = strings.TrimSuffix(strings.TrimSpace(line), ":"), false
		case strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     "):
			inEnv = line == "    environment:"
		case !inEnv:
		case block != "":
			if m := blockValue.FindStringSubmatch(line); m != nil {
				entries = append(entries, substitution{fn, block})
				vars[m[1]] = true
			} else if strings.Contains(line, "${") {
				problems = append(problems, fmt.Sprintf("%s: %s's %s: one substitution per literal block, alone on its line (%s)", file, fn, block, strings.TrimSpace(line)))
			}
			block = ""
		case blockKey.MatchString(line):
			block = blockKey.FindStringSubmatch(line)[1]
		case substLine.MatchString(line):
			problems = append(problems, fmt.Sprintf("%s: %s's %s: make the substitution a literal block (|2-) (%s)", file, fn,
				substLine.FindStringSubmatch(line)[1], strings.TrimSpace(line)))
		case strings.Contains(line, "${"):
			// A block of another style (|-, >-), a block's second line:
			// faas-cli substitutes there too, unchecked by the test above.
			problems = append(problems, fmt.Sprintf("%s: %s's environment: a substitution outside a literal block (|2-) of its own (%s)", file, fn, strings.TrimSpace(line)))
		}
	}
	return entries, vars, problems
}

// A key set both in a function's environment and in its environment_file is
// refused: faas-cli gives the file precedence (compileEnvironment merges the
// file over the map), which a reader of the stack file would not expect.
func TestEnvironmentRefusesAKeyInBothPlaces(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/env.yml", []byte("environment:\n  LOG_LEVEL: info\n  A: from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env, err := stackfile.Environment(dir, stack.Function{EnvironmentFile: []string{"env.yml"}, Environment: map[string]string{"B": "own"}})
	if err != nil || env["A"] != "from-file" || env["B"] != "own" || env["LOG_LEVEL"] != "info" {
		t.Fatalf("disjoint keys: %v, %v", env, err)
	}
	_, err = stackfile.Environment(dir, stack.Function{EnvironmentFile: []string{"env.yml"}, Environment: map[string]string{"LOG_LEVEL": "debug"}})
	if err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Fatalf("LOG_LEVEL in both: err %v, want it named", err)
	}
	// Neither stack does it, with either environment file.
	for _, file := range []string{"../../stack.yml", "../../stack.ce.yml"} {
		for _, shopEnv := range []string{"development", "production"} {
			s, err := stackfile.LoadEnv(file, func(k string) string {
				if k == "SHOP_ENV" {
					return shopEnv
				}
				return ""
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range stackfile.Names(s) {
				if _, err := stackfile.Environment("../..", s.Functions[name]); err != nil {
					t.Errorf("%s (SHOP_ENV=%s) %s: %v", file, shopEnv, name, err)
				}
			}
		}
	}
}
