package buildcheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shopfaas/shop/dev/stackfile"
)

// repoRoot is the project's directory (this package is dev/buildcheck).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// copyFile copies src to dst, creating dst's directory.
func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, dst, string(b))
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// fixtureProject builds a small copy of the project in a temporary folder:
// the real go.mod, go.sum, template/shop-go and fnserve with the project
// packages fnserve imports (found with go list, so the fixture follows the
// real code), plus one handler per entry of handlers and a stack file that
// lists them with the real configuration.copy.
func fixtureProject(t *testing.T, handlers map[string]string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		copyFile(t, filepath.Join(root, f), filepath.Join(dir, f))
	}
	tmpl := filepath.Join(root, "template", Lang)
	err := filepath.WalkDir(tmpl, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		copyFile(t, p, filepath.Join(dir, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./fnserve")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list fnserve deps: %v", err)
	}
	for pkgDir := range strings.FieldsSeq(string(out)) {
		rel, err := filepath.Rel(root, pkgDir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a dependency from the module cache
		}
		entries, err := os.ReadDir(pkgDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), "_test.go") {
				copyFile(t, filepath.Join(pkgDir, e.Name()), filepath.Join(dir, rel, e.Name()))
			}
		}
	}
	var stack strings.Builder
	stack.WriteString("version: 1.0\nprovider:\n  name: openfaas\nconfiguration:\n  templates:\n    - name: shop-go\n" +
		"  copy:\n    - go.mod\n    - go.sum\n    - internal\n    - fnserve\nfunctions:\n")
	for name, src := range handlers {
		writeFile(t, filepath.Join(dir, "functions", name, "handler.go"), src)
		stack.WriteString("  " + name + ":\n    lang: shop-go\n    handler: ./functions/" + name + "\n    image: fixture/" + name + ":dev\n")
	}
	stack.WriteString("  not-go:\n    lang: dockerfile\n    handler: ./functions/not-go\n    image: fixture/not-go:dev\n")
	writeFile(t, filepath.Join(dir, "stack.yml"), stack.String())
	return dir
}

const goodHandler = `// Package function is a fixture.
package function

import (
	"log/slog"
	"net/http"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fnhttp"
)

// Build returns a handler that greets.
func Build(_ *config.Reader, log *slog.Logger) (http.Handler, error) {
	return fnhttp.Adapt(log, func(w http.ResponseWriter, r *http.Request) error {
		return fnhttp.JSON(w, http.StatusOK, map[string]string{"ok": "yes"})
	}), nil
}
`

// TestCheckFixtures builds four fixture functions and the template's starter
// in one run (they share the build cache): only the good ones may pass, and
// each bad one must fail at the step that guards against its defect.
func TestCheckFixtures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go toolchain on five build contexts")
	}
	handlers := map[string]string{
		"good":        goodHandler,
		"unformatted": strings.Replace(goodHandler, "func Build(", "func   Build(", 1),
		"broken":      strings.Replace(goodHandler, "fnhttp.JSON(", "fnhttp.NoSuchJSON(", 1),
		"vet-error": strings.Replace(goodHandler, `map[string]string{"ok": "yes"})`,
			`map[string]string{"ok": fmt.Sprintf("%d", "yes")})`, 1),
	}
	handlers["vet-error"] = strings.Replace(handlers["vet-error"], `"log/slog"`, "\"fmt\"\n\t\"log/slog\"", 1)
	dir := fixtureProject(t, handlers)
	t.Chdir(dir)

	s, err := stackfile.Load("stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	targets, err := Targets(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	targets = append(targets, Starter("template"))
	var names []string
	for _, tg := range targets {
		names = append(names, tg.Name)
	}
	if diff := cmp.Diff([]string{"broken", "good", "unformatted", "vet-error", StarterName}, names); diff != "" {
		t.Fatalf("targets (-want +got):\n%s", diff)
	}

	progress := 0
	results := Check(context.Background(), Options{
		Copy: s.StackConfiguration.CopyExtraPaths, Parallel: 2,
		Progress: func(Result) { progress++ },
	}, targets)
	if progress != len(targets) {
		t.Errorf("progress called %d times, want %d", progress, len(targets))
	}

	type outcome struct {
		OK         bool
		StepHas    string
		OutputHas  string
		BinaryMade bool
	}
	want := map[string]outcome{
		"good":        {OK: true, BinaryMade: true},
		StarterName:   {OK: true, BinaryMade: true},
		"unformatted": {StepHas: "gofmt", OutputHas: "function/handler.go"},
		"broken":      {StepHas: "go vet", OutputHas: "NoSuchJSON"},
		"vet-error":   {StepHas: "go vet", OutputHas: "Sprintf format %d has arg"},
	}
	got := map[string]outcome{}
	for _, r := range results {
		o := outcome{OK: r.OK()}
		if strings.Contains(r.Step, want[r.Name].StepHas) {
			o.StepHas = want[r.Name].StepHas
		}
		if strings.Contains(r.Output, want[r.Name].OutputHas) {
			o.OutputHas = want[r.Name].OutputHas
		}
		if r.OK() {
			if _, err := os.Stat(filepath.Join(r.Context, "handler")); err == nil {
				o.BinaryMade = true
			}
		}
		got[r.Name] = o
		if r.OK() != want[r.Name].OK {
			t.Logf("%s: step %q err %v output:\n%s", r.Name, r.Step, r.Err, r.Output)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}

	// The build context is the one faas-cli would produce: template at the
	// root, handler and the copied paths under function/.
	for _, p := range []string{"Dockerfile", "go.work", "main.go", "function/handler.go", "function/go.mod",
		"function/go.sum", "function/fnserve/fnserve.go", "function/internal/fnhttp/fnhttp.go"} {
		if _, err := os.Stat(filepath.Join("build", "good", p)); err != nil {
			t.Errorf("build context lacks %s: %v", p, err)
		}
	}
}

func TestTargetsOnly(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "stack.yml"), `version: 1.0
provider:
  name: openfaas
functions:
  b-fn:
    lang: shop-go
    handler: ./functions/b-fn
    image: x/b
  a-fn:
    lang: shop-go
    handler: ./functions/a-fn
    image: x/a
  other:
    lang: dockerfile
    handler: ./other
    image: x/o
`)
	s, err := stackfile.Load(filepath.Join(dir, "stack.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		only    []string
		want    []Target
		wantErr bool
	}{
		{"all shop-go, sorted", nil, []Target{
			{Name: "a-fn", Handler: "./functions/a-fn", Lang: Lang}, {Name: "b-fn", Handler: "./functions/b-fn", Lang: Lang}}, false},
		{"only one", []string{"b-fn"}, []Target{{Name: "b-fn", Handler: "./functions/b-fn", Lang: Lang}}, false},
		{"starter alone is allowed", []string{StarterName}, nil, false},
		{"unknown name", []string{"nope"}, nil, true},
		{"not shop-go", []string{"other"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Targets(s, tt.only)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckShrinkwrapFailure(t *testing.T) {
	t.Chdir(t.TempDir())
	res := Check(context.Background(), Options{}, []Target{{Name: "missing", Handler: "./functions/missing", Lang: Lang}})
	if len(res) != 1 || res[0].OK() || res[0].Step != "shrinkwrap" {
		t.Fatalf("got %+v, want a shrinkwrap failure", res)
	}
}

func TestCheckCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Check(ctx, Options{Parallel: 1}, []Target{{Name: "a", Handler: "a", Lang: Lang}, {Name: "b", Handler: "b", Lang: Lang}})
	for _, r := range res {
		if r.OK() {
			t.Errorf("%s ran after cancellation", r.Name)
		}
	}
}
