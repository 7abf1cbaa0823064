// Command importgroups checks, and with -w rewrites, the import blocks of Go
// files: the standard library, then third-party modules, then the shop's own
// packages (github.com/shopfaas/shop), each group sorted and separated from
// the next by one blank line.
//
//	go run ./dev/importgroups [-w] [-local github.com/shopfaas/shop] file.go ...
//
// It formats exactly as `goimports -local` does (it calls the same library,
// without adding or removing imports), with one difference: blank lines
// inside an import block are dropped first, so an import standing in the
// wrong group is moved to its own group instead of being kept where it is.
//
// Without -w it lists the files whose imports are not grouped and exits 1
// when there is any; with -w it rewrites them and lists what it changed.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"slices"

	"golang.org/x/tools/imports"
)

func main() {
	bad, err := run(os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "importgroups:", err)
		os.Exit(2)
	}
	if bad {
		os.Exit(1)
	}
}

// run checks (or rewrites, with -w) the files named in args and lists on out
// each file that is not grouped. It reports bad when a file was listed and
// -w was not given.
func run(args []string, out io.Writer) (bad bool, err error) {
	fs := flag.NewFlagSet("importgroups", flag.ContinueOnError)
	write := fs.Bool("w", false, "rewrite the files instead of only listing them")
	local := fs.String("local", "github.com/shopfaas/shop", "import path prefix of the last group")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *local == "" {
		return false, errors.New("-local must not be empty")
	}
	for _, name := range fs.Args() {
		src, err := os.ReadFile(name)
		if err != nil {
			return false, err
		}
		got, err := Format(name, src, *local)
		if err != nil {
			return false, err
		}
		if bytes.Equal(src, got) {
			continue
		}
		fmt.Fprintln(out, name)
		if !*write {
			bad = true
			continue
		}
		if err := os.WriteFile(name, got, 0o644); err != nil {
			return false, err
		}
	}
	return bad, nil
}

// Format returns src with its import blocks regrouped: standard library,
// third party, then the packages under local. It neither adds nor removes an
// import, and leaves the rest of the file as gofmt leaves it. A generated
// file (a "// Code generated ... DO NOT EDIT." line before its package
// clause) is returned unchanged: its generator decides its layout.
func Format(filename string, src []byte, local string) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, parser.ImportsOnly|parser.ParseComments)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return src, nil
	}
	joined := joinImportBlocks(fset, f, src)
	// LocalPrefix is the library's own package-level setting (goimports'
	// -local flag sets it the same way); this program is its only user.
	imports.LocalPrefix = local
	return imports.Process(filename, joined, &imports.Options{
		Comments:   true,
		TabIndent:  true,
		TabWidth:   8,
		FormatOnly: true,
	})
}

// joinImportBlocks drops the blank lines inside every parenthesised import
// declaration of f (parsed from src), so that goimports sorts all of its imports as one run
// and inserts the blank lines between groups itself.
func joinImportBlocks(fset *token.FileSet, f *ast.File, src []byte) []byte {
	out := src
	// With ImportsOnly, Decls holds the import declarations only; walk them
	// backwards so the offsets of the earlier ones stay valid.
	for i := len(f.Decls) - 1; i >= 0; i-- {
		d, ok := f.Decls[i].(*ast.GenDecl)
		if !ok || d.Tok != token.IMPORT || !d.Lparen.IsValid() {
			continue
		}
		start, end := fset.Position(d.Lparen).Offset+1, fset.Position(d.Rparen).Offset
		out = slices.Concat(out[:start], dropBlankLines(out[start:end]), out[end:])
	}
	return out
}

// dropBlankLines removes the lines of block that hold only white space,
// keeping its first and last line (the rest of the "(" line and the
// indentation before ")").
func dropBlankLines(block []byte) []byte {
	lines := bytes.Split(block, []byte("\n"))
	kept := [][]byte{lines[0]}
	for _, l := range lines[1 : len(lines)-1] {
		if len(bytes.TrimSpace(l)) > 0 {
			kept = append(kept, l)
		}
	}
	if len(lines) > 1 {
		kept = append(kept, lines[len(lines)-1])
	}
	return bytes.Join(kept, []byte("\n"))
}
