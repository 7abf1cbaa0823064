// Package saga is an application package: HTTP and the domain are fine here.
package saga

import (
	"net/http"

	"example.com/shop/internal/orders"
)

var _, _ = http.MethodGet, orders.Get
