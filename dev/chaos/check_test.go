package chaos

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	updateproductstats "github.com/shopfaas/shop/functions/update-product-stats"
	"github.com/shopfaas/shop/internal/payments"
	"github.com/shopfaas/shop/internal/routes"
)

// full is a run that did everything the short form plans.
var full = effort{plannedPG: 1, plannedRabbit: 1, plansKills: true, plansDeclines: true,
	pgRestarts: 1, rabbitRestarts: 1, kills: 12, confirmed: 300, declinedCards: 80, declinedFailed: 80, failed: 80, cancelled: 40, soldOut: 12}

func failing(vs []verdict) []string {
	var out []string
	for _, v := range vs {
		if !v.ok {
			out = append(out, v.name+" — "+v.detail)
		}
	}
	return out
}

func TestRunThatDidItsPlanPasses(t *testing.T) {
	vs := full.verdicts()
	if len(vs) != 6 {
		t.Fatalf("%d verdicts, want 6: %v", len(vs), vs)
	}
	if f := failing(vs); len(f) > 0 {
		t.Fatalf("a run that did its plan fails: %v", f)
	}
}

// Each count short of the plan fails its own verdict, and only that one: a
// run in which nothing happened cannot pass the trivially true invariants.
func TestRunThatDidLessThanItsPlanFails(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*effort)
		fails  string
	}{
		{"PostgreSQL restart failed", func(e *effort) { e.pgRestarts = 0 }, "every planned restart happened"},
		{"one of three PostgreSQL restarts", func(e *effort) { e.plannedPG, e.pgRestarts = 3, 1 }, "every planned restart happened"},
		{"RabbitMQ restart failed", func(e *effort) { e.rabbitRestarts = 0 }, "every planned restart happened"},
		{"no process killed", func(e *effort) { e.kills = 0 }, "processes were killed"},
		{"no order confirmed", func(e *effort) { e.confirmed = 0 }, "orders were confirmed"},
		{"no order cancelled", func(e *effort) { e.cancelled = 0 }, "orders were cancelled"},
		{"nothing sold out", func(e *effort) { e.soldOut = 0 }, "the scarce product sold out"},
		{"no order declined", func(e *effort) { e.failed = 0 }, "declined cards were placed and ended payment_failed"},
		{"no declined card placed", func(e *effort) { e.declinedCards, e.declinedFailed, e.failed = 0, 0, 0 }, "declined cards were placed and ended payment_failed"},
		{"a good card's order payment_failed", func(e *effort) { e.failed = 81 }, "declined cards were placed and ended payment_failed"},
		{"no declined card's order payment_failed", func(e *effort) { e.declinedFailed = 0 }, "declined cards were placed and ended payment_failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := full
			c.change(&e)
			f := failing(e.verdicts())
			if len(f) != 1 || !strings.HasPrefix(f[0], c.fails+" — ") {
				t.Fatalf("failing verdicts %q, want only %q", f, c.fails)
			}
		})
	}
	if f := failing(effort{plannedPG: 1, plannedRabbit: 1, plansKills: true, plansDeclines: true}.verdicts()); len(f) != 6 {
		t.Errorf("a run that did nothing fails %d verdicts, want 6: %q", len(f), f)
	}
}

// A plan without restarts asks for none.
func TestPlanWithoutRestartsAsksForNone(t *testing.T) {
	e := full
	e.plannedPG, e.plannedRabbit, e.pgRestarts, e.rabbitRestarts = 0, 0, 0, 0
	if f := failing(e.verdicts()); len(f) > 0 {
		t.Fatalf("failing verdicts %q", f)
	}
}

