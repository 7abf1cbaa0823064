// Package orderstest serves the internal checkout contracts (reserve-stock,
// commit-stock, release-stock, charge-payment, refund-payment, as written in
// the checkout contract shared with the inventory and payments services) over
// real HTTP behind a fake gateway, for tests of the orders saga. It keeps its
// state in memory, follows the contract's idempotency rules (every call is
// idempotent by order id) and counts what matters: processor charges,
// refunds and restocks. Hooks inject slowness and failures.
package orderstest

import (
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shopfaas/shop/internal/auth/authtest"
	"github.com/shopfaas/shop/internal/fault"
	"github.com/shopfaas/shop/internal/fnhttp"
	"github.com/shopfaas/shop/internal/orders"
)

// Token is the internal credential of create-order: the functions of the
// server admit it as their real counterparts do (routes.Callers).
var Token = authtest.Credential("create-order")

// Counts are what the services did, for assertions.
type Counts struct {
	Charges  int // processor charges (captures and declines)
	Captures int
	Refunds  int // captured payments refunded
	Releases int // holds released or committed stock restocked
	Commits  int
	Calls    map[string]int // calls per function, including repeats
}

type reservation struct {
	lines  map[uuid.UUID]int
	status string // held, committed, released, expired, restocked, void
}

type payment struct {
	status string // captured, declined, refunded
	amount orders.Money
	// voided is a key refund-payment voided before any charge landed: the
	// processor holds a decline under it, payments holds no row yet (the
	// refund answers none); the first charge after it records the decline.
	voided bool
}

// Hook may delay or fail a call before it takes effect (fail > 0 answers that
// status with nothing changed) or after (failAfter > 0: the effect happened
// but the answer is lost). The answer's code is processor_unavailable, but a
// 422 of charge-payment is invalid_payment_token, as a processor that refuses
// the token (one that took it as single-use on an earlier try, say) answers.
type Hook func(fn string, orderID uuid.UUID) (delay time.Duration, fail, failAfter int)

// Server is a fake gateway in front of the internal checkout functions.
type Server struct {
	// URL is the gateway URL.
	URL string

	mu      sync.Mutex
	stock   map[uuid.UUID][2]int // on_hand, reserved
	res     map[uuid.UUID]*reservation
	pay     map[uuid.UUID]*payment
	counts  Counts
	hook    Hook
	missing map[string]bool
	serving int // calls received and not answered yet
}

// New starts a server closed at the end of the test.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{stock: map[uuid.UUID][2]int{}, res: map[uuid.UUID]*reservation{}, pay: map[uuid.UUID]*payment{},
		counts: Counts{Calls: map[string]int{}}, missing: map[string]bool{}}
	mux := http.NewServeMux()
	for name, h := range map[string]func(*http.Request, uuid.UUID, []byte) (any, error){
		"reserve-stock": s.reserve, "commit-stock": s.commit, "release-stock": s.release,
		"charge-payment": s.charge, "refund-payment": s.refund,
	} {
		mux.Handle("POST /function/"+name, s.serve(name, h))
	}
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// SetHook installs h (nil removes it).
func (s *Server) SetHook(h Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

// SetMissing makes the gateway answer calls of fn as the OpenFaaS gateway
// answers a function that is not deployed (faasd deletes and recreates a
// function to update it): 404 with a plain-text body, nothing done. false
// deploys it again.
func (s *Server) SetMissing(fn string, missing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missing[fn] = missing
}

// SetStock sets a product's on-hand level (reserved units are kept).
func (s *Server) SetStock(product uuid.UUID, onHand int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stock[product]
	st[0] = onHand
	s.stock[product] = st
}

// Stock returns a product's on-hand and reserved units.
func (s *Server) Stock(product uuid.UUID) (onHand, reserved int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stock[product][0], s.stock[product][1]
}

// Expire gives an order's hold back as expire-reservations does past its
// expiry, for an order the orders service does not know: status "expired",
// the one given-back hold commit-stock takes again (a released one is final).
func (s *Server) Expire(orderID uuid.UUID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.res[orderID]; r != nil && r.status == "held" {
		for p, q := range r.lines {
			st := s.stock[p]
			st[1] -= q
			s.stock[p] = st
		}
		r.status = "expired"
	}
}

// Counts returns a copy of the counters.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	c.Calls = map[string]int{}
	for k, v := range s.counts.Calls {
		c.Calls[k] = v
	}
	return c
}

// Idle waits until every call the server received has been answered, also
// one whose client gave up waiting (its effect happens when its hook lets
// it); the test fails after 5 s.
func (s *Server) Idle(tb testing.TB) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		n := s.serving
		s.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d calls still being served after 5 s", n)
		}
	}
}

// Payment returns the stored payment status of an order ("" when none).
func (s *Server) Payment(orderID uuid.UUID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pay[orderID]; p != nil {
		return p.status
	}
	return ""
}

// Charged returns the amount charge-payment was first asked to charge for
// an order (the zero Money when it was never asked).
func (s *Server) Charged(orderID uuid.UUID) orders.Money {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pay[orderID]; p != nil {
		return p.amount
	}
	return orders.Money{}
}

