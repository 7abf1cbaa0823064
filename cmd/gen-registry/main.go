// Command gen-registry writes cmd/shop-functions/registry_gen.go: the table
// from function name to Handle for every function of stack.yml, so the local
// multi-call binary serves exactly the functions faas-cli would build.
//
//	go run ./cmd/gen-registry [-stack stack.yml] [-out cmd/shop-functions/registry_gen.go]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shopfaas/shop/internal/stackfile"
)

func main() {
	stackPath := flag.String("stack", "stack.yml", "stack file")
	out := flag.String("out", "cmd/shop-functions/registry_gen.go", "output file")
	flag.Parse()
	src, err := stackfile.Registry(*stackPath)
	if err == nil {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-registry:", err)
		os.Exit(1)
	}
}
