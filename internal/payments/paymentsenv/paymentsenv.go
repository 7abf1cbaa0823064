// Package paymentsenv builds the dependencies of the payments functions
// (charge-, get- and refund-payment) from their configuration: the payments
// service over the payments database and the card processor. Every problem is
// collected before failing.
//
// Configuration: the payments database (postgres.ConfigFrom: PAYMENTS_…);
// PAYMENT_PROCESSOR (default and only built-in: "simulator", configured by
// PAYMENT_SIM_LATENCY, PAYMENT_SIM_FAILURE_RATE, PAYMENT_SIM_TIMEOUT_RATE) and
// PAYMENT_PROCESSOR_TIMEOUT (default 10s); secret jwt-verify-key for
// Needs.Tokens; secret internal-callers for Needs.Internal. A real processor is
// added as another payments.Processor adapter and chosen here by name;
// nothing else changes.
package paymentsenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopfaas/shop/internal/auth"
	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres"
)

// Needs says which optional dependencies a function uses.
type Needs struct {
	Tokens   bool // verifies access tokens: the jwt-verify-key secret
	Internal bool // checks internal callers: the internal-callers secret
}

// Deps are a payments function's dependencies. Fields a function does not
// need are zero.
type Deps struct {
	Service *payments.Service
	Tokens  *auth.Verifier
	// Internal verifies internal callers, set with Needs.Internal.
	Internal *auth.InternalVerifier
}

// Load reads the configuration from c (every problem reported at once), then
// connects to and migrates the payments database within
// postgres.OpenTimeout and builds the service over it.
func Load(ctx context.Context, c *config.Reader, log *slog.Logger, needs Needs) (*Deps, error) {
	dbc := postgres.ConfigFrom(c, "payments", paymentsdb.Migrations())
	dbc.Log = log // a migration retry's warning names this function (on faasd CE, the member)
	svcCfg := payments.ServiceConfig{ProcessorTimeout: c.Duration("PAYMENT_PROCESSOR_TIMEOUT", 10*time.Second)}
	name := c.String("PAYMENT_PROCESSOR", "simulator")
	simCfg, simErr := simulator.ConfigFrom(c)
	var procErr error
	if name != "simulator" {
		procErr = fmt.Errorf("PAYMENT_PROCESSOR=%q: only the built-in \"simulator\" is available", name)
	}
	callers := auth.CallersFrom(c, needs.Tokens, needs.Internal)
	if err := errors.Join(c.Err(), simErr, procErr); err != nil {
		return nil, err
	}
	d := &Deps{}
	var err error
	if d.Tokens, err = callers.Verifier(); err != nil {
		return nil, err
	}
	if d.Internal, err = callers.InternalVerifier(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, postgres.OpenTimeout)
	defer cancel()
	pool, err := postgres.Open(ctx, dbc)
	if err != nil {
		return nil, paymentsdb.ExplainMigration(err)
	}
	proc := simulator.New(paymentsdb.NewSimLedger(pool), simCfg)
	d.Service = payments.NewService(paymentsdb.New(pool), proc, svcCfg)
	return d, nil
}
