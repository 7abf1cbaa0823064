package deploycheck

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// modulePath is the module line of the repository's go.mod.
func modulePath(t *testing.T) string {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(read(t, "go.mod")))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.TrimSpace(m)
		}
	}
	t.Fatal("go.mod has no module line")
	return ""
}

// packageConsts are the string constants declared in the non-test files of
// the package in dir, by name.
func packageConsts(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, src, 0)
		if err != nil {
			return nil, err
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						out[name.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
		}
	}
	return out, nil
}

// tracerScopes are the instrumentation scopes src (the file path of
// package dir) asks a tracer provider for, X.Tracer(scope), each as
// "file:line: scope"; a scope that is not a string literal or a constant of
// the package is reported as such.
func tracerScopes(path string, src []byte, consts map[string]string) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		return nil, err
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Tracer" {
			return true
		}
		scope := "(not a constant)"
		switch a := call.Args[0].(type) {
		case *ast.BasicLit:
			if a.Kind == token.STRING {
				scope, _ = strconv.Unquote(a.Value)
			}
		case *ast.Ident:
			if v, ok := consts[a.Name]; ok {
				scope = v
			}
		}
		out = append(out, fmt.Sprintf("%s:%d\x00%s", path, fset.Position(call.Pos()).Line, scope))
		return true
	})
	return out, nil
}

// Every span's instrumentation scope is the import path of the package that
// starts it (github.com/shopfaas/shop/internal/relay, …/connectors/scheduler),
// as OpenTelemetry asks of an instrumentation library, so Jaeger's
// otel.scope.name leads to the code that made a span. Until 2026-12-08 the
// scheduler's scope was "scheduler" and four others were paths no package
// has (github.com/shopfaas/shop/relay, …/redis, …/postgres, …/connector).
func TestEveryTracerScopeIsItsPackagesImportPath(t *testing.T) {
	mod, r := modulePath(t), root(t)
	consts := map[string]map[string]string{} // by directory
	n := 0
	err := eachCodeFile(t, func(path string, src []byte) error {
		if !bytes.Contains(src, []byte(".Tracer(")) {
			return nil
		}
		dir := filepath.Dir(path)
		if consts[dir] == nil {
			c, err := packageConsts(dir)
			if err != nil {
				return err
			}
			consts[dir] = c
		}
		relPath, err := filepath.Rel(r, path)
		if err != nil {
			return err
		}
		scopes, err := tracerScopes(relPath, src, consts[dir])
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(r, dir)
		if err != nil {
			return err
		}
		want := mod + "/" + filepath.ToSlash(rel)
		for _, s := range scopes {
			n++
			at, scope, _ := strings.Cut(s, "\x00")
			if scope != want {
				t.Errorf("%s: tracer scope %q, want its package's import path %q", at, scope, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("found %d tracer scopes in the code, expected at least 5: is the parsing stale?", n)
	}
}
