// Package orders is a domain package that breaks the rules.
package orders

import (
	"net/http" // VIOLATION domain: I/O

	"example.com/shop/internal/orders/ordersdb" // VIOLATION domain: a store package
)

// Get is not pure.
func Get() (*http.Request, string) { return nil, ordersdb.Table }
