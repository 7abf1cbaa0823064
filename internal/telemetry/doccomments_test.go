package telemetry_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Each doc comment of this package's functions and types is its own
// declaration's: it starts with the name it documents ("Method is …", "A
// Shop …"). godoc gives a declaration the comment right above it, so a
// comment inserted under another's gives the declaration below both and
// the one above none: Method was documented as "methodAttrs is
// http.request.method …" and methodAttrs not at all until 2026-12-07.
func TestEachDocCommentDocumentsItsOwnDeclaration(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go file: %v", err)
	}
	checked := 0
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			var name string
			var doc *ast.CommentGroup
			switch d := decl.(type) {
			case *ast.FuncDecl:
				name, doc = d.Name.Name, d.Doc
			case *ast.GenDecl:
				if ts, ok := d.Specs[0].(*ast.TypeSpec); ok && len(d.Specs) == 1 {
					name, doc = ts.Name.Name, d.Doc
				}
			}
			if doc == nil || name == "" {
				continue
			}
			checked++
			text := doc.Text()
			if !regexp.MustCompile(`^(?:(?:A|An|The) )?` + regexp.QuoteMeta(name) + `\b`).MatchString(text) {
				first, _, _ := strings.Cut(text, "\n")
				t.Errorf("%s: the doc comment of %s starts %q, not with its name", fset.Position(decl.Pos()), name, first)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no doc comment checked")
	}
}
