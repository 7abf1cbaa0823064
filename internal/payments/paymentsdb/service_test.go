package paymentsdb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/payments/paymentsdb"
	"github.com/shopfaas/shop/internal/payments/simulator"
	"github.com/shopfaas/shop/internal/postgres/pgtest"
)

// counting wraps the real simulator and counts the calls that reach it.
type counting struct {
	payments.Processor
	charges, refunds, voids atomic.Int32
}

func (c *counting) Charge(ctx context.Context, key string, m payments.Money, token string, customer uuid.UUID) (payments.Result, error) {
	c.charges.Add(1)
	return c.Processor.Charge(ctx, key, m, token, customer)
}

func (c *counting) Void(ctx context.Context, key string) (payments.Result, error) {
	c.voids.Add(1)
	return c.Processor.Void(ctx, key)
}

func (c *counting) Refund(ctx context.Context, key, ref string, m payments.Money) (payments.Result, error) {
	c.refunds.Add(1)
	return c.Processor.Refund(ctx, key, ref, m)
}

type fixture struct {
	pool   *pgxpool.Pool
	store  *paymentsdb.Store
	ledger *paymentsdb.SimLedger
	proc   *counting
	svc    *payments.Service
}

func newFixture(t *testing.T, sim simulator.Config, cfg payments.ServiceConfig) *fixture {
	t.Helper()
	pool := pgtest.Open(t, paymentsdb.Migrations())
	f := &fixture{pool: pool, store: paymentsdb.New(pool), ledger: paymentsdb.NewSimLedger(pool)}
	f.proc = &counting{Processor: simulator.New(f.ledger, sim)}
	f.svc = payments.NewService(f.store, f.proc, cfg)
	return f
}

// with returns a service over the same database and ledger but another
// simulator configuration: the processor recovered, or started failing.
func (f *fixture) with(sim simulator.Config, cfg payments.ServiceConfig) *payments.Service {
	f.proc = &counting{Processor: simulator.New(f.ledger, sim)}
	return payments.NewService(f.store, f.proc, cfg)
}

func (f *fixture) count(t *testing.T, kind string) int {
	t.Helper()
	n, err := f.ledger.Count(context.Background(), kind)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var usd = payments.Money{Amount: 1299, Currency: "USD"}

func chargeReq(token string) payments.ChargeRequest {
	return payments.ChargeRequest{OrderID: uuid.Must(uuid.NewV7()), UserID: uuid.Must(uuid.NewV7()), Amount: usd, Token: token}
}

func TestChargeIsOncePerOrder(t *testing.T) {
	f := newFixture(t, simulator.Config{Latency: 50 * time.Millisecond}, payments.ServiceConfig{PollInterval: 20 * time.Millisecond})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	first, err := f.svc.Charge(ctx, req)
	if err != nil || first.Status != payments.StatusCaptured || first.ProviderRef == "" {
		t.Fatalf("charge: %+v %v", first, err)
	}
	again, err := f.svc.Charge(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(payments.ViewOf(first), payments.ViewOf(again)); diff != "" {
		t.Errorf("repeat differs (-first +again):\n%s", diff)
	}

	// 20 concurrent twins of a new order.
	req = chargeReq(simulator.TokenMastercard)
	views := make([]payments.View, 20)
	var wg sync.WaitGroup
	for i := range views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := f.svc.Charge(ctx, req)
			if err != nil {
				t.Errorf("twin %d: %v", i, err)
			}
			views[i] = payments.ViewOf(p)
		}()
	}
	wg.Wait()
	for i := range views {
		if diff := cmp.Diff(views[0], views[i]); diff != "" {
			t.Errorf("twin %d answered differently:\n%s", i, diff)
		}
	}
	// Every attempt asks the processor; the order's key keeps it to one charge.
	if got := f.proc.charges.Load(); got != 22 {
		t.Errorf("processor asked %d times for 22 attempts", got)
	}
	if got := f.count(t, "charge"); got != 2 {
		t.Errorf("simulator recorded %d charges, want 2", got)
	}
}