// effortOf reads the plan from the options (after their defaults: every run
// kills) and what was done from the counters, the orders and their statuses.
func TestEffortOfReadsTheCounters(t *testing.T) {
	o := Options{Duration: 30 * time.Second, PGRestarts: 1, RabbitRestarts: 2}
	o.defaults()
	scarce, plenty := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	failedUser, confirmedUser, refusedUser := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	r := &run{o: o, scarce: scarce, orders: []*order{
		{declined: true, user: failedUser}, {cancel: 200}, {declined: true, user: confirmedUser}, {declined: true, user: refusedUser}, {cancel: 409},
		{status: 409, outOfStock: true, product: scarce}, {status: 409, outOfStock: true, product: plenty}, {status: 409, product: scarce},
	}}
	ends := map[uuid.UUID][]orderEnd{
		failedUser:    {{"payment_failed", "payment_declined"}},
		confirmedUser: {{"confirmed", ""}},
		refusedUser:   {{"payment_failed", "invalid_payment_token"}},
	}
	r.n.PGRestarts.Add(1)
	r.n.RabbitStops.Add(1)
	r.n.RabbitKills.Add(1)
	r.n.Kills.Add(7)
	// The first order, placed before the chaos, is not one the run
	// confirmed.
	warmUser := uuid.Must(uuid.NewV7())
	r.orders = append(r.orders, &order{status: 201, warm: true, user: warmUser})
	ends[warmUser] = []orderEnd{{"confirmed", ""}}
	got := r.effortOf(map[string]int{"confirmed": 6, "payment_failed": 2, "cancelled": 1}, func(user uuid.UUID) []orderEnd { return ends[user] })
	want := effort{plannedPG: 1, plannedRabbit: 2, plansKills: true, plansDeclines: true,
		pgRestarts: 1, rabbitRestarts: 2, kills: 7, confirmed: 5, declinedCards: 3, declinedFailed: 1, failed: 2, cancelled: 1, soldOut: 1}
	if got != want {
		t.Fatalf("effortOf = %+v, want %+v", got, want)
	}
}

// A cancel's answer binds the order's end where the answer could know it:
// only a cancel ends an order cancelled by request, so 409 at a cancel's
// first try forbids that end after a checkout answered 201 or 202, while
// recovery may still end a pending order cancelled for another reason.
func TestACancelsAnswerIsTheOrdersEnd(t *testing.T) {
	const byRequest, outOfStock = "cancelled_by_request", "out_of_stock"
	cases := []struct {
		name           string
		o              order
		status, reason string
		fails          bool
	}{
		{"200, cancelled by request", order{status: 201, cancel: 200}, "cancelled", byRequest, false},
		{"200, still confirmed", order{status: 201, cancel: 200}, "confirmed", "", true},
		{"200, cancelled out of stock", order{status: 202, cancel: 200}, "cancelled", outOfStock, true},
		{"409 after 201, confirmed", order{status: 201, cancel: 409}, "confirmed", "", false},
		{"409 after 201, cancelled by request", order{status: 201, cancel: 409}, "cancelled", byRequest, true},
		{"409 after a retry, cancelled by request", order{status: 201, cancel: 409, cancelRetried: true}, "cancelled", byRequest, false},
		{"409 while pending, cancelled by recovery", order{status: 202, cancel: 409}, "cancelled", outOfStock, false},
		{"409 while pending, cancelled by request", order{status: 202, cancel: 409}, "cancelled", byRequest, true},
		{"409 while pending, confirmed", order{status: 202, cancel: 409}, "confirmed", "", false},
		{"404 to the owner's cancel", order{status: 201, cancel: 404}, "confirmed", "", true},
		{"not cancelled", order{status: 201}, "cancelled", byRequest, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.id = uuid.Must(uuid.NewV7())
			_, p := cancelProblems([]*order{&o}, func(id uuid.UUID) (string, string) {
				if id != o.id {
					t.Fatalf("end of %s asked, want %s", id, o.id)
				}
				return c.status, c.reason
			})
			if (len(p) > 0) != c.fails {
				t.Fatalf("problems %q, want failing %v", p, c.fails)
			}
		})
	}
}

