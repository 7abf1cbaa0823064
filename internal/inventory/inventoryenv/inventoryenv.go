// Package inventoryenv builds the dependencies of the inventory functions
// (get-, set-, reserve-, commit- and release-stock, expire-reservations) from
// their configuration. Every problem is collected before failing.
//
// Configuration: the inventory database (postgres.ConfigFrom: INVENTORY_…;
// for Needs.Reader postgres.ReaderConfigFrom: INVENTORY_READER_DATABASE_URL
// and the secret db-password-inventory-reader when set, else the writers');
// secret jwt-verify-key for Needs.Tokens; secret internal-callers (the verifier
// of internal callers) for Needs.Internal; GATEWAY_URL (gatewayurl.FromConfig, catalogclient.ConfigAt) for Needs.Catalog;
// GATEWAY_URL, FUNCTION_BUNDLES and the secret internal-token-<Needs.OrdersCaller>
// for Needs.OrdersCaller; for either, FUNCTION_URLS and FUNCTION_URL_TEMPLATE
// (optional: the functions called without the gateway, gatewayurl.DirectFrom).
package inventoryenv

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/catalogclient"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/gatewayurl"
	"github.com/shopfaas/shop/internal/inventory/inventorydb"
	"github.com/shopfaas/shop/internal/inventory/orderstatus"
	"github.com/shopfaas/shop/internal/postgres"
)

// Needs says which optional dependencies a function uses.
type Needs struct {
	Tokens   bool // verifies access tokens: the jwt-verify-key secret
	Internal bool // checks internal callers: the internal-callers secret
	Catalog  bool // reads products from the catalog function
	// OrdersCaller, when set, is the function's internal caller name
	// (routes.Table's Callers): it asks order-statuses with the credential
	// internal-token-<OrdersCaller>.
	OrdersCaller string
	// Reader: the function only reads the stock levels (the public
	// get-stock). With INVENTORY_READER_DATABASE_URL set it logs in as the
	// readers' role, shop_inventory_reader, which may read the stock and
	// write nothing, never migrates, and fails its build
	// (postgres.ErrNotMigrated) until the writers have applied every
	// migration it knows (postgres.ReaderConfigFrom; docs/security.md,
	// "Database roles"). Unset, it opens the database as the writers do.
	// A reader writes nothing: not with Tokens, Internal, Catalog or
	// OrdersCaller, which only the writers need (a reader with them would
	// be a writer that logs in as a role that cannot write, and its writes
	// would fail in production only).
	Reader bool
}

// Deps are an inventory function's dependencies. Fields a function does not
// need are zero.
type Deps struct {
	Store  *inventorydb.Store
	Tokens *auth.Verifier
	// Internal verifies internal callers, set with Needs.Internal.
	Internal *auth.InternalVerifier
	Catalog  *catalogclient.Client
	// Orders asks the orders service the status of orders, set with
	// Needs.OrdersCaller.
	Orders *orderstatus.Client
}

// Load reads the configuration from c (every problem reported at once), then
// connects to and migrates the inventory database within
// postgres.OpenTimeout (for Needs.Reader with its own URL, connects and
// checks that it is migrated).
func Load(ctx context.Context, c *config.Reader, log *slog.Logger, needs Needs) (*Deps, error) {
	if needs.Reader && (needs.Tokens || needs.Internal || needs.Catalog || needs.OrdersCaller != "") {
		return nil, fmt.Errorf("inventoryenv: a reader (Needs.Reader) writes nothing: it does not verify users' or internal callers' tokens, read the catalog nor ask the orders service (Needs.Tokens, Internal, Catalog, OrdersCaller)")
	}
	var dbc postgres.Config
	if needs.Reader {
		dbc = postgres.ReaderConfigFrom(c, "inventory", inventorydb.Migrations())
	} else {
		dbc = postgres.ConfigFrom(c, "inventory", inventorydb.Migrations())
	}
	dbc.Log = log // a migration retry's warning names this function (on faasd CE, the member)
	callers := auth.CallersFrom(c, needs.Tokens, needs.Internal)
	d := &Deps{}
	var loc gatewayurl.Locator
	if needs.Catalog || needs.OrdersCaller != "" {
		loc = gatewayurl.FromConfig(c)
	}
	var cc catalogclient.Config
	if needs.Catalog {
		cc = catalogclient.ConfigAt(c, loc)
	}
	var credential string
	if needs.OrdersCaller != "" {
		credential = auth.CredentialFrom(c, needs.OrdersCaller)
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	var err error
	if d.Tokens, err = callers.Verifier(); err != nil {
		return nil, err
	}
	if d.Internal, err = callers.InternalVerifier(); err != nil {
		return nil, err
	}
	if needs.Catalog {
		if d.Catalog, err = catalogclient.New(cc); err != nil {
			return nil, err
		}
	}
	if needs.OrdersCaller != "" {
		if d.Orders, err = orderstatus.New(loc, credential, nil, 0); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, postgres.OpenTimeout)
	defer cancel()
	pool, err := postgres.Open(ctx, dbc)
	if err != nil {
		return nil, err
	}
	d.Store = inventorydb.New(pool)
	return d, nil
}
