package main

import (
	"context"
	"strings"
	"testing"

	"github.com/shopfaas/shop/dev/demo"
	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestSeedDemoCatalog(t *testing.T) {
	vars, _ := env(t)
	vars["SHOP_ENV"] = "development"
	delete(vars, "SEED_DEMO_CATALOG") // on by default in development
	vars["CATALOG_DATABASE_URL"] = pgtest.NewDatabase(t)
	vars["INVENTORY_DATABASE_URL"] = pgtest.NewDatabase(t)
	for run := range 2 {
		if out, err := seed(t, vars); err != nil {
			t.Fatalf("run %d: %v\n%s", run+1, err, out)
		}
	}
	ctx := context.Background()
	products, err := demo.Products()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := postgres.Open(ctx, postgres.Config{URL: vars["CATALOG_DATABASE_URL"], Migrations: catalogdb.Migrations(), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	inv, err := postgres.Open(ctx, postgres.Config{URL: vars["INVENTORY_DATABASE_URL"], Migrations: inventorydb.Migrations(), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	var nProducts, nStock int
	if err := cat.QueryRow(ctx, `SELECT count(*) FROM products`).Scan(&nProducts); err != nil {
		t.Fatal(err)
	}
	if err := inv.QueryRow(ctx, `SELECT count(*) FROM stock`).Scan(&nStock); err != nil {
		t.Fatal(err)
	}
	if nProducts != len(products) || nStock != len(products) {
		t.Fatalf("after two runs: %d products, %d stock rows; want %d each", nProducts, nStock, len(products))
	}
}

func TestSeedDemoCatalogOffInProduction(t *testing.T) {
	vars, dir := env(t)
	writeSecret(t, dir, "admin-email", "root@example.com")
	writeSecret(t, dir, "admin-password", "a-long-password")
	delete(vars, "SEED_DEMO_CATALOG")
	out, err := seed(t, vars)
	if err != nil {
		t.Fatalf("production seed without catalog settings: %v", err)
	}
	if !strings.Contains(out, "demo catalog skipped") {
		t.Fatalf("log does not say the demo catalog was skipped:\n%s", out)
	}
}

func TestSeedDemoCatalogNeedsDatabases(t *testing.T) {
	vars, _ := env(t)
	vars["SHOP_ENV"] = "development"
	vars["SEED_DEMO_CATALOG"] = "true"
	_, err := seed(t, vars)
	if err == nil || !strings.Contains(err.Error(), "CATALOG_DATABASE_URL") || !strings.Contains(err.Error(), "INVENTORY_DATABASE_URL") {
		t.Fatalf("err = %v, want both missing database URLs reported", err)
	}
}