func TestDeclineIsStoredAndRepeated(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	for _, tok := range []string{simulator.TokenDeclined, simulator.TokenDeclinedInsufficiency} {
		req := chargeReq(tok)
		for range 2 {
			_, err := f.svc.Charge(ctx, req)
			if !fault.Is(err, fault.PaymentRequired, "payment_declined") {
				t.Fatalf("%s: err = %v, want payment_declined", tok, err)
			}
		}
		p, err := f.store.ByOrder(ctx, req.OrderID)
		if err != nil || p.Status != payments.StatusDeclined || p.DeclineCode == "" {
			t.Errorf("%s: stored %+v %v", tok, p, err)
		}
		// Even another token cannot turn a declined order into a charge.
		req.Token = simulator.TokenVisa
		if _, err := f.svc.Charge(ctx, req); !fault.Is(err, fault.PaymentRequired, "payment_declined") {
			t.Errorf("retry with a good token: %v", err)
		}
		if p, err := f.svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusDeclined {
			t.Errorf("refund of a decline: %v %v", p.Status, err)
		}
	}
	if got := f.count(t, "charge"); got != 2 {
		t.Errorf("simulator recorded %d charges, want 2", got)
	}
}

func TestRefundIsOnce(t *testing.T) {
	f := newFixture(t, simulator.Config{Latency: 30 * time.Millisecond}, payments.ServiceConfig{PollInterval: 20 * time.Millisecond})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if _, err := f.svc.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := f.svc.Refund(ctx, req.OrderID)
			if err != nil || p.Status != payments.StatusRefunded {
				t.Errorf("refund: %v %v", p.Status, err)
			}
		}()
	}
	wg.Wait()
	if p, err := f.svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded {
		t.Errorf("refund again: %v %v", p.Status, err)
	}
	if got := f.proc.refunds.Load(); got != 1 {
		t.Errorf("processor asked to refund %d times", got)
	}
	if got := f.count(t, "refund"); got != 1 {
		t.Errorf("simulator recorded %d refunds", got)
	}
	// A charge repeated after the refund is refused, 402 saying refunded
	// (Processor.Charge): no new charge, the payment left refunded.
	if p, err := f.svc.Charge(ctx, req); !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) ||
		!strings.Contains(fmt.Sprint(err), "refunded") {
		t.Errorf("charge after refund: %v %v, want 402 payment_declined saying refunded", p.Status, err)
	}
	if p, err := f.store.ByOrder(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded {
		t.Errorf("the payment after the repeated charge: %v %v, want refunded", p.Status, err)
	}
	if got := f.count(t, "charge"); got != 1 {
		t.Errorf("simulator recorded %d charges, want 1", got)
	}
	if p, err := f.svc.Refund(ctx, uuid.Must(uuid.NewV7())); err != nil || p.Status != payments.StatusNone {
		t.Errorf("refund of an order never charged: %v %v", p.Status, err)
	}
}

// slowFinish delays Finish: a slow commit, well within the Store's budget.
type slowFinish struct {
	payments.Store
	delay time.Duration
}

func (s *slowFinish) Finish(ctx context.Context, orderID, claim uuid.UUID, res payments.Result) (payments.Payment, error) {
	time.Sleep(s.delay)
	return s.Store.Finish(ctx, orderID, claim, res)
}

// crashedFinish is an attempt whose process dies before its Finish.
type crashedFinish struct{ payments.Store }

func (crashedFinish) Finish(context.Context, uuid.UUID, uuid.UUID, payments.Result) (payments.Payment, error) {
	return payments.Payment{}, errors.New("process killed")
}

// TestARefundTakenOverNeverAnswersTheCapturedRow: attempt A's processor call
// plus its slow Finish outlast its (here short) lease; attempt B takes the
// claim over, refunds at the processor under the same key and dies before
// its Finish. A's Finish finds its claim gone: A must not answer the
// still-captured row as the refund's success (refund-payment would answer
// 200 and the saga settle the compensation with our table captured for
// ever). It waits out B's lease and finishes the refund; the refund key
// keeps the processor to one refund.
func TestARefundTakenOverNeverAnswersTheCapturedRow(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	cfg := payments.ServiceConfig{ProcessorTimeout: 100 * time.Millisecond, Lease: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond}
	a := payments.NewService(&slowFinish{Store: f.store, delay: 600 * time.Millisecond}, f.proc, cfg)
	b := payments.NewService(crashedFinish{f.store}, f.proc, cfg)
	req := chargeReq(simulator.TokenVisa)
	if _, err := a.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		p   payments.Payment
		err error
	}
	done := make(chan answer, 1)
	go func() { p, err := a.Refund(ctx, req.OrderID); done <- answer{p, err} }()
	time.Sleep(350 * time.Millisecond) // A's lease ran out while A is still finishing
	if _, err := b.Refund(ctx, req.OrderID); err == nil {
		t.Fatal("B was meant to die before Finish")
	}
	got := <-done
	if got.err != nil || got.p.Status != payments.StatusRefunded {
		t.Errorf("A answered %q, %v; want refunded", got.p.Status, got.err)
	}
	stored, err := f.store.ByOrder(ctx, req.OrderID)
	if err != nil || stored.Status != payments.StatusRefunded {
		t.Errorf("stored payment %q, %v; want refunded", stored.Status, err)
	}
	if n := f.count(t, "refund"); n != 1 {
		t.Errorf("processor recorded %d refunds, want 1", n)
	}
}