// settle waits for every order event each consumer the invariants read has
// to handle, and only for those: a delivery the connector holds
// unacknowledged is in no queue's count, and update-product-stats never
// records a failed payment, which it is not sent.
func TestSettleWaitsForTheOrderEventsNotYetHandled(t *testing.T) {
	placed, placedNotCounted, cancelledNotNotified := uuid.New(), uuid.New(), uuid.New()
	failed, failedNotNotified := uuid.New(), uuid.New()
	types := map[uuid.UUID]string{
		placed: "order.placed.v1", placedNotCounted: "order.placed.v1",
		cancelledNotNotified: "order.cancelled.v1",
		failed:               "order.payment_failed.v1", failedNotNotified: "order.payment_failed.v1",
	}
	for _, c := range []struct {
		fn      string
		handled []uuid.UUID
		want    int
	}{
		{"notify-user", []uuid.UUID{placed, placedNotCounted, failed}, 2},
		{"update-product-stats", []uuid.UUID{placed, cancelledNotNotified}, 1},
		{"update-product-stats", []uuid.UUID{placed, placedNotCounted, cancelledNotNotified}, 0},
		{"notify-user", nil, len(types)},
	} {
		handled := map[uuid.UUID]bool{}
		for _, id := range c.handled {
			handled[id] = true
		}
		if got := unhandled(c.fn, types, handled); got != c.want {
			t.Errorf("%s handled %d of the %d events: %d left, want %d", c.fn, len(c.handled), len(types), got, c.want)
		}
	}
}

// Every function sent an order event has its effects waited for by settle:
// one added later, whose effect an invariant reads, must be added to
// eventEffects too, or settle may end before it has handled its events.
func TestSettleKnowsEveryConsumerOfTheOrderEvents(t *testing.T) {
	var waited []string
	for _, e := range eventEffects {
		waited = append(waited, e.fn)
	}
	for _, rt := range routes.Table() {
		if rt.Kind != routes.Event || !slices.ContainsFunc(rt.Topics, func(t string) bool { return slices.Contains(orderEvents, t) }) {
			continue
		}
		if !slices.Contains(waited, rt.Function) {
			t.Errorf("%s is sent order events (%v) but settle does not wait for it (eventEffects)", rt.Function, rt.Topics)
		}
	}
	for _, fn := range waited {
		if rt, _ := routes.Lookup(fn); !slices.ContainsFunc(rt.Topics, func(t string) bool { return slices.Contains(orderEvents, t) }) {
			t.Errorf("settle waits for %s, which is sent no order event", fn)
		}
	}
	// The inbox claims settle reads are update-product-stats' own.
	if !slices.ContainsFunc(eventEffects, func(e struct{ fn, db, sql string }) bool {
		return strings.Contains(e.sql, "consumer = '"+updateproductstats.Consumer+"'")
	}) {
		t.Errorf("no query of eventEffects reads the inbox claims of consumer %q", updateproductstats.Consumer)
	}
}

