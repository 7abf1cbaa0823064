// Command generate writes every generated file of the repository from its
// sources, and with -check writes nothing and fails when a committed file is
// stale (make lint runs it that way):
//
//   - stack.ce.yml, gateway/kong.ce.yml, monitoring/prometheus.ce.yml and
//     bundles/<service>/ (the bundled faasd-CE stack) from internal/routes,
//     stack.yml, gateway/kong.yml and monitoring/prometheus.yml
//     (dev/bundlegen);
//   - cmd/shop-functions/registry_gen.go (the multi-call binary's table of
//     functions) from stack.yml and the stack.ce.yml just rendered
//     (dev/stackfile).
//
// A file under bundles/ that the generator no longer produces is stale too:
// generate removes it, -check reports it.
//
//	go run ./cmd/generate [-root .] [-check]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shopfaas/shop/dev/bundlegen"
	"github.com/shopfaas/shop/dev/stackfile"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	flags := flag.NewFlagSet("generate", flag.ContinueOnError)
	root := flags.String("root", ".", "module root (where stack.yml lives)")
	check := flags.Bool("check", false, "only report stale files; write nothing")
	if err := flags.Parse(args); err != nil {
		return err
	}
	files, err := Files(*root)
	if err != nil {
		return err
	}
	stale, orphans, err := Stale(*root, files)
	if err != nil {
		return err
	}
	if *check {
		if len(stale)+len(orphans) > 0 {
			return fmt.Errorf("generated files are stale (run go run ./cmd/generate): %s", strings.Join(append(stale, orphans...), ", "))
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
	for _, name := range orphans {
		path := filepath.Join(*root, name)
		if err := os.Remove(path); err != nil {
			return err
		}
		_ = os.Remove(filepath.Dir(path)) // the bundle's folder, once empty
		fmt.Fprintln(out, "removed", name)
	}
	return nil
}

// Files renders every generated file under root, keyed by its slash-separated
// path relative to root.
func Files(root string) (map[string][]byte, error) {
	files, err := bundlegen.Files(root)
	if err != nil {
		return nil, err
	}
	stack, err := os.ReadFile(filepath.Join(root, bundlegen.StackFile))
	if err != nil {
		return nil, err
	}
	reg, err := stackfile.Registry(
		stackfile.Source{Name: bundlegen.StackFile, YAML: stack},
		stackfile.Source{Name: bundlegen.StackCEFile, YAML: files[bundlegen.StackCEFile]},
	)
	if err != nil {
		return nil, err
	}
	files[stackfile.RegistryPath] = reg
	return files, nil
}

// Stale returns, sorted, the generated files whose committed copy under root
// is missing or different, and the files under bundles/ that are not
// generated (a bundle whose service is gone, a hand-written file).
func Stale(root string, files map[string][]byte) (stale, orphans []string, err error) {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, files[name]) {
			stale = append(stale, name)
		}
	}
	err = filepath.WalkDir(filepath.Join(root, bundlegen.Dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			orphans = append(orphans, filepath.ToSlash(rel))
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	slices.Sort(orphans)
	return stale, orphans, err
}
