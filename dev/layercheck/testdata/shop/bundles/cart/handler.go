// Package function is a bundle: it may import functions.
package function

import b "example.com/shop/functions/b"

// Handle serves b.
func Handle() { b.Handle() }
