// Command vendordocs vendors the API reference page's assets (the npm
// package pinned in internal/apidocs) into functions/api-docs/assets with npm
// pack, unless they are there already (-force fetches them again); the
// api-docs function embeds them. make api-docs runs it (before faas-cli
// build); make run (cmd/faas-local) does the same when they are missing.
//
//	go run ./dev/vendordocs [-force]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/shopfaas/shop/dev/docassets"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vendordocs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vendordocs", flag.ContinueOnError)
	force := fs.Bool("force", false, "fetch the package again even when its assets are present")
	root := fs.String("C", ".", "the module root")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir := docassets.Dir(*root)
	if docassets.Present(dir) && !*force {
		fmt.Printf("%s@%s already in %s\n", docassets.Package, docassets.Version, dir)
		return nil
	}
	if err := docassets.Vendor(ctx, dir); err != nil {
		return err
	}
	fmt.Printf("%s@%s vendored into %s\n", docassets.Package, docassets.Version, dir)
	return nil
}
