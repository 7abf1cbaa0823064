package telemetry

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// Shop is the shop owner's metrics: what a function process observes about
// orders, payments, stock and the checkout saga, registered on the process's
// own registry (fnserve creates one per process and serves it at /_/metrics).
// Every function process has the set; each series appears once it is
// observed, in the function that observes it, but the cache errors' and the
// notification emails', which exist at 0 from the start, so their rate reads
// 0 and not "no data". A nil *Shop records nothing,
// so code that runs outside fnserve (tests, tools) needs no stand-in.
type Shop struct {
	orders         *prometheus.CounterVec
	declines       prometheus.Counter
	conflicts      prometheus.Counter
	stepDuration   *prometheus.HistogramVec
	stepFailures   *prometheus.CounterVec
	compensations  *prometheus.CounterVec
	recoveryRuns   *prometheus.CounterVec
	recoveredTotal *prometheus.CounterVec
	sweeps         *prometheus.CounterVec
	cacheErrors    *prometheus.CounterVec
	emails         *prometheus.CounterVec
}

// The reasons of CacheError.
const (
	// CacheAuth is a call Redis refused (redisconn.AuthFailed: NOAUTH,
	// WRONGPASS, NOPERM) or whose TLS handshake failed the verification of
	// Redis's certificate (redisconn.TLSFailed: the redis-ca secret, or
	// REDIS_ADDR's host): a configuration error (redisconn.Misconfigured).
	CacheAuth = "auth"
	// CacheUnavailable is any other failed call: Redis down, slow or full.
	CacheUnavailable = "unavailable"
)

// The outcomes of NotificationEmail.
const (
	// EmailSent is an email the mail server accepted.
	EmailSent = "sent"
	// EmailRefused is an email the mail server refused for good
	// (notifications.ErrUndeliverable), recorded so and never tried again.
	EmailRefused = "refused"
	// EmailFailed is a send that failed and is retried (the delivery
	// answers 503): a 4xx, a connection, TLS or login failure, or a refusal
	// that is the sender's configuration.
	EmailFailed = "failed"
	// EmailUnanswered is an email the mail server had whole but did not
	// answer within SMTP_TIMEOUT (notifications.ErrUnanswered): it may have
	// gone out, and is recorded sent, never tried again.
	EmailUnanswered = "unanswered"
)

// NewShop registers the shop's metrics on reg.
func NewShop(reg prometheus.Registerer) *Shop {
	m := &Shop{
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_orders_total",
			Help: "Checkouts answered by create-order (replays excluded), by outcome: confirmed, pending, payment_declined, invalid_payment_token, out_of_stock, cancelled, rejected.",
		}, []string{"outcome"}),
		declines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shop_payment_declines_total",
			Help: "Charges the payment processor declined or refused, seen by the checkout saga (create-order and recover-orders).",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shop_reservation_conflicts_total",
			Help: "Reservations refused for want of stock, seen by the checkout saga.",
		}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shop_saga_step_duration_seconds",
			Help:    "Time of one attempt of a saga step (stock.reserve, payment.charge, stock.commit, stock.release, payment.refund), by outcome: ok, refused, error.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"step", "outcome"}),
		stepFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_saga_step_failures_total",
			Help: "Saga step attempts that failed, by step and kind: refused (the other service said no) or error (transient; retried).",
		}, []string{"step", "kind"}),
		compensations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_saga_compensations_total",
			Help: "Compensations (release, refund) by result: owed when one is left for recover-orders, settled when it is done.",
		}, []string{"result"}),
		recoveryRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_recovery_runs_total",
			Help: "recover-orders runs, by result: ok or error.",
		}, []string{"result"}),
		recoveredTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_recovered_orders_total",
			Help: "Orders recover-orders drove, by how they ended the run: confirmed, failed, still_pending, expired (given up on after GIVE_UP_AFTER); cart_removal for a confirmed order driven for its owed cart removal, compensation for an ended order driven for an owed release or refund; taken_over for an order whose claim another run took over while this one drove it (that run counts how it ends); error for an order claimed that the run could not drive.",
		}, []string{"result"}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_reservation_sweeps_total",
			Help: "expire-reservations runs, by result: ok or error.",
		}, []string{"result"}),
		cacheErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_cache_errors_total",
			Help: "Product cache calls that failed (each a miss, served from the database), by reason: auth (Redis refused the login or the command: the redis-password secret or Redis's ACL; or Redis's TLS certificate failed verification: the redis-ca secret or REDIS_ADDR's host) or unavailable (Redis down, slow or full).",
		}, []string{"reason"}),
		emails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_notification_emails_total",
			Help: "Notification emails notify-user tried to send, by outcome: sent, refused (the mail server refused the recipient for good: recorded, never retried), failed (retried) or unanswered (the mail server had the whole message but never answered: it may have gone out, recorded sent, never retried).",
		}, []string{"outcome"}),
	}
	m.cacheErrors.WithLabelValues(CacheAuth)
	m.cacheErrors.WithLabelValues(CacheUnavailable)
	for _, o := range []string{EmailSent, EmailRefused, EmailFailed, EmailUnanswered} {
		m.emails.WithLabelValues(o)
	}
	reg.MustRegister(m.orders, m.declines, m.conflicts, m.stepDuration, m.stepFailures, m.compensations, m.recoveryRuns, m.recoveredTotal, m.sweeps,
		m.cacheErrors, m.emails)
	return m
}

