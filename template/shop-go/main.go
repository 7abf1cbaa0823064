// Command handler serves the function in ./function (the project's module,
// whose root package is the function's handler) through fnserve, the same
// serving code the local runtime runs.
package main

import (
	function "github.com/shopfaas/shop"
	"github.com/shopfaas/shop/fnserve"
)

func main() {
	fnserve.Main(function.Handle)
}
