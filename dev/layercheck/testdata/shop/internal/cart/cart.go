// Package cart is a domain package that keeps the rules.
package cart

import (
	"strings"

	"example.com/shop/internal/fault"
)

// Normalize is pure.
func Normalize(s string) (string, fault.Kind) { return strings.TrimSpace(s), 0 }
