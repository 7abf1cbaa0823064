package buildcheck

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// connectorProject makes a small project in a temporary folder: the real
// go.mod and go.sum, an internal package, and connectors/scheduler with the
// REAL scheduler Dockerfile and the given main.go, so the check runs the
// steps the image runs.
func connectorProject(t *testing.T, mainGo string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		copyFile(t, filepath.Join(root, f), filepath.Join(dir, f))
	}
	writeFile(t, filepath.Join(dir, "internal", "greet", "greet.go"),
		"// Package greet is a fixture.\npackage greet\n\n// Hello is a fixture.\nfunc Hello() string { return \"hello\" }\n")
	copyFile(t, filepath.Join(root, "connectors", "scheduler", "Dockerfile"), filepath.Join(dir, "connectors", "scheduler", "Dockerfile"))
	writeFile(t, filepath.Join(dir, "connectors", "scheduler", "main.go"), mainGo)
	// Not part of the context: the check must not copy it.
	writeFile(t, filepath.Join(dir, "functions", "x", "broken.go"), "package x\nfunc {")
	return dir
}

const goodConnector = `package main

import (
	"fmt"

	"github.com/shopfaas/shop/internal/greet"
)

func main() { fmt.Println(greet.Hello()) }
`

func TestCheckConnectors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go vet and go build")
	}
	tests := []struct {
		name     string
		mainGo   string
		stepHas  string // substring of the failing step; empty when the check passes
		outputHa string
	}{
		{name: "builds", mainGo: goodConnector},
		{name: "unformatted", mainGo: strings.Replace(goodConnector, "func main() {", "func main()   {", 1), stepHas: "gofmt", outputHa: "connectors/scheduler/main.go"},
		{name: "vet finding", mainGo: strings.Replace(goodConnector, "fmt.Println(greet.Hello())", `fmt.Printf("%d\n", greet.Hello())`, 1), stepHas: "go vet", outputHa: "%d"},
		{name: "does not compile", mainGo: strings.Replace(goodConnector, "greet.Hello()", "greet.Bye()", 1), stepHas: "go vet", outputHa: "Bye"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := connectorProject(t, tt.mainGo)
			cs, err := FindConnectors(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]Connector{{Name: "scheduler", Dockerfile: filepath.Join("connectors", "scheduler", "Dockerfile")}}, cs); diff != "" {
				t.Fatalf("FindConnectors (-want +got):\n%s", diff)
			}
			res := CheckConnectors(context.Background(), Options{BuildDir: "build"}, dir, cs)
			if len(res) != 1 {
				t.Fatalf("got %d results, want 1", len(res))
			}
			r := res[0]
			if r.Name != "connector/scheduler" || r.Context != filepath.Join(dir, "build", "connectors", "scheduler") {
				t.Errorf("result names %q in %q", r.Name, r.Context)
			}
			if tt.stepHas == "" {
				if !r.OK() {
					t.Fatalf("check failed at %q: %v\n%s", r.Step, r.Err, r.Output)
				}
				if _, err := os.Stat(filepath.Join(r.Context, "bin", "scheduler")); err != nil {
					t.Errorf("the build step left no binary: %v", err)
				}
				if _, err := os.Stat(filepath.Join(r.Context, "functions")); err == nil {
					t.Errorf("the context holds functions/, which the image's context does not")
				}
				return
			}
			if r.OK() {
				t.Fatalf("check passed, want a failure at a step containing %q", tt.stepHas)
			}
			if !strings.Contains(r.Step, tt.stepHas) || !strings.Contains(r.Output, tt.outputHa) {
				t.Errorf("failed at step %q with output %q; want step containing %q and output containing %q", r.Step, r.Output, tt.stepHas, tt.outputHa)
			}
		})
	}
}

func TestCheckConnectorsBrokenDockerfileStep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	dir := connectorProject(t, goodConnector)
	df := filepath.Join(dir, "connectors", "scheduler", "Dockerfile")
	b, err := os.ReadFile(df)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(b), "./connectors/scheduler\n", "./connectors/no-such-connector\n", 1)
	if broken == string(b) {
		t.Fatal("fixture: the scheduler Dockerfile no longer builds ./connectors/scheduler")
	}
	writeFile(t, df, broken)
	res := CheckConnectors(context.Background(), Options{BuildDir: "build"}, dir, []Connector{{Name: "scheduler", Dockerfile: filepath.Join("connectors", "scheduler", "Dockerfile")}})
	if res[0].OK() || !strings.Contains(res[0].Step, "no-such-connector") {
		t.Fatalf("got step %q err %v, want a failure of the broken step", res[0].Step, res[0].Err)
	}
}

