package paymentsdb_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/config"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

func TestMigrationIncludesOutbox(t *testing.T) {
	b, err := fs.ReadFile(paymentsdb.Migrations(), "0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), outbox.Schema) {
		t.Fatal("0001_init.sql must include outbox.Schema verbatim")
	}
}

// The simulator against the card processor's documented test-token
// convention (docs/checkout.md), and its per-key idempotency.
func TestSimulatorFollowsTheTokenConvention(t *testing.T) {
	ctx := context.Background()
	ledger := paymentsdb.NewSimLedger(pgtest.Open(t, paymentsdb.Migrations()))
	sim := simulator.New(ledger, simulator.Config{})
	cases := []struct {
		token   string
		outcome payments.Outcome
		decline string
		err     error
	}{
		{simulator.TokenVisa, payments.OutcomeCaptured, "", nil},
		{simulator.TokenMastercard, payments.OutcomeCaptured, "", nil},
		{simulator.TokenDeclined, payments.OutcomeDeclined, "card_declined", nil},
		{simulator.TokenDeclinedInsufficiency, payments.OutcomeDeclined, "insufficient_funds", nil},
		{"tok_amex_unknown", "", "", payments.ErrInvalidToken},
		{"4242424242424242", "", "", payments.ErrInvalidToken},
	}
	for _, c := range cases {
		t.Run(c.token, func(t *testing.T) {
			key := "key-" + c.token
			res, err := sim.Charge(ctx, key, usd, c.token, uuid.Nil)
			if !errors.Is(err, c.err) || res.Outcome != c.outcome || res.DeclineCode != c.decline {
				t.Fatalf("charge: %+v %v", res, err)
			}
			if c.err != nil {
				if _, err := sim.Lookup(ctx, key); !errors.Is(err, payments.ErrUnknownKey) {
					t.Errorf("lookup after a refused token: %v", err)
				}
				return
			}
			again, err := sim.Charge(ctx, key, usd, simulator.TokenVisa, uuid.Nil)
			if err != nil || again != res {
				t.Errorf("same key again: %+v %v, want %+v", again, err, res)
			}
			if again, err := sim.Charge(ctx, key, usd, "tok_unknown", uuid.Nil); err != nil || again != res {
				t.Errorf("same key, unknown token: %+v %v, want %+v", again, err, res)
			}
			if found, err := sim.Lookup(ctx, key); err != nil || found != res {
				t.Errorf("lookup: %+v %v", found, err)
			}
		})
	}
	if _, err := sim.Refund(ctx, "refund-x", "ch_sim_nonexistent", usd); !fault.Is(err, fault.Invalid, "") {
		t.Errorf("refund of an unknown charge: %v", err)
	}
}

// Concurrent twins recording one key agree on the first entry, even the ones
// whose insert waited for the first to commit (their statement's snapshot
// sees neither row).
func TestSimLedgerTwinsAgreeOnOneEntry(t *testing.T) {
	ledger := paymentsdb.NewSimLedger(pgtest.Open(t, paymentsdb.Migrations()))
	for round := range 5 {
		key := fmt.Sprintf("twins-%d", round)
		recordTwins(t, ledger, func(i int) simulator.Entry {
			return simulator.Entry{Key: key, Kind: "charge",
				Outcome: payments.OutcomeCaptured, Reference: fmt.Sprintf("ch_sim_%s_%d", key, i), Amount: usd}
		})
	}
}

// recordTwins records entry(i) for eight twins at once and fails the test
// unless each is answered the same entry, the first to commit.
func recordTwins(t *testing.T, ledger *paymentsdb.SimLedger, entry func(i int) simulator.Entry) {
	t.Helper()
	got := make([]simulator.Entry, 8)
	errs := make([]error, len(got))
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], errs[i] = ledger.Record(context.Background(), entry(i)) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("twin %d: %+v %v, want %+v", i, got[i], errs[i], got[0])
		}
	}
}

