// Package ordersdb is a store package that breaks the rules.
package ordersdb

import "net/http" // VIOLATION store: HTTP

// Table is the table's name.
const Table = "orders"

var _ = http.MethodGet