// A checkout's definite answer is its order's end: what the customer was
// told is what the shop did. And the card decides the end: under chaos the
// simulator captures every tok_visa charge and recovery gives up only after
// 12 h, so a good card never ends payment_failed and a declined one always
// does (unless the scarce product ran out first); only the scarce product can
// run out.
func TestACheckoutsAnswerIsTheOrdersEnd(t *testing.T) {
	confirmed := orderEnd{"confirmed", ""}
	byRequest := orderEnd{"cancelled", "cancelled_by_request"}
	outOfStock := orderEnd{"cancelled", "out_of_stock"}
	failed := orderEnd{"payment_failed", "payment_declined"}
	refused := orderEnd{"payment_failed", "invalid_payment_token"}
	scarce, plenty := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	cases := []struct {
		name  string
		o     order
		ends  []orderEnd
		fails bool
	}{
		{"201, confirmed", order{status: 201}, []orderEnd{confirmed}, false},
		{"201, cancelled by its cancel", order{status: 201, cancel: 200}, []orderEnd{byRequest}, false},
		{"201, cancelled by request without a cancel", order{status: 201}, []orderEnd{byRequest}, true},
		{"201, payment failed", order{status: 201}, []orderEnd{failed}, true},
		{"201, cancelled out of stock", order{status: 201, cancel: 409, product: scarce}, []orderEnd{outOfStock}, true},
		{"201, no order", order{status: 201}, nil, true},
		{"201 to a declined card, confirmed", order{status: 201, declined: true}, []orderEnd{confirmed}, true},
		{"402 to a declined card, payment failed", order{status: 402, declined: true}, []orderEnd{failed}, false},
		{"402 to a good card, payment failed", order{status: 402}, []orderEnd{failed}, true},
		{"402 to a declined card, token refused", order{status: 402, declined: true}, []orderEnd{refused}, true},
		{"402, confirmed", order{status: 402, declined: true}, []orderEnd{confirmed}, true},
		{"409 out of stock, cancelled out of stock", order{status: 409, outOfStock: true, product: scarce}, []orderEnd{outOfStock}, false},
		{"409 out of stock, no order", order{status: 409, outOfStock: true, product: scarce}, nil, false},
		{"409 out of stock to a declined card", order{status: 409, outOfStock: true, product: scarce, declined: true}, []orderEnd{outOfStock}, false},
		{"409 out of stock on a plentiful product", order{status: 409, outOfStock: true, product: plenty}, []orderEnd{outOfStock}, true},
		{"409 out of stock on a plentiful product, no order", order{status: 409, outOfStock: true, product: plenty}, nil, true},
		{"409 out of stock, confirmed", order{status: 409, outOfStock: true, product: scarce}, []orderEnd{confirmed}, true},
		{"409 other, cancelled", order{status: 409, product: scarce}, []orderEnd{outOfStock}, true},
		{"202 to a declined card, payment failed", order{status: 202, declined: true}, []orderEnd{failed}, false},
		{"202 to a declined card, confirmed", order{status: 202, declined: true}, []orderEnd{confirmed}, true},
		{"202 to a good card, payment failed", order{status: 202}, []orderEnd{failed}, true},
		{"202 to a good card, confirmed", order{status: 202}, []orderEnd{confirmed}, false},
		{"202, cancelled by its cancel", order{status: 202, cancel: 200}, []orderEnd{byRequest}, false},
		{"202, cancelled out of stock", order{status: 202, product: scarce}, []orderEnd{outOfStock}, false},
		{"202, cancelled out of stock on a plentiful product", order{status: 202, product: plenty}, []orderEnd{outOfStock}, true},
		{"no definite answer: every order final's", order{declined: true}, []orderEnd{confirmed}, false},
		{"500", order{status: 500}, nil, true},
		{"two orders: the key check's", order{status: 201}, []orderEnd{failed, failed}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			if o.product == uuid.Nil {
				o.product = plenty
			}
			o.user, o.key = uuid.Must(uuid.NewV7()), uuid.NewString()
			p := checkoutProblems([]*order{&o}, scarce, func(user uuid.UUID) []orderEnd {
				if user != o.user {
					t.Fatalf("orders of %s asked, want %s", user, o.user)
				}
				return c.ends
			})
			if (len(p) > 0) != c.fails {
				t.Fatalf("problems %q, want failing %v", p, c.fails)
			}
		})
	}
}

