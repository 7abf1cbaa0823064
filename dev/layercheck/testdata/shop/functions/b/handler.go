// Package function is a function that keeps the rules.
package function

import "example.com/shop/internal/cart"

// Handle uses the domain.
func Handle() { _, _ = cart.Normalize("") }
