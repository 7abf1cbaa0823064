// Command shop-functions is the local multi-call binary: one build that serves
// any function of stack.yml or of the bundled stack.ce.yml, chosen by its
// first argument (or OPENFAAS_NAME), by its package's Build through fnserve,
// the same serving code as the template's main.go. The local
// runtime starts one process of it per function replica.
package main

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/shopfaas/shop/fnserve"
)

func main() {
	// As the template's fnserve.Main: the first SIGTERM or SIGINT drains,
	// a second SIGINT ends the process at once, a second SIGTERM does not.
	ctx, stop := fnserve.SignalContext()
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "shop-functions:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	name := getenv("OPENFAAS_NAME")
	if len(args) > 0 {
		name = args[0]
	}
	if name == "list" {
		for _, n := range names() {
			fmt.Println(n)
		}
		return nil
	}
	build, ok := functions[name]
	if !ok {
		return fmt.Errorf("unknown function %q (known: %v)", name, names())
	}
	env := func(k string) string {
		if k == "OPENFAAS_NAME" {
			return name
		}
		return getenv(k)
	}
	return fnserve.Run(ctx, env, os.Stdout, build, nil)
}

func names() []string {
	out := make([]string, 0, len(functions))
	for n := range functions {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