// Each final order's events in the orders outbox, by subject, are exactly
// those its end writes (internal/orders lifecycle: Confirm, Fail, Cancel):
// confirmed, one order.placed.v1; payment_failed, one
// order.payment_failed.v1; cancelled by request (Cancel takes only a
// confirmed order), one placed and one cancelled; cancelled otherwise
// (out of stock, refused: Fail of a pending order), one cancelled. A
// duplicate does not show in the notifications (their event_id is unique).
func TestEachOrderWroteTheEventsOfItsEnd(t *testing.T) {
	const placed, cancelled, failed = "order.placed.v1", "order.cancelled.v1", "order.payment_failed.v1"
	confirmed := orderEnd{"confirmed", ""}
	byRequest := orderEnd{"cancelled", "cancelled_by_request"}
	outOfStock := orderEnd{"cancelled", "out_of_stock"}
	declined := orderEnd{"payment_failed", "payment_declined"}
	pending := orderEnd{"pending", ""}
	cases := []struct {
		name  string
		end   orderEnd
		types []string
		fails bool
	}{
		{"confirmed, placed", confirmed, []string{placed}, false},
		{"confirmed, no event", confirmed, nil, true},
		{"confirmed, placed twice", confirmed, []string{placed, placed}, true},
		{"confirmed, placed and failed", confirmed, []string{placed, failed}, true},
		{"payment failed", declined, []string{failed}, false},
		{"payment failed twice", declined, []string{failed, failed}, true},
		{"payment failed, placed too", declined, []string{placed, failed}, true},
		{"payment failed, no event", declined, nil, true},
		{"payment failed, cancelled", declined, []string{cancelled}, true},
		{"cancelled by request, placed and cancelled", byRequest, []string{placed, cancelled}, false},
		{"cancelled by request, never placed", byRequest, []string{cancelled}, true},
		{"cancelled by request, cancelled twice", byRequest, []string{placed, cancelled, cancelled}, true},
		{"cancelled by request, no cancellation", byRequest, []string{placed}, true},
		{"cancelled out of stock", outOfStock, []string{cancelled}, false},
		{"cancelled out of stock, placed too", outOfStock, []string{placed, cancelled}, true},
		{"cancelled out of stock, no event", outOfStock, nil, true},
		{"pending: every order final's", pending, []string{placed, placed}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, other := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
			evs := []orderEvent{{id: uuid.New(), subject: other.String(), typ: placed}}
			for _, typ := range c.types {
				evs = append(evs, orderEvent{id: uuid.New(), subject: id.String(), typ: typ})
			}
			p := eventProblems(map[uuid.UUID]orderEnd{id: c.end, other: confirmed}, evs)
			if (len(p) > 0) != c.fails {
				t.Fatalf("problems %q, want failing %v", p, c.fails)
			}
		})
	}
	// An order event of no order, or whose subject is no order id.
	id := uuid.Must(uuid.NewV7())
	for _, subject := range []string{uuid.NewString(), "", "not-an-id"} {
		evs := []orderEvent{{id: uuid.New(), subject: id.String(), typ: placed}, {id: uuid.New(), subject: subject, typ: cancelled}}
		if p := eventProblems(map[uuid.UUID]orderEnd{id: confirmed}, evs); len(p) == 0 {
			t.Errorf("an order event with subject %q passes", subject)
		}
	}
}

// Every capture in the simulator's ledger is recorded, and the check cannot
// pass having read nothing: fewer captures than confirmed orders (every
// confirmed order was captured), or a ledger key that is no order's charge
// or refund key (payments.ChargeKey, payments.RefundKey), is a problem.
func TestEveryCaptureAtTheProcessorIsRecorded(t *testing.T) {
	kept, refunded, declined := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	good := []simEntry{
		{payments.ChargeKey(kept), "charge", "captured"},
		{payments.ChargeKey(refunded), "charge", "captured"},
		{payments.RefundKey(refunded), "refund", "refunded"},
		{payments.ChargeKey(declined), "charge", "declined"},
	}
	recorded := map[uuid.UUID]string{kept: "captured", refunded: "refunded", declined: "declined"}
	cases := []struct {
		name      string
		ledger    []simEntry
		recorded  map[uuid.UUID]string
		confirmed int
		fails     bool
	}{
		{"every capture recorded", good, recorded, 1, false},
		{"a capture not recorded", good, map[uuid.UUID]string{refunded: "refunded", declined: "declined"}, 1, true},
		{"a refund not recorded", good, map[uuid.UUID]string{kept: "captured", refunded: "captured", declined: "declined"}, 1, true},
		{"no capture, an order confirmed", nil, map[uuid.UUID]string{kept: "captured"}, 1, true},
		{"fewer captures than confirmed orders", good, recorded, 3, true},
		{"no capture, no order confirmed", nil, nil, 0, false},
		{"a key that is no uuid", append(slices.Clone(good), simEntry{"not-an-order", "charge", "captured"}), recorded, 1, true},
		{"a charge under another format", append(slices.Clone(good), simEntry{"charge:" + kept.String(), "charge", "captured"}), recorded, 1, true},
		{"a charge under a refund key", append(slices.Clone(good), simEntry{payments.RefundKey(kept), "charge", "declined"}), recorded, 1, true},
		{"a refund under a charge key", append(slices.Clone(good), simEntry{payments.ChargeKey(kept), "refund", "refunded"}), recorded, 1, true},
		{"a charge key in another spelling", append(slices.Clone(good), simEntry{"urn:uuid:" + declined.String(), "charge", "declined"}), recorded, 1, true},
		{"an unknown kind", append(slices.Clone(good), simEntry{payments.ChargeKey(declined), "void", "declined"}), recorded, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, p := captureProblems(c.ledger, c.recorded, c.confirmed)
			if (len(p) > 0) != c.fails {
				t.Fatalf("problems %q, want failing %v", p, c.fails)
			}
		})
	}
	// The ledger read by order: what the next check (declined or cancelled
	// ⇒ nothing captured kept) reads.
	capturedAt, refundedAt, captures, _ := captureProblems(good, recorded, 1)
	if captures != 2 || !capturedAt[kept] || refundedAt[kept] || !capturedAt[refunded] || !refundedAt[refunded] || capturedAt[declined] || refundedAt[declined] {
		t.Fatalf("captures %d, captured %v, refunded %v", captures, capturedAt, refundedAt)
	}
}