// CacheError counts one failed product cache call by reason (CacheAuth or
// CacheUnavailable).
func (m *Shop) CacheError(reason string) {
	if m != nil {
		m.cacheErrors.WithLabelValues(reason).Inc()
	}
}

// NotificationEmail counts one notification email by outcome (EmailSent,
// EmailRefused, EmailFailed or EmailUnanswered).
func (m *Shop) NotificationEmail(outcome string) {
	if m != nil {
		m.emails.WithLabelValues(outcome).Inc()
	}
}

// Order counts one checkout answered with outcome.
func (m *Shop) Order(outcome string) {
	if m != nil {
		m.orders.WithLabelValues(outcome).Inc()
	}
}

// Step records one attempt of a saga step: its duration, and a failure when
// outcome is refused or error. The caller says what a refusal was: decline,
// a refused charge (a payment decline); conflict, a reservation refused for
// want of stock (out_of_stock, a reservation conflict). Neither is counted
// unless outcome is refused.
func (m *Shop) Step(step, outcome string, seconds float64, decline, conflict bool) {
	if m == nil {
		return
	}
	m.stepDuration.WithLabelValues(step, outcome).Observe(seconds)
	if outcome == "ok" {
		return
	}
	m.stepFailures.WithLabelValues(step, outcome).Inc()
	if outcome == "refused" && decline {
		m.declines.Inc()
	}
	if outcome == "refused" && conflict {
		m.conflicts.Inc()
	}
}

// Compensation counts a compensation left owed (settled false) or settled.
func (m *Shop) Compensation(settled bool) {
	if m == nil {
		return
	}
	// Both series exist from the first compensation on, so "owed" reads 0
	// (not "no data") in a shop that owes nothing.
	owed, done := m.compensations.WithLabelValues("owed"), m.compensations.WithLabelValues("settled")
	if settled {
		done.Inc()
	} else {
		owed.Inc()
	}
}

// Recovered is what a recover-orders run drove, by how (saga.Report);
// TakenOver counts the orders whose claim another run took over while this
// one drove them, Errors the orders it claimed but could not drive.
type Recovered struct {
	Confirmed, Failed, Pending, Expired, CartRemovals, Compensations, TakenOver, Errors int
}

// Recovery counts a recover-orders run (failed: it returned an error, or
// could not drive an order it claimed) and the orders it drove, by how.
func (m *Shop) Recovery(failed bool, r Recovered) {
	if m == nil {
		return
	}
	// Both results exist from the first run on, so "error" reads 0 (not "no
	// data") while runs succeed.
	ok, bad := m.recoveryRuns.WithLabelValues("ok"), m.recoveryRuns.WithLabelValues("error")
	if failed {
		bad.Inc()
	} else {
		ok.Inc()
	}
	for result, n := range map[string]int{"confirmed": r.Confirmed, "failed": r.Failed, "still_pending": r.Pending,
		"expired": r.Expired, "cart_removal": r.CartRemovals, "compensation": r.Compensations, "taken_over": r.TakenOver,
		"error": r.Errors} {
		m.recoveredTotal.WithLabelValues(result).Add(float64(n))
	}
}

// Sweep counts an expire-reservations run (failed: it returned an error).
// The alert ReservationSweepStalled watches the ok series: a run refused
// before it starts, or a function that cannot build, records nothing.
func (m *Shop) Sweep(failed bool) {
	if m == nil {
		return
	}
	// Both results exist from the first run on, as for Recovery.
	ok, bad := m.sweeps.WithLabelValues("ok"), m.sweeps.WithLabelValues("error")
	if failed {
		bad.Inc()
	} else {
		ok.Inc()
	}
}

type shopKey struct{}

// WithShop returns ctx carrying m; fnserve puts its process's set into every
// request, and it survives context.WithoutCancel (the saga's detached runs).
func WithShop(ctx context.Context, m *Shop) context.Context {
	return context.WithValue(ctx, shopKey{}, m)
}

// ShopFrom returns the metrics ctx carries, nil (recording nothing) if none.
func ShopFrom(ctx context.Context) *Shop {
	m, _ := ctx.Value(shopKey{}).(*Shop)
	return m
}
