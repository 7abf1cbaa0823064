// Package routes breaks the areas rule.
package routes

import b "example.com/shop/functions/b" // VIOLATION areas: internal imports a function

var _ = b.Handle
