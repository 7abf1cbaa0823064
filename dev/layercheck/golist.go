package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// listed is the part of `go list -json` output the check reads.
type listed struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// load lists the module in dir and every package of it (./...), with the
// build tags given, through the go command.
func load(ctx context.Context, dir, tags string) (module string, pkgs []Package, err error) {
	out, err := goCmd(ctx, dir, "list", "-m")
	if err != nil {
		return "", nil, err
	}
	module = strings.TrimSpace(string(out))
	out, err = goCmd(ctx, dir, "list", "-e", "-tags", tags,
		"-json=ImportPath,Imports,TestImports,XTestImports,Error", "./...")
	if err != nil {
		return "", nil, err
	}
	var errs []error
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var l listed
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", nil, fmt.Errorf("go list output: %w", err)
		}
		if l.Error != nil {
			// A package that does not load could hide an import.
			errs = append(errs, fmt.Errorf("%s: %s", l.ImportPath, l.Error.Err))
			continue
		}
		pkgs = append(pkgs, Package{
			Path:        l.ImportPath,
			Imports:     l.Imports,
			TestImports: append(l.TestImports, l.XTestImports...),
		})
	}
	return module, pkgs, errors.Join(errs...)
}

// goCmd runs the go command in dir and returns its standard output.
func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