// Held returns the lines of an order's reservation, product → units (nil
// when reserve-stock never held any for it).
func (s *Server) Held(orderID uuid.UUID) map[uuid.UUID]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.res[orderID]; r != nil {
		return maps.Clone(r.lines)
	}
	return nil
}

// Reservation returns the reservation status of an order ("" when none).
func (s *Server) Reservation(orderID uuid.UUID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.res[orderID]; r != nil {
		return r.status
	}
	return ""
}

func (s *Server) serve(name string, h func(*http.Request, uuid.UUID, []byte) (any, error)) http.Handler {
	return fnhttp.Adapt(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
		if err := fnhttp.CheckInternal(r, authtest.Verifier(), name); err != nil {
			return err
		}
		var probe struct {
			OrderID uuid.UUID `json:"order_id"`
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, fnhttp.MaxBody))
		if err != nil {
			return fault.E(fault.Malformed, fault.CodeInvalidJSON, "unreadable body")
		}
		if err := json.Unmarshal(body, &probe); err != nil || probe.OrderID == uuid.Nil {
			return fault.E(fault.Invalid, fault.CodeInvalidRequest, "order_id is required")
		}
		s.mu.Lock()
		missing := s.missing[name]
		if !missing {
			s.counts.Calls[name]++
		}
		hook := s.hook
		s.serving++
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.serving--
			s.mu.Unlock()
		}()
		if missing {
			http.Error(w, "function "+strconv.Quote(name)+" not found", http.StatusNotFound)
			return nil
		}
		var failAfter int
		if hook != nil {
			delay, fail, after := hook(name, probe.OrderID)
			if delay > 0 {
				time.Sleep(delay)
			}
			if fail > 0 {
				code := fault.CodeProcessorUnavailable
				if name == "charge-payment" && fail == http.StatusUnprocessableEntity {
					code = fault.CodeInvalidPaymentToken
				}
				return fnhttp.JSON(w, fail, fnhttp.Problem{Type: "about:blank", Status: fail, Code: string(code)})
			}
			failAfter = after
		}
		s.mu.Lock()
		out, err := h(r, probe.OrderID, body)
		s.mu.Unlock()
		if failAfter > 0 {
			return fnhttp.JSON(w, failAfter, fnhttp.Problem{Type: "about:blank", Status: failAfter, Code: string(fault.CodeProcessorUnavailable)})
		}
		if err != nil {
			return err
		}
		return fnhttp.JSON(w, http.StatusOK, out)
	})
}

type status struct {
	OrderID uuid.UUID `json:"order_id"`
	Status  string    `json:"status"`
}

func (s *Server) reserve(r *http.Request, orderID uuid.UUID, body []byte) (any, error) {
	var in struct {
		OrderID    uuid.UUID `json:"order_id"`
		TTLSeconds int       `json:"ttl_seconds"`
		Lines      []struct {
			ProductID uuid.UUID `json:"product_id"`
			Quantity  int       `json:"quantity"`
		} `json:"lines"`
	}
	if err := fnhttp.DecodeBytes(body, &in); err != nil {
		return nil, err
	}
	if cur := s.res[orderID]; cur != nil {
		switch cur.status {
		case "held", "committed":
			return status{orderID, cur.status}, nil
		default:
			return nil, fault.E(fault.Conflict, fault.CodeReservationReleased, "the reservation was released")
		}
	}
	if len(in.Lines) == 0 {
		return nil, fault.E(fault.Invalid, fault.CodeInvalidRequest, "lines must not be empty")
	}
	lines := map[uuid.UUID]int{}
	for _, l := range in.Lines {
		if l.Quantity < 1 || l.Quantity > 1000 || lines[l.ProductID] != 0 {
			return nil, fault.E(fault.Invalid, fault.CodeInvalidRequest, "bad line")
		}
		lines[l.ProductID] = l.Quantity
	}
	for p, q := range lines {
		if st := s.stock[p]; st[0]-st[1] < q {
			return nil, fault.E(fault.Conflict, fault.CodeOutOfStock, "not enough stock of product "+p.String())
		}
	}
	for p, q := range lines {
		st := s.stock[p]
		st[1] += q
		s.stock[p] = st
	}
	s.res[orderID] = &reservation{lines: lines, status: "held"}
	return status{orderID, "held"}, nil
}

