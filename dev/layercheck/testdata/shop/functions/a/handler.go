// Package function is a function that imports another one.
package function

import b "example.com/shop/functions/b" // VIOLATION areas: a function imports another

// Handle calls b.
func Handle() { b.Handle() }
