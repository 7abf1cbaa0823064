// Command relay imports dev/.
package main

import "example.com/shop/dev/helper" // VIOLATION areas: a connector imports dev/

func main() { helper.Use() }