func TestSimulatorFaultInjection(t *testing.T) {
	ctx := context.Background()
	ledger := paymentsdb.NewSimLedger(pgtest.Open(t, paymentsdb.Migrations()))
	if _, err := simulator.New(ledger, simulator.Config{FailureRate: 1}).Charge(ctx, "k1", usd, simulator.TokenVisa, uuid.Nil); !errors.Is(err, payments.ErrUnavailable) {
		t.Errorf("failure rate 1: %v", err)
	}
	if _, err := simulator.New(ledger, simulator.Config{}).Lookup(ctx, "k1"); !errors.Is(err, payments.ErrUnknownKey) {
		t.Errorf("an outage must not record a charge: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second) // the ledger write must fit in it on a loaded machine
	defer cancel()
	if _, err := simulator.New(ledger, simulator.Config{TimeoutRate: 1}).Charge(short, "k2", usd, simulator.TokenVisa, uuid.Nil); !fault.Is(err, fault.Timeout, "") {
		t.Errorf("timeout rate 1: %v", err)
	}
	start := time.Now()
	if _, err := simulator.New(ledger, simulator.Config{Latency: 100 * time.Millisecond}).Lookup(ctx, "k2"); err != nil {
		t.Errorf("the hung charge must be recorded: %v", err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("latency not applied")
	}

	for env, ok := range map[string]bool{"0.5": true, "1": true, "1.5": false, "-0.1": false, "lots": false, "0.5x": false, "NaN": false} {
		_, err := simulator.ConfigFrom(config.New(config.Env(map[string]string{"PAYMENT_SIM_FAILURE_RATE": env})))
		if (err == nil) != ok {
			t.Errorf("PAYMENT_SIM_FAILURE_RATE=%s: %v", env, err)
		}
	}
	cfg, err := simulator.ConfigFrom(config.New(config.Env(map[string]string{"PAYMENT_SIM_LATENCY": "200ms", "PAYMENT_SIM_TIMEOUT_RATE": "0.25"})))
	if err != nil || cfg.Latency != 200*time.Millisecond || cfg.TimeoutRate != 0.25 {
		t.Errorf("config: %+v %v", cfg, err)
	}
}

// A charge is refunded once, whatever the keys: a refund under another key
// of a charge already refunded answers the first refund (its reference), as
// Processor.Refund says, and so do concurrent refunds under different keys.
func TestSimulatorRefundsAChargeOnce(t *testing.T) {
	ctx := context.Background()
	ledger := paymentsdb.NewSimLedger(pgtest.Open(t, paymentsdb.Migrations()))
	sim := simulator.New(ledger, simulator.Config{})
	for round := range 5 {
		charge, err := sim.Charge(ctx, fmt.Sprintf("charge-%d", round), usd, simulator.TokenVisa, uuid.Nil)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]payments.Result, 6)
		errs := make([]error, len(got))
		var wg sync.WaitGroup
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = sim.Refund(ctx, fmt.Sprintf("refund-%d-%d", round, i), charge.Reference, usd)
			}()
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil || got[i].Outcome != payments.OutcomeRefunded || got[i].Reference != got[0].Reference {
				t.Fatalf("round %d, refund %d: %+v %v, want %+v", round, i, got[i], errs[i], got[0])
			}
		}
		again, err := sim.Refund(ctx, fmt.Sprintf("refund-%d-late", round), charge.Reference, usd)
		if err != nil || again != got[0] {
			t.Errorf("a later refund under another key: %+v %v, want %+v", again, err, got[0])
		}
	}
	if n, err := ledger.Count(ctx, "refund"); err != nil || n != 5 {
		t.Errorf("%d refunds for 5 charges (%v)", n, err)
	}
}

