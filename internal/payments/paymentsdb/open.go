package paymentsdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres"
)

// OpenService builds the payments service of a function process from c: the
// payments database (see ConfigFrom), the processor chosen by
// PAYMENT_PROCESSOR and PAYMENT_PROCESSOR_TIMEOUT (default 10s). Every
// configuration problem is reported at once.
//
// The only processor built in is "simulator" (the default), configured by
// PAYMENT_SIM_LATENCY, PAYMENT_SIM_FAILURE_RATE and PAYMENT_SIM_TIMEOUT_RATE.
// A real processor is added as another payments.Processor adapter and chosen
// here by name; nothing else changes.
func OpenService(ctx context.Context, c *config.Reader) (*payments.Service, error) {
	dbCfg := ConfigFrom(c)
	svcCfg := payments.ServiceConfig{ProcessorTimeout: c.Duration("PAYMENT_PROCESSOR_TIMEOUT", 10*time.Second)}
	name := c.String("PAYMENT_PROCESSOR", "simulator")
	simCfg, simErr := simulator.ConfigFrom(c)
	var procErr error
	if name != "simulator" {
		procErr = fmt.Errorf("PAYMENT_PROCESSOR=%q: only the built-in \"simulator\" is available", name)
	}
	if err := errors.Join(c.Err(), simErr, procErr); err != nil {
		return nil, err
	}
	pool, err := postgres.Open(ctx, dbCfg)
	if err != nil {
		return nil, err
	}
	proc := simulator.New(NewSimLedger(pool), simCfg)
	return payments.NewService(New(pool), proc, svcCfg), nil
}