func (s *Server) commit(_ *http.Request, orderID uuid.UUID, _ []byte) (any, error) {
	r := s.res[orderID]
	if r == nil || r.status == "void" {
		// As fnhttp.OrderCall answers it: naming the order.
		nf := fault.E(fault.NotFound, fault.CodeNotFound, "no reservation for this order")
		nf.Members = map[string]any{"order_id": orderID}
		return nil, nf
	}
	switch r.status {
	case "committed":
		return status{orderID, "committed"}, nil
	case "restocked":
		// As inventory's Hold.CanCommit: a cancelled order never takes its
		// stock again.
		return nil, fault.E(fault.Conflict, fault.CodeReservationReleased, "the order was cancelled and its stock restocked")
	case "released":
		// Nor does a released hold: its order ended.
		return nil, fault.E(fault.Conflict, fault.CodeReservationReleased, "the reservation of this order was released")
	case "expired":
		for p, q := range r.lines {
			if st := s.stock[p]; st[0]-st[1] < q {
				return nil, fault.E(fault.Conflict, fault.CodeOutOfStock, "the hold expired and the stock is gone")
			}
		}
		for p, q := range r.lines {
			st := s.stock[p]
			st[0] -= q
			s.stock[p] = st
		}
	default: // held
		for p, q := range r.lines {
			st := s.stock[p]
			st[0] -= q
			st[1] -= q
			s.stock[p] = st
		}
	}
	r.status = "committed"
	s.counts.Commits++
	return status{orderID, "committed"}, nil
}

func (s *Server) release(_ *http.Request, orderID uuid.UUID, _ []byte) (any, error) {
	r := s.res[orderID]
	if r == nil || r.status == "void" {
		// As inventory's Release: a void reservation refuses a late try.
		s.res[orderID] = &reservation{status: "void"}
		return status{orderID, "none"}, nil
	}
	switch r.status {
	case "held":
		for p, q := range r.lines {
			st := s.stock[p]
			st[1] -= q
			s.stock[p] = st
		}
		r.status = "released"
		s.counts.Releases++
	case "committed":
		for p, q := range r.lines {
			st := s.stock[p]
			st[0] += q
			s.stock[p] = st
		}
		r.status = "restocked"
		s.counts.Releases++
	case "expired":
		// As inventory's Release: the units went back at the expiry; the
		// release makes it final, so a later commit is refused.
		r.status = "released"
	}
	// As release-stock answers (inventorydb.Store.Release): the hold's
	// status after the release, restocked for a committed order, and a
	// repeated release the status the first left.
	return status{orderID, r.status}, nil
}

type paymentView struct {
	ID          uuid.UUID    `json:"id"`
	OrderID     uuid.UUID    `json:"order_id"`
	Status      string       `json:"status"`
	Amount      orders.Money `json:"amount"`
	ProviderRef string       `json:"provider_ref"`
}

func (s *Server) charge(_ *http.Request, orderID uuid.UUID, body []byte) (any, error) {
	var in struct {
		OrderID uuid.UUID    `json:"order_id"`
		UserID  uuid.UUID    `json:"user_id"`
		Amount  orders.Money `json:"amount"`
		Token   string       `json:"token"`
	}
	if err := fnhttp.DecodeBytes(body, &in); err != nil {
		return nil, err
	}
	if in.UserID == uuid.Nil || in.Amount.Amount < 0 || in.Token == "" {
		return nil, fault.E(fault.Invalid, fault.CodeInvalidRequest, "bad charge")
	}
	p := s.pay[orderID]
	if p == nil && in.Token != "tok_visa" && in.Token != "tok_mastercard" && !strings.HasPrefix(in.Token, "tok_chargeDeclined") {
		return nil, fault.E(fault.Invalid, fault.CodeInvalidPaymentToken, "the processor does not accept this token")
	}
	if p == nil {
		p = &payment{status: "captured", amount: in.Amount}
		if strings.HasPrefix(in.Token, "tok_chargeDeclined") {
			p.status = "declined"
		}
		s.pay[orderID] = p
		s.counts.Charges++
		if p.status == "captured" {
			s.counts.Captures++
		}
	}
	if p.voided {
		// The charge lands after a refund voided its key: payments records
		// the processor's decline (payments.VoidedCode).
		p.voided = false
	}
	if p.status == "declined" {
		return nil, fault.E(fault.PaymentRequired, fault.CodePaymentDeclined, "the card was declined")
	}
	if p.status == "refunded" {
		// As payments.Service.Charge: the processor answers the key's
		// charge refunded since, which can never capture again.
		return nil, fault.E(fault.PaymentRequired, fault.CodePaymentDeclined,
			"the order's charge was refunded at the payment processor; it cannot be charged again")
	}
	return paymentView{orderID, orderID, p.status, p.amount, "ch_" + orderID.String()[:8]}, nil
}

// refund follows payments.Service.Refund: an order without a payment has
// its charge key voided (a decline stored at the processor), so a charge
// still in flight, or any later one, is declined and never captures; the
// answer is none until such a charge records the decline.
func (s *Server) refund(_ *http.Request, orderID uuid.UUID, _ []byte) (any, error) {
	p := s.pay[orderID]
	if p == nil {
		s.pay[orderID] = &payment{status: "declined", voided: true}
		return paymentView{OrderID: orderID, Status: "none"}, nil
	}
	if p.voided {
		return paymentView{OrderID: orderID, Status: "none"}, nil
	}
	if p.status == "captured" {
		p.status = "refunded"
		s.counts.Refunds++
	}
	return paymentView{orderID, orderID, p.status, p.amount, "ch_" + orderID.String()[:8]}, nil
}
