// Command tool may import its own subpackage.
package main

import "example.com/shop/cmd/tool/flags"

func main() { flags.Parse() }
