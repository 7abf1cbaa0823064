// Command layercheck fails when a package of the module imports across a
// layer boundary of docs/architecture.md: the areas each top-level folder may
// import from (nothing imports cmd/, internal/ imports only internal/, no
// function imports another), domain packages that do no I/O, and store
// packages without HTTP. The rules are data in rules.go.
//
//	go run ./dev/layercheck [-C dir] [-tags tag,...]
//
// It prints one line per violation and exits 1 when there is any, 2 when
// the packages could not be listed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	violations, err := run(ctx, os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "layercheck:", err)
		os.Exit(2)
	}
	if violations > 0 {
		os.Exit(1)
	}
}

// run checks the module named by args and prints each violation to out. It
// returns how many it found, and an error when the check could not run.
func run(ctx context.Context, args []string, out io.Writer) (int, error) {
	fs := flag.NewFlagSet("layercheck", flag.ContinueOnError)
	dir := fs.String("C", ".", "the module's root folder")
	tags := fs.String("tags", "", "build tags, so files behind a tag are checked too")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	module, pkgs, err := load(ctx, *dir, *tags)
	if err != nil {
		return 0, err
	}
	violations := Check(module, pkgs, known)
	for _, v := range violations {
		fmt.Fprintln(out, v)
	}
	return len(violations), nil
}
