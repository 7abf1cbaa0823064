package cart

import (
	"testing"

	"example.com/shop/dev/helper"
)

// VIOLATION areas: an internal test imports dev/.
func TestNormalize(t *testing.T) { helper.Use() }