// A request that never gets a definite answer is given up after
// AnswerWithin (the command's context ends only on a signal, so an endless
// 5xx would hang the run, and make test, instead of failing it): its
// answer is 0, which the verdicts report.
func TestARequestWithoutADefiniteAnswerIsGivenUp(t *testing.T) {
	tries := 0
	done := make(chan int, 1)
	go func() {
		code, _, retried := untilDefinite(t.Context(), 100*time.Millisecond, 10*time.Millisecond, func() (int, []byte, error) {
			tries++
			return 503, nil, nil
		})
		if !retried {
			t.Error("not retried")
		}
		done <- code
	}()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("answer %d after %d tries of 503, want 0", code, tries)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still retrying a permanent 503 after 5s, with AnswerWithin 100ms")
	}
	// Until then a 5xx, a 429 and a 409 request_in_progress are retried.
	answers := []struct {
		code int
		body string
	}{{502, ""}, {429, ""}, {409, `{"code":"request_in_progress"}`}, {201, `{}`}}
	i := 0
	code, b, retried := untilDefinite(t.Context(), time.Minute, time.Millisecond, func() (int, []byte, error) {
		a := answers[i]
		i++
		return a.code, []byte(a.body), nil
	})
	if code != 201 || string(b) != "{}" || !retried || i != len(answers) {
		t.Fatalf("answer %d %s retried %v after %d tries, want 201 after %d", code, b, retried, i, len(answers))
	}
}

// A planned PostgreSQL restart that finds the server dead on its own sent
// no signal: the server is started again and the restart made once more;
// one that finds it dead again (or fails) is not a planned restart, and
// "every planned restart happened" fails.
func TestARevivedPostgreSQLIsNotAPlannedRestart(t *testing.T) {
	for _, c := range []struct {
		name    string
		revived []bool
		failed  bool
		tries   int
		deaths  int
		done    bool
	}{
		{"signalled", []bool{false}, false, 1, 0, true},
		{"found dead, then signalled", []bool{true, false}, false, 2, 1, true},
		{"found dead twice", []bool{true, true}, false, 2, 2, false},
		{"failed", []bool{false}, true, 1, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tries := 0
			deaths, err := deliverRestart(func() (bool, error) {
				if tries >= len(c.revived) {
					t.Fatalf("restart %d, want %d", tries+1, len(c.revived))
				}
				revived := c.revived[tries]
				tries++
				if c.failed {
					return revived, errors.New("boom")
				}
				return revived, nil
			})
			if tries != c.tries || deaths != c.deaths || (err == nil) != c.done {
				t.Fatalf("%d restarts, %d found dead, err %v; want %d, %d, counted %v", tries, deaths, err, c.tries, c.deaths, c.done)
			}
		})
	}
	e := full
	e.pgRestarts, e.pgRevived = 0, 1
	if f := failing(e.verdicts()); len(f) != 1 || !strings.Contains(f[0], "found dead on its own 1 times") {
		t.Fatalf("a restart that found PostgreSQL dead: failing verdicts %q", f)
	}
}
