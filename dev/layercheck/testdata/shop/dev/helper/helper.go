// Package helper imports a command's package.
package helper

import "example.com/shop/cmd/tool/flags" // VIOLATION areas: nothing imports cmd/

// Use parses.
func Use() { flags.Parse() }
