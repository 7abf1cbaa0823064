// Command gen-registry writes cmd/shop-functions/registry_gen.go: the table
// from function name to Handle for every function of the stack files
// (stack.yml and the bundled stack.ce.yml), so the local multi-call binary
// serves exactly the functions faas-cli would build from either stack.
//
//	go run ./cmd/gen-registry [-stack stack.yml,stack.ce.yml] [-out cmd/shop-functions/registry_gen.go]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/shopfaas/shop/dev/stackfile"
)

func main() {
	stackPaths := flag.String("stack", "stack.yml", "comma-separated stack files")
	out := flag.String("out", "cmd/shop-functions/registry_gen.go", "output file")
	flag.Parse()
	src, err := stackfile.RegistryFrom(strings.Split(*stackPaths, ",")...)
	if err == nil {
		err = os.WriteFile(*out, src, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-registry:", err)
		os.Exit(1)
	}
}