// The ledger's insert swallows only the collision it is there for (a charge's
// key, a refund's charge): an entry whose reference another entry holds is
// an error naming the reference's constraint, and is not stored. Until
// 2026-12-07 its ON CONFLICT had no target: the collision was swallowed and
// the answer was "entry … vanished".
func TestALedgerReferenceCollisionIsNotSwallowed(t *testing.T) {
	ctx := context.Background()
	ledger := paymentsdb.NewSimLedger(pgtest.Open(t, paymentsdb.Migrations()))
	charge, err := ledger.Record(ctx, simulator.Entry{Key: "first", Kind: "charge", Outcome: payments.OutcomeCaptured,
		Reference: "ch_sim_taken", Amount: usd})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []simulator.Entry{
		{Key: "second", Kind: "charge", Outcome: payments.OutcomeCaptured, Reference: charge.Reference, Amount: usd},
		{Key: "refund", Kind: "refund", Outcome: payments.OutcomeRefunded, Reference: charge.Reference,
			ChargeRef: charge.Reference, Amount: usd},
	} {
		got, err := ledger.Record(ctx, e)
		if !postgres.IsUniqueViolation(err, "processor_sim_entries_reference_key") {
			t.Errorf("%s %s under a taken reference: %+v %v, want the reference's unique violation", e.Kind, e.Key, got, err)
		}
		if _, found, err := ledger.Find(ctx, e.Key); err != nil || found {
			t.Errorf("%s %s: found %v (%v), want nothing stored", e.Kind, e.Key, found, err)
		}
	}
}

// Concurrent twins of one refund (one key, one charge) agree on the first
// entry, whether a twin finds the key or the charge's refund taken (the race
// decides which; the test does not tell them apart).
func TestSimLedgerRefundTwinsAgreeOnOneEntry(t *testing.T) {
	ctx := context.Background()
	ledger := paymentsdb.NewSimLedger(pgtest.Open(t, paymentsdb.Migrations()))
	for round := range 5 {
		charge, err := ledger.Record(ctx, simulator.Entry{Key: fmt.Sprintf("charge-%d", round), Kind: "charge",
			Outcome: payments.OutcomeCaptured, Reference: fmt.Sprintf("ch_sim_%d", round), Amount: usd})
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("refund-%d", round)
		recordTwins(t, ledger, func(i int) simulator.Entry {
			return simulator.Entry{Key: key, Kind: "refund", Outcome: payments.OutcomeRefunded,
				Reference: fmt.Sprintf("re_sim_%s_%d", key, i), ChargeRef: charge.Reference, Amount: usd}
		})
	}
}

// A refund key used again for another charge or another amount is refused
// as a reused key (fault.Conflict "idempotency_key_reused"), as a real
// processor refuses a key replayed with other parameters (Stripe:
// idempotency_error), and moves no money: answering the key's first refund
// would report a refund of the second charge that never happened. Until
// 2026-12-08 the simulator answered the first refund whatever the charge
// and amount.
func TestSimulatorRefusesARefundKeyReusedWithOtherParameters(t *testing.T) {
	ctx := context.Background()
	ledger := paymentsdb.NewSimLedger(pgtest.Open(t, paymentsdb.Migrations()))
	sim := simulator.New(ledger, simulator.Config{})
	first, err := sim.Charge(ctx, "charge-first", usd, simulator.TokenVisa, uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := sim.Charge(ctx, "charge-other", usd, simulator.TokenVisa, uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	refund, err := sim.Refund(ctx, "refund-key", first.Reference, usd)
	if err != nil || refund.Outcome != payments.OutcomeRefunded {
		t.Fatalf("first refund: %+v %v", refund, err)
	}
	more := payments.Money{Amount: usd.Amount + 1, Currency: usd.Currency}
	for _, c := range []struct {
		name      string
		chargeRef string
		amount    payments.Money
	}{
		{"another charge", other.Reference, usd},
		{"another amount", first.Reference, more},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := sim.Refund(ctx, "refund-key", c.chargeRef, c.amount)
			if !fault.Is(err, fault.Conflict, fault.CodeIdempotencyKeyReused) {
				t.Fatalf("refund under a reused key: %+v %v, want a conflict %s", res, err, fault.CodeIdempotencyKeyReused)
			}
		})
	}
	again, err := sim.Refund(ctx, "refund-key", first.Reference, usd)
	if err != nil || again != refund {
		t.Errorf("the same refund again: %+v %v, want %+v", again, err, refund)
	}
	if n, err := ledger.Count(ctx, "refund"); err != nil || n != 1 {
		t.Errorf("%d refunds, want 1 (%v)", n, err)
	}
}
