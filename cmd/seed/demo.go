package main

import (
	"context"
	"log/slog"

	"github.com/shopfaas/shop/dev/demo"
	"github.com/shopfaas/shop/internal/catalog/catalogenv"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres"
)

// seedDemoCatalog creates the demo products (dev/demo) through the
// catalog store, so their product.changed.v1 events and search documents are
// written, and gives them their initial stock through the inventory store.
// Products whose SKU exists are not touched and stock rows that exist are
// not overwritten, so it is idempotent. It runs when SEED_DEMO_CATALOG is true,
// which is the default in development only; it reads CATALOG_DATABASE_URL,
// INVENTORY_DATABASE_URL, DATABASE_CREATE and the optional secrets db-password-catalog and
// db-password-inventory (catalogenv.Load, postgres.ConfigFrom).
func seedDemoCatalog(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	c := config.New(getenv)
	if !c.Bool("SEED_DEMO_CATALOG", c.Dev()) {
		log.Info("demo catalog skipped (SEED_DEMO_CATALOG is false)")
		return c.Err()
	}
	products, err := demo.Products()
	if err != nil {
		return err
	}
	invCfg := postgres.ConfigFrom(c, "inventory", inventorydb.Migrations())
	invCfg.Log = log
	invCfg.MaxConns = 1
	// Load reports every configuration problem read so far, the inventory's included.
	deps, err := catalogenv.Load(ctx, c, log, catalogenv.Needs{})
	if err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, invCfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = demo.Seed(ctx, products, deps.Store, inventorydb.New(pool), log)
	return err
}
