package pgsearch_test

import (
	"testing"

	"github.com/shopfaas/shop/internal/catalog/catalogdb"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
	"github.com/shopfaas/shop/internal/search"
	"github.com/shopfaas/shop/internal/search/pgsearch"
	"github.com/shopfaas/shop/internal/search/searchtest"
)

// The embedded backend passes the shared behaviour suite on the real server.
func TestSuite(t *testing.T) {
	searchtest.Run(t, func(t *testing.T) search.Index {
		return pgsearch.New(pgtest.Open(t, catalogdb.Migrations()))
	})
}