func TestFindConnectorsOnly(t *testing.T) {
	dir := connectorProject(t, goodConnector)
	writeFile(t, filepath.Join(dir, "connectors", "nodockerfile", "main.go"), "package main\n")
	cs, err := FindConnectors(dir, nil)
	if err != nil || len(cs) != 1 {
		t.Fatalf("FindConnectors = %v, %v; want only scheduler (a folder without Dockerfile is no image)", cs, err)
	}
	if _, err := FindConnectors(dir, []string{"nodockerfile"}); err == nil {
		t.Error("naming a connector without a Dockerfile: no error")
	}
	if _, err := FindConnectors(t.TempDir(), nil); err != nil {
		t.Errorf("a project without connectors/: %v", err)
	}
}

// TestRealConnectorDockerfiles checks the project's own connector images: each
// build stage vets and builds its own package, with the gofmt gate first, and
// the Dockerfile.dockerignore beside it keeps exactly ConnectorContextPaths.
func TestRealConnectorDockerfiles(t *testing.T) {
	root := repoRoot(t)
	cs, err := FindConnectors(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"outbox-relay", "rabbitmq", "scheduler"}, names); diff != "" {
		t.Errorf("connectors with a Dockerfile (-want +got):\n%s", diff)
	}
	for _, c := range cs {
		b, err := os.ReadFile(filepath.Join(root, c.Dockerfile))
		if err != nil {
			t.Fatal(err)
		}
		st, err := ParseDockerfile(b)
		if err != nil {
			t.Fatalf("%s: %v", c.Dockerfile, err)
		}
		pkg := "./connectors/" + c.Name
		if len(st.Steps) < 3 || !strings.Contains(st.Steps[0], "gofmt") ||
			!slices.ContainsFunc(st.Steps, func(s string) bool { return strings.Contains(s, "go vet") && strings.Contains(s, pkg) }) ||
			!slices.ContainsFunc(st.Steps, func(s string) bool { return strings.Contains(s, "go build") && strings.HasSuffix(s, pkg) }) {
			t.Errorf("%s: build steps %q: want the gofmt gate, then go vet and go build of %s", c.Dockerfile, st.Steps, pkg)
		}
		ign, err := os.ReadFile(filepath.Join(root, c.Dockerfile+".dockerignore"))
		if err != nil {
			t.Fatalf("%s: %v", c.Dockerfile, err)
		}
		if diff := dockerignoreDiff(ign); diff != "" {
			t.Errorf("%s.dockerignore: its rules (-want +got):\n%s", c.Dockerfile, diff)
		}
	}
}

// dockerignoreDiff compares the rules of a connector's Dockerfile.dockerignore
// (its lines but blank ones and comments) with the ones that keep exactly
// ConnectorContextPaths: "*" first, which ignores everything, then "!<path>"
// for each path kept. "" when they are the same.
func dockerignoreDiff(ign []byte) string {
	want := []string{"*"}
	for _, p := range ConnectorContextPaths() {
		want = append(want, "!"+p)
	}
	var rules []string
	for _, l := range strings.Split(string(ign), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, l)
		}
	}
	return cmp.Diff(want, rules)
}

// A Dockerfile.dockerignore that keeps more than ConnectorContextPaths (no
// "*": the whole project; a path ignored again after it is kept; another
// path kept) or fewer fails the check.
func TestDockerignoreCheckRefusesAnotherContext(t *testing.T) {
	const good = "# comment\n*\n!go.mod\n!go.sum\n!internal\n!connectors\n"
	if diff := dockerignoreDiff([]byte(good)); diff != "" {
		t.Fatalf("the context of ConnectorContextPaths is refused:\n%s", diff)
	}
	for name, ign := range map[string]string{
		"no *":              "!go.mod\n!go.sum\n!internal\n!connectors\n",
		"* last":            "!go.mod\n!go.sum\n!internal\n!connectors\n*\n",
		"a path re-ignored": good + "internal/secrets\n",
		"another path kept": good + "!functions\n",
		"a path not kept":   "*\n!go.mod\n!go.sum\n!internal\n",
	} {
		if dockerignoreDiff([]byte(ign)) == "" {
			t.Errorf("%s: the check passed %q", name, ign)
		}
	}
}