// insertPending stores p as the previous version of Service did before
// calling the processor: pending, claimed for lease (0: a crashed attempt).
func insertPending(t *testing.T, f *fixture, p payments.Payment, lease time.Duration) {
	t.Helper()
	if _, err := f.pool.Exec(context.Background(), `INSERT INTO payments
			(id, order_id, user_id, status, amount, currency, attempts, claim_id, claim_until)
		VALUES ($1, $2, $3, 'pending', $4, $5, 1, $6, now() + make_interval(secs => $7))`,
		p.ID, p.OrderID, p.UserID, p.Amount.Amount, p.Amount.Currency, uuid.New(), lease.Seconds()); err != nil {
		t.Fatalf("pending row: %v", err)
	}
}

// The previous version stored the payment pending before calling the
// processor. A process of that version charged the card and died before
// recording it: its payment row is pending with a lapsed lease. The retry
// must record the processor's answer on that row, never charge again.
func TestPendingRowOfThePreviousVersionIsSettled(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	crashed := payments.Payment{ID: uuid.Must(uuid.NewV7()), OrderID: req.OrderID, UserID: req.UserID,
		Status: payments.StatusPending, Amount: req.Amount}
	insertPending(t, f, crashed, 0)
	charged, err := f.proc.Processor.Charge(ctx, payments.ChargeKey(req.OrderID), req.Amount, req.Token, uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.Charge(ctx, req)
	if err != nil || p.Status != payments.StatusCaptured || p.ProviderRef != charged.Reference || p.ID != crashed.ID {
		t.Fatalf("retry: %+v %v; want captured with %s", p, err, charged.Reference)
	}
	if f.count(t, "charge") != 1 {
		t.Errorf("recorded %d charges; want 1", f.count(t, "charge"))
	}

	// Died before reaching the processor: the retry charges once.
	req = chargeReq(simulator.TokenVisa)
	crashed.ID, crashed.OrderID, crashed.UserID = uuid.Must(uuid.NewV7()), req.OrderID, req.UserID
	insertPending(t, f, crashed, 0)
	if p, err := f.svc.Charge(ctx, req); err != nil || p.Status != payments.StatusCaptured || p.ID != crashed.ID {
		t.Fatalf("retry: %+v %v", p, err)
	}
	if f.count(t, "charge") != 2 {
		t.Errorf("recorded %d charges; want 2", f.count(t, "charge"))
	}

	// A live attempt (unexpired lease) is waited for, not taken over: the
	// processor is asked under the order's key (that attempt gets the same
	// answer), the row stays the live attempt's.
	req = chargeReq(simulator.TokenVisa)
	crashed.ID, crashed.OrderID, crashed.UserID = uuid.Must(uuid.NewV7()), req.OrderID, req.UserID
	insertPending(t, f, crashed, time.Minute)
	short, cancel := context.WithTimeout(ctx, time.Second) // long enough for the database work on a loaded machine
	defer cancel()
	if _, err := f.svc.Charge(short, req); !fault.Is(err, fault.Unavailable, "processor_unavailable") {
		t.Errorf("charge while another attempt is live: %v", err)
	}
	if p, err := f.store.ByOrder(ctx, req.OrderID); err != nil || p.Status != payments.StatusPending {
		t.Errorf("the live attempt's row: %v %v, want pending", p.Status, err)
	}
	if f.count(t, "charge") != 3 {
		t.Errorf("recorded %d charges; want 3", f.count(t, "charge"))
	}
}

func TestProcessorFailures(t *testing.T) {
	f := newFixture(t, simulator.Config{FailureRate: 1}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if _, err := f.svc.Charge(ctx, req); !fault.Is(err, fault.Unavailable, "processor_unavailable") {
		t.Fatalf("outage: %v", err)
	}
	if _, err := f.store.ByOrder(ctx, req.OrderID); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("after outage: %v, want nothing stored", err)
	}

	// The processor does the work and hangs: the outcome is unknown (504).
	hanging := f.with(simulator.Config{TimeoutRate: 1}, payments.ServiceConfig{ProcessorTimeout: 100 * time.Millisecond})
	timed := chargeReq(simulator.TokenVisa)
	if _, err := hanging.Charge(ctx, timed); !fault.Is(err, fault.Timeout, "processor_unavailable") {
		t.Fatalf("hang: %v", err)
	}

	// The processor recovers: both orders end captured, each charged once.
	healthy := f.with(simulator.Config{}, payments.ServiceConfig{})
	for _, r := range []payments.ChargeRequest{req, timed} {
		if p, err := healthy.Charge(ctx, r); err != nil || p.Status != payments.StatusCaptured {
			t.Errorf("after recovery: %v %v", p.Status, err)
		}
	}
	if got := f.count(t, "charge"); got != 2 {
		t.Errorf("simulator recorded %d charges, want 2", got)
	}
	if got := f.proc.charges.Load(); got != 2 {
		t.Errorf("recovered processor asked %d times, want 2 (the hung one answers its first outcome)", got)
	}
}

// lateLedger records the entry, then holds the answer until the caller's
// deadline: the commit went through and its answer was cut, as when pgx
// cancels a query at the deadline after PostgreSQL committed it.
type lateLedger struct{ simulator.Ledger }

func (l lateLedger) Record(ctx context.Context, e simulator.Entry) (simulator.Entry, error) {
	if _, err := l.Ledger.Record(ctx, e); err != nil {
		return simulator.Entry{}, err
	}
	<-ctx.Done()
	return simulator.Entry{}, fmt.Errorf("record: %w", ctx.Err())
}

// A capture whose answer the deadline cut is an unknown outcome (504), never
// 503, which tells the caller that nothing was captured (docs/checkout.md).
func TestACaptureWhoseAnswerWasCutIsAnUnknownOutcome(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	cfg := payments.ServiceConfig{ProcessorTimeout: 100 * time.Millisecond}
	svc := payments.NewService(f.store, simulator.New(lateLedger{f.ledger}, simulator.Config{}), cfg)
	req := chargeReq(simulator.TokenVisa)
	_, err := svc.Charge(context.Background(), req)
	if !fault.Is(err, fault.Timeout, payments.ErrTimeout.Code) {
		t.Errorf("answer %v (kind %v), want the timeout (504, outcome unknown)", err, fault.KindOf(err))
	}
	if n := f.count(t, "charge"); n != 1 {
		t.Fatalf("processor recorded %d charges, want the 1 whose answer was cut", n)
	}
	// The retry under the key answers the capture.
	if p, err := f.svc.Charge(context.Background(), req); err != nil || p.Status != payments.StatusCaptured {
		t.Errorf("retry: %q %v, want captured", p.Status, err)
	}
}

func TestInvalidTokenStoresNothing(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq("4242424242424242")
	if _, err := f.svc.Charge(ctx, req); !fault.Is(err, fault.Invalid, "invalid_payment_token") {
		t.Fatalf("err = %v, want invalid_payment_token", err)
	}
	if _, err := f.store.ByOrder(ctx, req.OrderID); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("a payment was stored for an invalid token: %v", err)
	}
	if n := f.count(t, "charge"); n != 0 {
		t.Errorf("the processor recorded %d charges for an invalid token", n)
	}
	refused := req.Token
	req.Token = simulator.TokenVisa
	if p, err := f.svc.Charge(ctx, req); err != nil || p.Status != payments.StatusCaptured {
		t.Errorf("retry with a valid token: %v %v", p.Status, err)
	}
	// Neither token is kept anywhere, in any column, once both tables
	// hold the order's rows.
	for _, token := range []string{refused, req.Token} {
		for _, table := range []string{"payments", "processor_sim_entries"} {
			var rows, holding int
			if err := f.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE strpos(t::text, $1) > 0) FROM `+table+` t`,
				token).Scan(&rows, &holding); err != nil {
				t.Fatal(err)
			}
			if rows == 0 || holding != 0 {
				t.Errorf("%s: %d of %d rows hold the token %q", table, holding, rows, token)
			}
		}
	}
}

func TestChargeMismatchAndValidation(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if _, err := f.svc.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	other := req
	other.Amount.Amount++
	if _, err := f.svc.Charge(ctx, other); !fault.Is(err, fault.Conflict, "payment_mismatch") {
		t.Errorf("other amount: %v", err)
	}
	bad := []payments.ChargeRequest{
		{OrderID: req.OrderID, UserID: req.UserID, Amount: payments.Money{Amount: -5, Currency: "USD"}, Token: "tok_visa"},
		{OrderID: req.OrderID, UserID: req.UserID, Amount: payments.Money{Amount: 0, Currency: "USD"}, Token: "tok_visa"},
		{OrderID: req.OrderID, UserID: req.UserID, Amount: payments.Money{Amount: 5, Currency: "usd"}, Token: "tok_visa"},
		{OrderID: req.OrderID, UserID: req.UserID, Amount: usd},
		{UserID: req.UserID, Amount: usd, Token: "tok_visa"},
	}
	for i, b := range bad {
		if _, err := f.svc.Charge(ctx, b); !fault.Is(err, fault.Invalid, "invalid_request") {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func TestGetIsOwnerOrAdminOnly(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if _, err := f.svc.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	if p, err := f.svc.Get(ctx, req.OrderID, req.UserID, false); err != nil || p.OrderID != req.OrderID {
		t.Errorf("owner: %v", err)
	}
	if _, err := f.svc.Get(ctx, req.OrderID, uuid.New(), true); err != nil {
		t.Errorf("admin: %v", err)
	}
	if _, err := f.svc.Get(ctx, req.OrderID, uuid.New(), false); !fault.Is(err, fault.NotFound, "not_found") {
		t.Errorf("stranger: %v", err)
	}
}

func TestStatusOnlyMovesForward(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if _, err := f.svc.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	for _, back := range []string{"pending", "declined"} {
		if _, err := f.pool.Exec(ctx, `UPDATE payments SET status = $2 WHERE order_id = $1`, req.OrderID, back); err == nil {
			t.Errorf("captured -> %s was allowed", back)
		}
	}
}

// refundedAtItsSide is a processor whose Void answers that the key's charge
// was refunded at its side, as the simulator does of a charge refunded by
// hand (here whatever the key holds).
type refundedAtItsSide struct{ payments.Processor }

func (refundedAtItsSide) Void(context.Context, string) (payments.Result, error) {
	return payments.Result{Outcome: payments.OutcomeRefunded, Reference: "re_side", Amount: usd}, nil
}

// A pending row of the previous version whose key the processor answers
// refunded is answered as the row-less case is (refunded, no id) and the
// row goes: its status cannot move from pending to refunded, and a row left
// pending would be claimed and voided by every retry. Until 2026-12-07 Finish
// left the row pending and Refund looked again until its caller gave up.
func TestAPendingRowTheProcessorRefundedIsAnsweredRefunded(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	svc := payments.NewService(f.store, refundedAtItsSide{f.proc}, payments.ServiceConfig{PollInterval: 20 * time.Millisecond})
	req := chargeReq(simulator.TokenVisa)
	insertPending(t, f, payments.Payment{ID: uuid.Must(uuid.NewV7()), OrderID: req.OrderID, UserID: req.UserID,
		Amount: req.Amount}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for i := range 2 {
		p, err := svc.Refund(ctx, req.OrderID)
		if err != nil || p.Status != payments.StatusRefunded || p.ID != uuid.Nil || p.ProviderRef != "re_side" || p.Amount != usd {
			t.Fatalf("refund %d: %+v %v, want refunded re_side without an id", i+1, p, err)
		}
	}
	if _, err := f.store.ByOrder(ctx, req.OrderID); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("the pending row after the refund: %v, want gone", err)
	}
}

// chargeRefundedAtItsSide is a processor whose Charge answers that the key's
// charge was refunded at its side, as the simulator does of a charge
// refunded since (here whatever the key holds).
type chargeRefundedAtItsSide struct{ payments.Processor }

func (chargeRefundedAtItsSide) Charge(context.Context, string, payments.Money, string, uuid.UUID) (payments.Result, error) {
	return payments.Result{Outcome: payments.OutcomeRefunded, Reference: "re_side", Amount: usd}, nil
}

// A charge whose key the processor answers refunded can never capture under
// that key: the answer is a final refusal, 402 payment_declined (the saga
// ends the order payment_failed and releases its stock), on every retry,
// with nothing stored. Until 2026-12-07 it was 503 processor_unavailable,
// which the saga retried until GIVE_UP_AFTER with the stock held.
func TestAChargeTheProcessorRefundedIsAFinalRefusal(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	svc := payments.NewService(f.store, chargeRefundedAtItsSide{f.proc}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	for i := range 2 {
		_, err := svc.Charge(ctx, req)
		if !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) || fault.Retryable(err) ||
			!strings.Contains(fmt.Sprint(err), "refunded") {
			t.Fatalf("charge %d: %v (kind %v), want a final 402 payment_declined saying refunded", i+1, err, fault.KindOf(err))
		}
	}
	if _, err := f.store.ByOrder(ctx, req.OrderID); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("after the refusal: %v, want nothing stored", err)
	}
}

// A stored row of the order — captured by an earlier run of the saga that
// stopped before confirming, or pending from the previous version — whose key
// the processor then answers refunded is brought in line before the 402: the
// saga's refusal calls no refund, so a row left captured (or pending) would
// claim money the processor gave back. The captured row is recorded refunded
// with the processor's answer, no refund asked again (a real processor
// refuses one of a refunded charge; the simulator pays it); the pending one
// goes, as Refund settles it. Until 2026-12-07 the 402 left both rows as they
// were, and then (8e93afd) asked the processor for a second refund, which the
// simulator paid.
func TestAChargeTheProcessorRefundedSettlesTheStoredRow(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	captured, err := f.svc.Charge(ctx, req)
	if err != nil || captured.Status != payments.StatusCaptured {
		t.Fatalf("first charge: %+v %v", captured, err)
	}
	// Refunded at the processor by hand, under a key of its own: the
	// processor refuses another refund of the charge.
	if _, err := f.proc.Refund(ctx, "by-hand:"+req.OrderID.String(), captured.ProviderRef, captured.Amount); err != nil {
		t.Fatal(err)
	}
	svc := payments.NewService(f.store, chargeRefundedAtItsSide{f.proc}, payments.ServiceConfig{})
	for i := range 2 {
		if _, err := svc.Charge(ctx, req); !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) ||
			fault.Retryable(err) || !strings.Contains(fmt.Sprint(err), "refunded") {
			t.Fatalf("charge %d: %v (kind %v), want a final 402 payment_declined saying refunded", i+1, err, fault.KindOf(err))
		}
	}
	if p, err := f.store.ByOrder(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded {
		t.Errorf("the captured row after the refusal: %v %v, want refunded", p.Status, err)
	}
	if got := f.count(t, "refund"); got != 1 {
		t.Errorf("simulator recorded %d refunds, want 1 (the one by hand; none asked again)", got)
	}

	req = chargeReq(simulator.TokenVisa)
	insertPending(t, f, payments.Payment{ID: uuid.Must(uuid.NewV7()), OrderID: req.OrderID, UserID: req.UserID,
		Amount: req.Amount}, 0)
	if _, err := svc.Charge(ctx, req); !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) {
		t.Fatalf("charge over a pending row: %v (kind %v), want 402 payment_declined", err, fault.KindOf(err))
	}
	if p, err := f.store.ByOrder(ctx, req.OrderID); !fault.Is(err, fault.NotFound, "") {
		t.Errorf("the pending row after the refusal: %v %v, want gone", p.Status, err)
	}
}

// cutRefund is a processor adapter that calls a deadline cut of its Refund
// unavailable (503): Service must answer 504 all the same.
type cutRefund struct{ payments.Processor }

func (cutRefund) Refund(context.Context, string, string, payments.Money) (payments.Result, error) {
	return payments.Result{}, fault.Wrap(context.DeadlineExceeded, fault.Unavailable, payments.ErrUnavailable.Code, payments.ErrUnavailable.Message)
}

// failedUnclaim is a store whose Unclaim fails (the database went away
// after the claim).
type failedUnclaim struct{ payments.Store }

func (failedUnclaim) Unclaim(context.Context, uuid.UUID, uuid.UUID) error {
	return fault.Wrap(errors.New("connection reset"), fault.Unavailable, fault.CodeUnavailable, "database unavailable")
}

// A refund whose processor call failed and whose claim release failed too
// answers the processor call's classification: a cut call is an unknown
// outcome (504), not the 503 that says nothing happened. Until 2026-12-07
// the two errors were joined unclassified and the adapter's 503 came out.
func TestAFailedReleaseKeepsTheProcessorCallsClassification(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if _, err := f.svc.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	svc := payments.NewService(failedUnclaim{f.store}, cutRefund{f.proc}, payments.ServiceConfig{})
	_, err := svc.Refund(ctx, req.OrderID)
	if !fault.Is(err, fault.Timeout, payments.ErrTimeout.Code) {
		t.Errorf("answer %v (kind %v), want the timeout (504, outcome unknown)", err, fault.KindOf(err))
	}
	if !strings.Contains(fmt.Sprint(err), "connection reset") {
		t.Errorf("answer %v does not carry the failed release", err)
	}
}

// A charge refunded by hand at the processor (its dashboard, under a key of
// its own), then refunded by the shop's compensation under the order's
// refund key: the processor refuses a second refund of the charge and
// answers the first (Processor.Refund), and Refund records that answer, the
// hand refund's reference, as the payment's refund. Until 2026-12-07 the
// simulator paid the money back a second time (a real processor would have
// refused, charge_already_refunded, and the compensation never settled).
func TestARefundMadeByHandAtTheProcessorIsTheRefund(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	charged, err := f.svc.Charge(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	byHand, err := simulator.New(f.ledger, simulator.Config{}).Refund(ctx, "dashboard:"+uuid.NewString(), charged.ProviderRef, usd)
	if err != nil || byHand.Outcome != payments.OutcomeRefunded || byHand.Reference == "" {
		t.Fatalf("refund by hand: %+v %v", byHand, err)
	}
	for i := range 2 {
		p, err := f.svc.Refund(ctx, req.OrderID)
		if err != nil || p.Status != payments.StatusRefunded || p.ID != charged.ID || p.ProviderRef != charged.ProviderRef {
			t.Fatalf("shop's refund %d: %+v %v, want the payment refunded", i+1, p, err)
		}
	}
	if got := f.count(t, "refund"); got != 1 {
		t.Errorf("the processor made %d refunds of the charge, want 1 (the one by hand)", got)
	}
	var refundRef string
	if err := f.pool.QueryRow(ctx, `SELECT refund_ref FROM payments WHERE order_id = $1`, req.OrderID).Scan(&refundRef); err != nil {
		t.Fatal(err)
	}
	if refundRef != byHand.Reference {
		t.Errorf("refund_ref %q, want the refund by hand's %q", refundRef, byHand.Reference)
	}
}

// A charge refunded by hand at the processor is never answered captured
// again: a retried charge (a saga re-driven before it confirmed) is a final
// 402 saying refunded, and the stored captured row is recorded refunded with
// the refund by hand; with no row (its recording was lost) nothing is stored
// and the refund answers the refund by hand. Either way the processor made
// one refund. Until 2026-12-07 the simulator replayed the key's first answer,
// captured: the retry answered 200 captured (the row stayed captured, or was
// recorded captured), and the saga confirmed the order on money given back.
func TestAChargeRefundedByHandIsNeverAnsweredCaptured(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	byHand := func(t *testing.T, chargeRef string) payments.Result {
		t.Helper()
		res, err := simulator.New(f.ledger, simulator.Config{}).Refund(ctx, "dashboard:"+uuid.NewString(), chargeRef, usd)
		if err != nil || res.Outcome != payments.OutcomeRefunded {
			t.Fatalf("refund by hand: %+v %v", res, err)
		}
		return res
	}
	refused := func(t *testing.T, svc *payments.Service, req payments.ChargeRequest) {
		t.Helper()
		for i := range 2 {
			p, err := svc.Charge(ctx, req)
			if !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) || fault.Retryable(err) ||
				!strings.Contains(fmt.Sprint(err), "refunded") {
				t.Fatalf("charge %d after the refund by hand: %+v %v, want a final 402 payment_declined saying refunded", i+1, p, err)
			}
		}
	}

	t.Run("stored captured", func(t *testing.T) {
		req := chargeReq(simulator.TokenVisa)
		captured, err := f.svc.Charge(ctx, req)
		if err != nil || captured.Status != payments.StatusCaptured {
			t.Fatalf("charge: %+v %v", captured, err)
		}
		hand := byHand(t, captured.ProviderRef)
		refused(t, f.svc, req)
		var status, refundRef string
		if err := f.pool.QueryRow(ctx, `SELECT status, refund_ref FROM payments WHERE order_id = $1`, req.OrderID).Scan(&status, &refundRef); err != nil {
			t.Fatal(err)
		}
		if status != string(payments.StatusRefunded) || refundRef != hand.Reference {
			t.Errorf("the row: %s %q, want refunded by hand %q", status, refundRef, hand.Reference)
		}
		if p, err := f.svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded || p.ID != captured.ID {
			t.Errorf("the shop's refund: %+v %v, want the payment refunded", p, err)
		}
		if n, err := refundCount(f, req.OrderID); err != nil || n != 0 {
			t.Errorf("%d refunds under the order's refund key (%v), want none: the one by hand is the refund", n, err)
		}
	})

	t.Run("recording lost", func(t *testing.T) {
		store := &losing{Store: f.store}
		svc := payments.NewService(store, f.proc, payments.ServiceConfig{})
		req := chargeReq(simulator.TokenVisa)
		store.lose.Store(true)
		if _, err := svc.Charge(ctx, req); !fault.Is(err, fault.Unavailable, "") {
			t.Fatalf("charge whose recording is lost: %v", err)
		}
		charged, found := f.entry(t, req.OrderID)
		if !found {
			t.Fatal("no charge at the processor")
		}
		hand := byHand(t, charged.Reference)
		refused(t, svc, req)
		if p, err := f.store.ByOrder(ctx, req.OrderID); !fault.Is(err, fault.NotFound, "") {
			t.Errorf("after the refusal: %+v %v, want nothing stored", p, err)
		}
		if p, err := svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded || p.ProviderRef != hand.Reference {
			t.Errorf("the shop's refund: %+v %v, want refunded by hand %s", p, err, hand.Reference)
		}
		if n, err := refundCount(f, req.OrderID); err != nil || n != 0 {
			t.Errorf("%d refunds under the order's refund key (%v), want none: the one by hand is the refund", n, err)
		}
	})
	if got := f.count(t, "refund"); got != 2 {
		t.Errorf("the processor made %d refunds of two charges, want 2 (the ones by hand)", got)
	}
}

// refundingAfterCharge answers its first Charge as the processor does, then,
// before handing the answer back, refunds the order through refund: a refund
// that lands between a retried charge's processor answer (captured) and its
// recording.
type refundingAfterCharge struct {
	payments.Processor
	once   sync.Once
	refund func()
}

func (r *refundingAfterCharge) Charge(ctx context.Context, key string, m payments.Money, token string, customer uuid.UUID) (payments.Result, error) {
	res, err := r.Processor.Charge(ctx, key, m, token, customer)
	r.once.Do(r.refund)
	return res, err
}

// A charge retried while its order is refunded, whose processor answer
// (captured) is recorded only after the refund, is answered as any charge of
// a refunded key is, 402: until 2026-12-07 it answered 200 with the stored
// row, refunded, which charge-payment's callers read as an internal error.
func TestAChargeWhoseRefundRacesItsRecordingIsRefused(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if _, err := f.svc.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	racing := &refundingAfterCharge{Processor: f.proc, refund: func() {
		if p, err := f.svc.Refund(ctx, req.OrderID); err != nil || p.Status != payments.StatusRefunded {
			t.Errorf("the racing refund: %q %v", p.Status, err)
		}
	}}
	p, err := payments.NewService(f.store, racing, payments.ServiceConfig{}).Charge(ctx, req)
	if !fault.Is(err, fault.PaymentRequired, fault.CodePaymentDeclined) {
		t.Fatalf("the retried charge: %+v %v, want 402 payment_declined", p, err)
	}
	if stored, err := f.store.ByOrder(ctx, req.OrderID); err != nil || stored.Status != payments.StatusRefunded {
		t.Errorf("stored payment %q, %v; want refunded", stored.Status, err)
	}
	if n := f.count(t, "refund"); n != 1 {
		t.Errorf("processor recorded %d refunds, want 1", n)
	}
}

// A processor that holds, under the order's refund key, a refund of another
// charge (the key used by hand, say) refuses the order's refund as a reused
// key, and Service answers that conflict and leaves the payment captured:
// never the other charge's refund recorded as this order's, with its money
// still held. Until 2026-12-08 the simulator answered the key's first refund
// and the row was recorded refunded.
func TestARefundKeyReusedAtTheProcessorIsAConflictNotARefund(t *testing.T) {
	f := newFixture(t, simulator.Config{}, payments.ServiceConfig{})
	ctx := context.Background()
	req := chargeReq(simulator.TokenVisa)
	if _, err := f.svc.Charge(ctx, req); err != nil {
		t.Fatal(err)
	}
	other, err := f.proc.Charge(ctx, "another-charge", usd, simulator.TokenVisa, uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.proc.Refund(ctx, payments.RefundKey(req.OrderID), other.Reference, usd); err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.Refund(ctx, req.OrderID)
	if !fault.Is(err, fault.Conflict, fault.CodeIdempotencyKeyReused) {
		t.Fatalf("refund: %+v %v, want a conflict %s", p, err, fault.CodeIdempotencyKeyReused)
	}
	stored, err := f.store.ByOrder(ctx, req.OrderID)
	if err != nil || stored.Status != payments.StatusCaptured {
		t.Errorf("stored payment: %+v %v, want it captured still", stored, err)
	}
	if n := f.count(t, "refund"); n != 1 {
		t.Errorf("%d refunds at the processor, want 1 (the other charge's)", n)
	}
}
