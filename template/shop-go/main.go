// Command handler serves the function in ./function (the project's module,
// whose root package is the function) through fnserve, the same serving code
// the local runtime runs: fnserve builds the handler with the package's Build
// on the first request.
package main

import (
	function "github.com/shopfaas/shop"
	"github.com/shopfaas/shop/fnserve"
)

func main() {
	fnserve.Main(function.Build)
}
