package catalogdb

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/shopfaas/shop/internal/catalog"
)

// GetBySKU returns the product with the SKU, archived or not (a SKU is never
// reused), so idempotent imports such as the demo seed can tell what already
// exists. A SKU no product has is fault.NotFound.
func (s *Store) GetBySKU(ctx context.Context, sku string) (catalog.Product, error) {
	p, err := scan(s.db.QueryRow(ctx, `SELECT `+columns+` FROM products WHERE sku = $1`, catalog.NormalizeSKU(sku)))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, errNotFound
	}
	if err != nil {
		return p, unavailable("get product by sku", err)
	}
	return p, nil
}
