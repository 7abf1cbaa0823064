// Command gen-bundles writes the bundled faasd-CE stack from internal/routes,
// stack.yml and gateway/kong.yml: stack.ce.yml, gateway/kong.ce.yml and
// functions/<service>/handler.go + handler_test.go for every service. With
// -check it writes nothing and exits 1 when a committed file is stale.
// `go generate ./cmd/shop-functions` runs it before regenerating the registry.
//
//	go run ./cmd/gen-bundles [-root .] [-check]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/shopfaas/shop/dev/bundlegen"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gen-bundles:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("gen-bundles", flag.ContinueOnError)
	root := fs.String("root", ".", "module root (where stack.yml lives)")
	check := fs.Bool("check", false, "only report stale files; write nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files, err := bundlegen.Files(*root)
	if err != nil {
		return err
	}
	stale := Stale(*root, files)
	if *check {
		if len(stale) > 0 {
			return fmt.Errorf("stale (run go run ./cmd/gen-bundles): %v", stale)
		}
		return nil
	}
	for _, name := range stale {
		path := filepath.Join(*root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
		fmt.Fprintln(out, "wrote", name)
	}
	return nil
}

// Stale returns the generated files whose committed copy under root is
// missing or different, sorted.
func Stale(root string, files map[string][]byte) []string {
	var stale []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || !bytes.Equal(got, files[name]) {
			stale = append(stale, name)
		}
	}
	return stale
}
