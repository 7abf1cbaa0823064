package connector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/proctest"
)

const rabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// call is one invocation the test gateway received.
type call struct {
	at      time.Time
	id      string
	headers http.Header
	body    string
}

// gateway is the test stand-in for the OpenFaaS gateway: the functions list
// with `topic` annotations, and /function/<name> answering with status(n)
// for the n-th call (1-based) of an event id.
type gateway struct {
	mu     sync.Mutex
	topics map[string]string // function → annotation ("" = none)
	status map[string]func(n int) int
	calls  map[string][]call
	lists  int
	// conns are the client addresses invocations came from: one per
	// connection the connector opened to invoke.
	conns map[string]bool
	// hold, when set for a function, keeps its calls' answers back until
	// it is closed; cut counts the calls whose request the connector
	// cancelled meanwhile.
	hold map[string]chan struct{}
	cut  map[string]int
	// bodies, when set for a function, is the Content-Type and body of
	// its answers.
	bodies map[string][2]string
	// location, when set for a function, is the Location header of its
	// answers (a redirect).
	location map[string]string
	srv      *httptest.Server
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{topics: map[string]string{}, status: map[string]func(int) int{}, calls: map[string][]call{}, conns: map[string]bool{},
		hold: map[string]chan struct{}{}, cut: map[string]int{}, bodies: map[string][2]string{}, location: map[string]string{}}
	mux := http.NewServeMux()
	// The gateway API requires basic auth, as faasd's does.
	authorized := func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); !ok || u != "gw-admin" || p != "gw-password" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /system/namespaces", func(w http.ResponseWriter, r *http.Request) {
		if authorized(w, r) {
			_ = json.NewEncoder(w).Encode([]string{"openfaas-fn"})
		}
	})
	mux.HandleFunc("GET /system/functions", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		g.lists++
		type fn struct {
			Name        string             `json:"name"`
			Namespace   string             `json:"namespace"`
			Annotations *map[string]string `json:"annotations,omitempty"`
		}
		var out []fn
		for name, topic := range g.topics {
			a := map[string]string{"com.openfaas.scale.min": "1"}
			if topic != "" {
				a["topic"] = topic
			}
			out = append(out, fn{Name: name, Namespace: "openfaas-fn", Annotations: &a})
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("POST /function/{name}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		name := r.PathValue("name")
		id := r.Header.Get("Ce-Id")
		g.mu.Lock()
		g.calls[name] = append(g.calls[name], call{at: time.Now(), id: id, headers: r.Header.Clone(), body: string(body)})
		g.conns[r.RemoteAddr] = true
		n := 0
		for _, c := range g.calls[name] {
			if c.id == id {
				n++
			}
		}
		st, hold, answer, location := g.status[name], g.hold[name], g.bodies[name], g.location[name]
		g.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				g.mu.Lock()
				g.cut[name]++
				g.mu.Unlock()
				return
			}
		}
		code := http.StatusOK
		if st != nil {
			code = st(n)
		}
		if answer[0] != "" {
			w.Header().Set("Content-Type", answer[0])
		}
		if location != "" {
			w.Header().Set("Location", location)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, answer[1])
	})
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) set(fn, topic string, status func(int) int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.topics[fn] = topic
	g.status[fn] = status
}

// setAnswer is set for fn with every answer status, of contentType, with
// body.
func (g *gateway) setAnswer(fn, topic string, status int, contentType, body string) {
	g.set(fn, topic, func(int) int { return status })
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bodies[fn] = [2]string{contentType, body}
}

// setHeld is set for fn with its answers held back until the returned
// channel is closed.
func (g *gateway) setHeld(fn, topic string) chan struct{} {
	release := make(chan struct{})
	g.mu.Lock()
	defer g.mu.Unlock()
	g.topics[fn] = topic
	g.status[fn] = nil
	g.hold[fn] = release
	return release
}

// setRedirect is set for fn with every answer status (a 3xx) naming
// location.
func (g *gateway) setRedirect(fn, topic string, status int, location string) {
	g.set(fn, topic, func(int) int { return status })
	g.mu.Lock()
	defer g.mu.Unlock()
	g.location[fn] = location
}

func (g *gateway) remove(fn string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.topics, fn)
}

func (g *gateway) callsOf(fn string) []call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]call(nil), g.calls[fn]...)
}

// synced waits until the connector fetched the function list twice more,
// so a change made before the call has been applied.
func (g *gateway) synced(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	start := g.lists
	g.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		n := g.lists
		g.mu.Unlock()
		if n >= start+2 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("connector did not refresh the function list")
}

// waitCalls waits until fn received n calls.
func (g *gateway) waitCalls(t *testing.T, fn string, n int, within time.Duration) []call {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c := g.callsOf(fn); len(c) >= n {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s received %d calls within %s, want %d", fn, len(g.callsOf(fn)), within, n)
	return nil
}

type env struct {
	names broker.Names
	conn  *amqp.Connection
	ch    *amqp.Channel
	gw    *gateway
	cfg   Config
}

// setup connects to the real RabbitMQ with a unique name prefix and deletes
// every object the test's functions could have created when it ends.
//
// A test on setup shares nothing with another one (its exchanges and queues
// carry its own prefix, its gateway and connector are its own), so most of
// them run in parallel (t.Parallel): they spend their time waiting for
// deliveries, retry delays and refreshes, not computing. Those that stay
// sequential change process-wide state (TestAFailedDeliveryIsLoggedWithItsTraceID:
// OpenTelemetry's propagator; TestADeliveryWithoutATraceparentHeaderContinuesTheEnvelopesTrace:
// its propagator and tracer provider) or hold the connector to a tight upper bound
// on time (TestHeldDeliveriesOfAGoneFunctionGoBackAtOnce: within a second;
// TestAnUnansweredDeclarationIsGivenUpAfterInvokeTimeout: within
// InvokeTimeout and a margin), which a neighbour's load should not eat. The
// tests on a private node (privateNode) stay sequential too: each starts an
// Erlang node of its own.
func setup(t *testing.T, functions ...string) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs RabbitMQ; -short was asked for")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	names := broker.Names{Prefix: "test-" + hex.EncodeToString(b) + "."}
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatalf("RabbitMQ is required for this test (%s): %v", rabbitURL, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.DeclareExchange(ch, names); err != nil {
		t.Fatal(err)
	}
	e := &env{names: names, conn: conn, ch: ch, gw: newGateway(t)}
	e.cfg = Config{
		GatewayURL: e.gw.srv.URL, BrokerURL: rabbitURL, Names: names, MaxAttempts: 5,
		RetryDelay: 100 * time.Millisecond, Prefetch: 4, RefreshInterval: 100 * time.Millisecond,
		InvokeTimeout: 2 * time.Second, MaxBackoff: 300 * time.Millisecond,
		InternalToken: "test-internal-token", GatewayUser: "gw-admin", GatewayPassword: "gw-password",
	}
	t.Cleanup(func() {
		c, err := conn.Channel()
		if err == nil {
			for _, fn := range functions {
				_, _ = c.QueueDelete(names.Queue(fn), false, false, false)
				_, _ = c.QueueDelete(names.DLQ(fn), false, false, false)
				for _, d := range e.cfg.Delays() {
					_, _ = c.QueueDelete(names.Retry(fn, d), false, false, false)
				}
			}
			_, _ = c.QueueDelete(names.Unrouted(), false, false, false)
			_ = c.ExchangeDelete(names.Exchange(), false, false)
			_ = c.ExchangeDelete(names.Unrouted(), false, false)
		}
		_ = conn.Close()
	})
	return e
}

func (e *env) start(t *testing.T) *prometheus.Registry {
	t.Helper()
	return e.startLogging(t, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startLogging runs a connector logging to log until the test ends.
func (e *env) startLogging(t *testing.T, log *slog.Logger) *prometheus.Registry {
	t.Helper()
	return runConnector(t, e.cfg, log)
}

// runConnector runs a connector with cfg, logging to log, until the test
// ends, and returns the registry of its metrics.
func runConnector(t *testing.T, cfg Config, log *slog.Logger) *prometheus.Registry {
	t.Helper()
	reg, _ := startConnector(t, cfg, log)
	return reg
}

// startConnector runs a connector until stop (cancel its context and wait
// for it) or the test's end, whichever comes first; each of adjust changes
// the connector before it runs (a test's clock).
func startConnector(t *testing.T, cfg Config, log *slog.Logger, adjust ...func(*Connector)) (reg *prometheus.Registry, stop func()) {
	t.Helper()
	reg = prometheus.NewRegistry()
	c, err := New(cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range adjust {
		a(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	stop = func() {
		cancel()
		// A connector that does not stop fails the test with a message
		// before go test's -timeout panics the test binary, leaving the
		// cleanups after this one (a private node's, proctest.CloseAtEnd:
		// a kill once the test has failed) stopWait.
		wait := proctest.BeforeDeadline(t, 10*time.Minute, stopWait)
		select {
		case <-done:
		case <-time.After(wait):
			t.Errorf("the connector had not stopped %s after its context was cancelled; "+
				"no longer waited for, go test's -timeout being near", wait.Round(time.Second))
		}
	}
	t.Cleanup(stop)
	return reg, stop
}

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// publish sends an event the way the outbox relay does.
func (e *env) publish(t *testing.T, topic string) string {
	t.Helper()
	return e.publishWith(t, topic, nil)
}

// publishWith is publish with more headers (they may replace its own), as a
// publisher other than the relay could send.
func (e *env) publishWith(t *testing.T, topic string, more amqp.Table) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := "evt-" + hex.EncodeToString(b)
	body := `{"specversion":"1.0","id":"` + id + `","source":"test","type":"` + topic + `","data":{}}`
	headers := amqp.Table{"traceparent": traceparent, "shop-signature": "ed25519=sig-of-" + id}
	maps.Copy(headers, more)
	err := e.ch.PublishWithContext(context.Background(), e.names.Exchange(), topic, false, false, amqp.Publishing{
		Headers: headers, ContentType: broker.ContentType,
		DeliveryMode: amqp.Persistent, MessageId: id, Type: topic, Body: []byte(body),
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *env) queueLen(t *testing.T, q string) int {
	t.Helper()
	n, err := e.tryQueueLen(q)
	if err != nil {
		t.Fatalf("inspect %s: %v", q, err)
	}
	return n
}

func ids(cs []call) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out
}

func TestEachMessageOnceWithHeaders(t *testing.T) {
	t.Parallel()
	e := setup(t, "ok")
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("ok", topic, nil)
	e.start(t)
	e.gw.synced(t)
	want := []string{e.publish(t, topic), e.publish(t, topic), e.publish(t, topic)}
	e.gw.waitCalls(t, "ok", 3, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	got := e.gw.callsOf("ok")
	gotIDs := ids(got)
	if diff := cmp.Diff(want, gotIDs, cmpSorted); diff != "" {
		t.Errorf("invocations (-want +got):\n%s", diff)
	}
	h := got[0].headers
	if h.Get("traceparent") != traceparent || h.Get("X-Topic") != topic || h.Get("X-Event-Id") != got[0].id ||
		h.Get("Content-Type") != broker.ContentType || h.Get("X-Internal-Token") != "test-internal-token" ||
		h.Get("Shop-Signature") != "ed25519=sig-of-"+got[0].id {
		t.Errorf("invocation headers: %v", h)
	}
	if !strings.Contains(got[0].body, `"id":"`+got[0].id+`"`) {
		t.Errorf("body is not the envelope: %s", got[0].body)
	}
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// A function failing three times gets the message four times, with growing
// delays, while another subscriber of the same topic gets it exactly once.
//
// The delays are written out, not read from the code under test: setup's
// RetryDelay (100 ms) doubled after each failure, MaxAttempts 5 giving 4 of
// them, none reaching MaxRetryDelay (default 5 min; MaxBackoff is the broker
// reconnect's cap, not the retries'). Each gap between two calls must be at
// least its delay (less 10% for the clocks); that the delays grow is in the
// list, so consecutive wall-clock gaps are not compared with each other.
func TestRetriesWithGrowingDelayIsolatedPerFunction(t *testing.T) {
	t.Parallel()
	e := setup(t, "flaky", "steady")
	topic := e.names.Prefix + "stock.changed.v1"
	e.gw.set("flaky", topic, func(n int) int {
		if n <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	e.gw.set("steady", "other.topic,"+topic, nil)
	e.start(t)
	e.gw.synced(t)
	id := e.publish(t, topic)
	e.gw.waitCalls(t, "flaky", 4, 15*time.Second)
	time.Sleep(1 * time.Second)
	got := e.gw.callsOf("flaky")
	if len(got) != 4 {
		t.Fatalf("flaky got %d calls, want 4", len(got))
	}
	delays := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	if got := e.cfg.Delays(); !slices.Equal(got, delays) {
		t.Errorf("Delays() = %v, want %v", got, delays)
	}
	var gaps []time.Duration
	for i := 1; i < len(got); i++ {
		gaps = append(gaps, got[i].at.Sub(got[i-1].at))
		if got[i].id != id || got[i].headers.Get("X-Topic") != topic {
			t.Errorf("retry %d: id %q topic %q", i, got[i].id, got[i].headers.Get("X-Topic"))
		}
	}
	for i, g := range gaps {
		if g < delays[i]*9/10 {
			t.Errorf("gap %d = %s, want at least %s (gaps %v)", i+1, g, delays[i], gaps)
		}
	}
	if s := e.gw.callsOf("steady"); len(s) != 1 || s[0].id != id {
		t.Errorf("steady got %v, want exactly one call for %s", ids(s), id)
	}
	if n := e.queueLen(t, e.names.DLQ("flaky")); n != 0 {
		t.Errorf("%d dead letters for a function that recovered", n)
	}
}

// The attempts header is read from the message, which anyone who may publish
// to the exchange writes: a negative count is read as none, one above
// MaxAttempts as MaxAttempts (dead-lettered at its failure). Until 2026-12-06
// a negative count indexed the retry delays with -1 on the first failure,
// and the largest int overflowed to the smallest, and either panicked the
// connector, every function's subscription with it, again at each
// redelivery of the unacknowledged message.
func TestAnAttemptsHeaderOutOfRangeIsClamped(t *testing.T) {
	t.Parallel()
	e := setup(t, "flaky")
	topic := e.names.Prefix + "stock.changed.v1"
	e.gw.set("flaky", topic, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	e.start(t)
	e.gw.synced(t)
	for _, attempts := range []any{int32(-1), "-3", int64(-1 << 40)} {
		e.publishWith(t, topic, amqp.Table{broker.HeaderAttempts: attempts})
	}
	huge := e.publishWith(t, topic, amqp.Table{broker.HeaderAttempts: int64(math.MaxInt64)})
	// Each message with a negative count fails once and is retried once, as
	// a message without the header is: six calls, each with the attempt its
	// count says. The huge one fails its one call (attempt MaxAttempts+1)
	// and is dead-lettered.
	calls := e.gw.waitCalls(t, "flaky", 7, 15*time.Second)
	var attempts []string
	for _, c := range calls {
		if c.id == huge {
			if got, want := c.headers.Get("X-Attempt"), fmt.Sprint(e.cfg.MaxAttempts+1); got != want {
				t.Errorf("the huge count's call has X-Attempt %s, want %s", got, want)
			}
			continue
		}
		attempts = append(attempts, c.headers.Get("X-Attempt"))
	}
	slices.Sort(attempts)
	if want := []string{"1", "1", "1", "2", "2", "2"}; !slices.Equal(attempts, want) {
		t.Errorf("X-Attempt of the calls = %v, want %v", attempts, want)
	}
	waitLen(t, e, e.names.DLQ("flaky"), 1)
}

// A function that always fails gets MaxAttempts calls; the message then sits
// in its DLQ with the reason, and the dead-letter tool replays it.
func TestDeadLetterAfterMaxAttemptsAndReplay(t *testing.T) {
	t.Parallel()
	e := setup(t, "broken")
	e.cfg.MaxAttempts = 3
	topic := e.names.Prefix + "user.registered.v1"
	var mu sync.Mutex
	healthy := false
	e.gw.set("broken", topic, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if healthy {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	reg := e.start(t)
	e.gw.synced(t)
	id := e.publish(t, topic)
	e.gw.waitCalls(t, "broken", 3, 10*time.Second)
	waitLen(t, e, e.names.DLQ("broken"), 1)
	time.Sleep(500 * time.Millisecond) // a fourth call, were one made, would come now
	if n := len(e.gw.callsOf("broken")); n != 3 {
		t.Errorf("%d calls, want MaxAttempts = 3", n)
	}
	dls, err := broker.PeekDeadLetters(e.conn, e.names, "broken", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	if dl.ID != id || dl.Attempts != 3 || dl.LastStatus != 503 || dl.Topic != topic || dl.FailedAt == "" {
		t.Errorf("dead letter: %+v", dl)
	}
	// Peeking leaves it there (a quorum queue takes the message back
	// asynchronously after the peek's channel closed).
	waitLen(t, e, e.names.DLQ("broken"), 1)
	// A refresh updates the gauge (awaited, not slept on: the test runs
	// beside others, whose load may delay it).
	waitDeadLetterGauge(t, reg, "broken", 1, true)

	mu.Lock()
	healthy = true
	mu.Unlock()
	n, err := broker.ReplayDeadLetters(context.Background(), e.conn, e.names, "broken", id)
	if err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	calls := e.gw.waitCalls(t, "broken", 4, 10*time.Second)
	if last := calls[3]; last.id != id || last.headers.Get("X-Topic") != topic || last.headers.Get("X-Attempt") != "1" {
		t.Errorf("replayed call: id %q topic %q attempt %q", last.id, last.headers.Get("X-Topic"), last.headers.Get("X-Attempt"))
	}
	if n, err := broker.CountDeadLetters(e.conn, e.names, "broken"); err != nil || n != 0 {
		t.Errorf("after replay: %d dead letters (%v), want 0", n, err)
	}
}

// Replaying into a function queue that does not exist (deleted while the
// function was gone) keeps the message in the dead-letter queue: RabbitMQ
// would confirm a non-mandatory copy it cannot route, and the replay would
// then have removed the only copy.
func TestReplayIntoAMissingQueueKeepsTheDeadLetter(t *testing.T) {
	t.Parallel()
	e := setup(t, "gone")
	dlq := e.names.DLQ("gone")
	if _, err := e.ch.QueueDeclare(dlq, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ch.PublishWithContext(context.Background(), "", dlq, false, false, amqp.Publishing{
		MessageId: "evt-1", DeliveryMode: amqp.Persistent, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitLen(t, e, dlq, 1)
	n, err := broker.ReplayDeadLetters(context.Background(), e.conn, e.names, "gone", "")
	if err == nil || n != 0 {
		t.Errorf("replay into a missing queue: %d replayed, err %v; want 0 and an error", n, err)
	}
	waitLen(t, e, dlq, 1)
}

// A function that calls the event itself invalid (400, 413, 415, 422) is not
// retried: the message goes to its dead-letter queue after the first call.
func TestInvalidEventDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, "strict")
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("strict", topic, func(int) int { return http.StatusUnprocessableEntity })
	e.start(t)
	e.gw.synced(t)
	id := e.publish(t, topic)
	waitLen(t, e, e.names.DLQ("strict"), 1)
	time.Sleep(1500 * time.Millisecond) // a retry, if one were scheduled, would arrive now
	if n := len(e.gw.callsOf("strict")); n != 1 {
		t.Errorf("%d calls for an invalid event, want 1", n)
	}
	dls, err := broker.PeekDeadLetters(e.conn, e.names, "strict", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].ID != id || dls[0].LastStatus != http.StatusUnprocessableEntity || dls[0].Attempts != 1 {
		t.Errorf("dead letters: %+v", dls)
	}
}

// A dead letter's shop-last-error names the code of the problem its function
// answered ("function answered 422 event_expired"), so on-call sees which
// refusal it was in `deadletters list`/`inspect`; an answer that is not a
// problem, or whose code does not have the shop's syntax, is named by its
// status alone, and no other byte of the body reaches the header. Until
// 2026-12-06 every dead letter said only "function answered <status>".
func TestADeadLetterNamesTheCodeOfTheProblemItsFunctionAnswered(t *testing.T) {
	cases := []struct {
		fn          string
		status      int
		contentType string
		body        string
		want        string
	}{
		{"expired", http.StatusUnprocessableEntity, "application/problem+json",
			`{"type":"about:blank","title":"Unprocessable Entity","status":422,"code":"event_expired","detail":"the event is older than the inbox retention"}`,
			"function answered 422 event_expired"},
		{"declined", http.StatusPaymentRequired, "application/problem+json; charset=utf-8",
			`{"type":"about:blank","title":"Payment Required","status":402,"code":"payment_declined"}`,
			"function answered 402 payment_declined"},
		// Not the shop's code syntax: a body's text, a control
		// character, an upper-case letter, a code past 64 bytes.
		{"prose", http.StatusUnprocessableEntity, "application/problem+json",
			`{"status":422,"code":"event expired: see https://example.test"}`, "function answered 422"},
		{"control", http.StatusBadRequest, "application/problem+json",
			`{"status":400,"code":"invalid_event\nshop-function: other"}`, "function answered 400"},
		{"upper", http.StatusConflict, "application/problem+json", `{"status":409,"code":"Not_Cancellable"}`, "function answered 409"},
		{"long", http.StatusUnprocessableEntity, "application/problem+json",
			`{"status":422,"code":"` + strings.Repeat("a", 65) + `"}`, "function answered 422"},
		// Not a problem: a code in another JSON body, a body that is not
		// JSON, no body.
		{"plain", http.StatusUnprocessableEntity, "application/json", `{"code":"event_expired"}`, "function answered 422"},
		{"text", http.StatusBadRequest, "text/plain", "event_expired", "function answered 400"},
		{"broken", http.StatusUnprocessableEntity, "application/problem+json", `{"code":"event_expired"`, "function answered 422"},
		{"empty", http.StatusUnprocessableEntity, "", "", "function answered 422"},
	}
	fns := make([]string, len(cases))
	for i, c := range cases {
		fns[i] = c.fn
	}
	t.Parallel()
	e := setup(t, fns...)
	topic := e.names.Prefix + "order.placed.v1"
	for _, c := range cases {
		e.gw.setAnswer(c.fn, topic, c.status, c.contentType, c.body)
	}
	e.start(t)
	e.gw.synced(t)
	id := e.publish(t, topic)
	for _, c := range cases {
		t.Run(c.fn, func(t *testing.T) {
			waitLen(t, e, e.names.DLQ(c.fn), 1)
			dls, err := broker.PeekDeadLetters(e.conn, e.names, c.fn, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(dls) != 1 || dls[0].ID != id {
				t.Fatalf("dead letters: %+v, want the one of %s", dls, id)
			}
			if dl := dls[0]; dl.LastError != c.want || dl.LastStatus != c.status || dl.Attempts != 1 {
				t.Errorf("dead letter: last error %q, status %d, attempts %d; want %q, %d, 1",
					dl.LastError, dl.LastStatus, dl.Attempts, c.want, c.status)
			}
		})
	}
}

// Topic annotations added and removed at the gateway are picked up without a
// restart; an event nobody subscribes to lands in the unrouted queue.
func TestAnnotationChangesAndUnrouted(t *testing.T) {
	t.Parallel()
	e := setup(t, "dyn")
	topic := e.names.Prefix + "product.changed.v1"
	e.gw.set("dyn", "", nil)
	e.cfg.UnbindAfter = 300 * time.Millisecond
	reg := e.start(t)
	e.gw.synced(t)
	e.publish(t, topic)
	waitLen(t, e, e.names.Unrouted(), 1)

	e.gw.set("dyn", topic, nil)
	e.gw.synced(t)
	id := e.publish(t, topic)
	if got := e.gw.waitCalls(t, "dyn", 1, 10*time.Second); got[0].id != id {
		t.Errorf("dyn got %s, want %s", got[0].id, id)
	}

	// Listed without a topic, it is as missing from the list: unbound once
	// UnbindAfter has passed.
	e.gw.set("dyn", "", nil)
	e.gw.synced(t)
	time.Sleep(e.cfg.UnbindAfter)
	e.gw.synced(t)
	e.publish(t, topic)
	waitLen(t, e, e.names.Unrouted(), 2)
	e.gw.synced(t)
	if v := gaugeValue(t, reg, "shop_unrouted_messages"); v != 2 {
		t.Errorf("shop_unrouted_messages = %v, want 2", v)
	}

	// A function that disappears entirely is unsubscribed too, once it has
	// been missing for UnbindAfter (set short here, at the start).
	e.gw.set("dyn", topic, nil)
	e.gw.synced(t)
	e.gw.remove("dyn")
	e.gw.synced(t)
	time.Sleep(e.cfg.UnbindAfter)
	e.gw.synced(t)
	e.publish(t, topic)
	waitLen(t, e, e.names.Unrouted(), 3)
	if n := len(e.gw.callsOf("dyn")); n != 1 {
		t.Errorf("dyn got %d calls, want 1", n)
	}
}

// faasd updates a function by removing it and deploying it again. An event
// published while it is missing from the gateway's list waits in its queue
// and reaches it when it is back. Until 2026-12-03 the queue was unbound at
// once, and such an event went to the other subscribers of its topic only
// (or to shop.unrouted), while the relay had it confirmed and marked
// published.
func TestAFunctionGoneForAnUpdateMissesNoEvent(t *testing.T) {
	t.Parallel()
	e := setup(t, "upd")
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("upd", topic, nil)
	e.start(t)
	e.gw.synced(t)
	e.gw.remove("upd") // faasd's update: removed ...
	e.gw.synced(t)
	e.gw.synced(t)
	id := e.publish(t, topic)
	waitLen(t, e, e.names.Queue("upd"), 1)
	e.gw.set("upd", topic, nil) // ... and deployed again
	if got := e.gw.waitCalls(t, "upd", 1, 10*time.Second); got[0].id != id {
		t.Errorf("upd got %s, want %s", got[0].id, id)
	}
	if n := e.queueLen(t, e.names.Unrouted()); n != 0 {
		t.Errorf("%d events unrouted, want 0", n)
	}
}

// An invocation in flight when its function drops out of the gateway's list
// (faasd's update removes it first) runs to its end and is acked: the
// function is not called again for the event. Until 2026-12-04 the
// connector cancelled it: the request was cut while the function went on,
// the delivery went back to the queue, and the function handled the event
// twice (notify-user sent an email twice).
func TestAnInvocationInFlightWhenItsFunctionGoesIsNotCut(t *testing.T) {
	t.Parallel()
	e := setup(t, "busy")
	topic := e.names.Prefix + "order.placed.v1"
	release := e.gw.setHeld("busy", topic)
	reg := e.start(t)
	e.gw.synced(t)
	id := e.publish(t, topic)
	e.gw.waitCalls(t, "busy", 1, 10*time.Second) // running, its answer held back
	e.gw.remove("busy")
	e.gw.synced(t)
	close(release) // the function answers, well within InvokeTimeout
	e.gw.set("busy", topic, nil)
	e.gw.synced(t)
	e.gw.synced(t)
	waitLen(t, e, e.names.Queue("busy"), 0)
	// Acked, not only taken: the invocation counted ok.
	deadline := time.Now().Add(5 * time.Second)
	for invocations(t, reg, "busy", "ok") != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := invocations(t, reg, "busy", "ok"); n != 1 {
		t.Errorf("%v invocations of busy counted ok, want 1", n)
	}
	e.gw.mu.Lock()
	cut := e.gw.cut["busy"]
	e.gw.mu.Unlock()
	calls := e.gw.callsOf("busy")
	if cut != 0 || len(calls) != 1 || calls[0].id != id {
		t.Errorf("%d calls %v, %d cut; want the one call, answered, not cut", len(calls), ids(calls), cut)
	}
	for _, q := range []string{e.names.DLQ("busy"), e.names.Unrouted()} {
		if n := e.queueLen(t, q); n != 0 {
			t.Errorf("%d messages in %s, want 0", n, q)
		}
	}
}

// The deliveries the connector holds but has not invoked when their function
// drops out of the list go back to the queue at once, though every worker
// is busy with an invocation still running: they do not wait for it.
func TestHeldDeliveriesOfAGoneFunctionGoBackAtOnce(t *testing.T) {
	e := setup(t, "slow")
	e.cfg.Concurrency, e.cfg.Prefetch = 1, 4
	topic := e.names.Prefix + "order.placed.v1"
	release := e.gw.setHeld("slow", topic)
	e.start(t)
	e.gw.synced(t)
	for range 3 {
		e.publish(t, topic)
	}
	e.gw.waitCalls(t, "slow", 1, 10*time.Second) // the one worker is busy; two wait in the client
	e.gw.remove("slow")
	e.gw.synced(t)
	// The 2 held ones are back in the queue while the first invocation
	// still runs (well within its InvokeTimeout of 2 s); it is released
	// then, or as the test fails.
	func() {
		defer close(release)
		waitLenWithin(t, e, e.names.Queue("slow"), 2, time.Second)
	}()
	e.gw.set("slow", topic, nil)
	calls := e.gw.waitCalls(t, "slow", 3, 10*time.Second)
	seen := map[string]int{}
	for _, c := range calls {
		seen[c.id]++
	}
	if len(calls) != 3 || len(seen) != 3 {
		t.Errorf("calls %v; want each of the 3 events once", ids(calls))
	}
}

// invocations is the connector's shop_connector_invocations_total for fn
// and outcome (0 before the first).
func invocations(t *testing.T, reg *prometheus.Registry, fn, outcome string) float64 {
	t.Helper()
	v, _ := metricValue(t, reg, "shop_connector_invocations_total", map[string]string{"function": fn, "outcome": outcome})
	return v
}

// A topic removed from a function's annotation while no connector ran stays
// bound on the broker; the next connector unbinds it when it starts.
func TestStaleBindingRemovedAtStart(t *testing.T) {
	t.Parallel()
	e := setup(t, "shifty")
	keep, drop := e.names.Prefix+"order.placed.v1", e.names.Prefix+"order.cancelled.v1"
	e.cfg.KnownTopics = []string{keep, drop}
	e.gw.set("shifty", keep+","+drop, nil)
	first, err := New(e.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); first.Run(ctx) }()
	e.gw.synced(t)
	e.publish(t, drop)
	e.gw.waitCalls(t, "shifty", 1, 10*time.Second)
	cancel()
	<-done

	e.gw.set("shifty", keep, nil) // changed while no connector runs
	e.start(t)
	e.gw.synced(t)
	e.publish(t, drop)
	waitLen(t, e, e.names.Unrouted(), 1)
	id := e.publish(t, keep)
	calls := e.gw.waitCalls(t, "shifty", 2, 10*time.Second)
	if calls[1].id != id {
		t.Errorf("second call is %s, want the kept topic's %s", calls[1].id, id)
	}
}

// A copy sent once the publishing connection has closed (it dropped while
// other deliveries of the function waited for the publish lock) fails at
// once, whether the subscription's publishing channel closed with it (a new
// one cannot be opened) or the copy reaches the closed channel itself (it
// closed meanwhile). The client closes the channel of returns with its
// channel, and draining that channel spun forever holding the lock, so the
// connector could never stop its subscription or reconnect.
func TestACopyOnAClosedChannelFails(t *testing.T) {
	t.Parallel()
	e := setup(t, "closed")
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	s := &subscription{c: &Connector{cfg: e.cfg, log: slog.New(slog.DiscardHandler)}, fn: "closed", pubConn: conn, pub: pub,
		returns: pub.NotifyReturn(make(chan amqp.Return, 1))}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		publish func(context.Context, string, amqp.Publishing) error
	}{
		{"publish", s.publish},
		{"on the closed channel", s.publishOnce},
	} {
		done := make(chan error, 1)
		go func() {
			done <- tc.publish(context.Background(), e.names.DLQ("closed"), amqp.Publishing{Body: []byte("{}")})
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s: a copy on a closed connection was taken as sent", tc.name)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: a copy on a closed connection did not return within 10 s", tc.name)
		}
	}
}

// A retry or dead-letter copy into a queue an operator deleted while the
// connector ran is not lost: RabbitMQ would confirm a non-mandatory copy it
// cannot route, and the connector would then ack the only one. The copy is
// returned instead, and the connector declares the function's queues again.
func TestACopyIntoADeletedQueueIsNotLost(t *testing.T) {
	t.Parallel()
	e := setup(t, "nodlq", "noretry")
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("nodlq", topic, func(int) int { return http.StatusBadRequest })
	e.gw.set("noretry", topic, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	e.start(t)
	e.gw.synced(t)
	for _, q := range []string{e.names.DLQ("nodlq"), e.names.Retry("noretry", e.cfg.Delays()[0])} {
		if _, err := e.ch.QueueDelete(q, false, false, false); err != nil {
			t.Fatalf("delete %s: %v", q, err)
		}
	}
	id := e.publish(t, topic)
	waitLen(t, e, e.names.DLQ("nodlq"), 1)
	if got := e.gw.waitCalls(t, "noretry", 2, 10*time.Second); got[1].id != id {
		t.Errorf("noretry's second call is for %s, want %s", got[1].id, id)
	}
}

// waitLen waits up to 5 s until q holds n messages.
func waitLen(t *testing.T, e *env, q string, n int) {
	t.Helper()
	waitLenWithin(t, e, q, n, 5*time.Second)
}

// waitLenWithin waits until q holds n messages, and fails once within has
// passed: a test whose condition must hold before a time of its own (a
// running invocation's timeout) gives it, one that waits on a slow broker
// a longer one.
func waitLenWithin(t *testing.T, e *env, q string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		// A missing queue may yet be declared: wait for it too.
		got, err := e.tryQueueLen(q)
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d messages %s on (%v), want %d", q, got, within, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) tryQueueLen(q string) (int, error) {
	info, err := e.inspect(q)
	return info.Messages, err
}

// inspect declares q passively: its counts, or an error when it does not
// exist (then the counts are -1).
func (e *env) inspect(q string) (amqp.Queue, error) {
	ch, err := e.conn.Channel()
	if err != nil {
		return amqp.Queue{Messages: -1, Consumers: -1}, err
	}
	defer func() { _ = ch.Close() }()
	info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		return amqp.Queue{Messages: -1, Consumers: -1}, err
	}
	return info, nil
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// Gateway errors (502 while a function restarts) are retried until the
// function answers.
func TestGatewayErrorsRetried(t *testing.T) {
	t.Parallel()
	e := setup(t, "later")
	topic := e.names.Prefix + "order.cancelled.v1"
	e.gw.set("later", topic, func(n int) int {
		if n <= 2 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	e.start(t)
	e.gw.synced(t)
	id := e.publish(t, topic)
	got := e.gw.waitCalls(t, "later", 3, 10*time.Second)
	if got[2].id != id || got[2].headers.Get("X-Attempt") != "3" {
		t.Errorf("third call: id %q attempt %q", got[2].id, got[2].headers.Get("X-Attempt"))
	}
}

// TestARedirectIsAFailedInvocation: the connector follows no redirect. A
// gateway (or a proxy in front of it) answering 307 to another host got the
// POST re-sent there with X-Internal-Token, Shop-Signature and the envelope
// (net/http strips only Authorization and Cookie across hosts); one answering
// 302 got it turned into a GET without a body, whose 200 the connector took
// for the function's and acked an event no function handled. A 3xx is now a
// failed invocation: retried, then dead-lettered.
func TestARedirectIsAFailedInvocation(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var elsewhere []http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere = append(elsewhere, r.Header.Clone())
		mu.Unlock()
	}))
	t.Cleanup(other.Close)
	e := setup(t, "moved", "found")
	e.cfg.MaxAttempts = 2
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.setRedirect("moved", topic, http.StatusTemporaryRedirect, other.URL+"/function/moved")
	e.gw.setRedirect("found", topic, http.StatusFound, other.URL+"/function/found")
	reg := e.start(t)
	e.gw.synced(t)
	id := e.publish(t, topic)
	for _, c := range []struct {
		fn     string
		status int
	}{{"moved", http.StatusTemporaryRedirect}, {"found", http.StatusFound}} {
		waitLen(t, e, e.names.DLQ(c.fn), 1)
		dls, err := broker.PeekDeadLetters(e.conn, e.names, c.fn, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 1 || dls[0].ID != id || dls[0].LastStatus != c.status || dls[0].Attempts != 2 {
			t.Errorf("%s: dead letters %+v, want %s after 2 attempts answered %d", c.fn, dls, id, c.status)
		}
		if n := invocations(t, reg, c.fn, "ok"); n != 0 {
			t.Errorf("%s: %v invocation(s) counted ok for a %d", c.fn, n, c.status)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range elsewhere {
		if tok := h.Get("X-Internal-Token"); tok != "" {
			t.Errorf("the internal credential reached the redirect's host: %q", tok)
		}
	}
	if len(elsewhere) != 0 {
		t.Errorf("%d request(s) followed a redirect to another host, want none", len(elsewhere))
	}
}

// TestDeliveriesReuseGatewayConnections: with many deliveries in flight at
// once (two functions, 8 each), the connector keeps invoking over the same
// keep-alive connections to the gateway instead of opening one for nearly
// every call (Go's default transport keeps 2 idle per host).
func TestDeliveriesReuseGatewayConnections(t *testing.T) {
	t.Parallel()
	e := setup(t, "a", "b")
	e.cfg.Prefetch = 8
	topic := e.names.Prefix + "order.placed.v1"
	slow := func(int) int {
		time.Sleep(3 * time.Millisecond) // keep the calls overlapping
		return http.StatusOK
	}
	e.gw.set("a", topic, slow)
	e.gw.set("b", topic, slow)
	e.start(t)
	e.gw.synced(t)
	const events = 100
	for range events {
		e.publish(t, topic)
	}
	e.gw.waitCalls(t, "a", events, 20*time.Second)
	e.gw.waitCalls(t, "b", events, 20*time.Second)
	e.gw.mu.Lock()
	opened := len(e.gw.conns)
	e.gw.mu.Unlock()
	if inFlight := 2 * e.cfg.Prefetch; opened > 2*inFlight {
		t.Errorf("%d connections opened for %d invocations, %d at most at once; want at most %d", opened, 2*events, inFlight, 2*inFlight)
	}
	t.Logf("%d connections for %d invocations", opened, 2*events)
}

// A function queue deleted while the connector runs cancels the connector's
// consumer (RabbitMQ's basic.cancel; a consumer_timeout closes its channel
// instead) and leaves the connection up. The connector notices, declares the
// queue again and consumes it at once, on the same connection: the other
// functions' deliveries go on undisturbed. Until 2026-12-03 the subscription
// stayed in place with its deliveries channel closed: a refresh that found the
// queue missing failed and reconnected the whole session (every function's
// in-flight invocation cancelled), and one that found it declared again (an
// operator, or the connector's own redeclare of a returned retry copy) left
// the queue without a consumer until the connection dropped. The refresh
// interval is set past the test's bounds so that only the cancel itself can
// bring the consumer back.
func TestAConsumerCancelledByTheBrokerIsSubscribedAgain(t *testing.T) {
	t.Parallel()
	e := setup(t, "cancelled", "bystander")
	e.cfg.RefreshInterval = time.Hour
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("cancelled", topic, nil)
	e.gw.set("bystander", topic, nil)
	logs := &logRecorder{}
	e.startLogging(t, slog.New(logs))
	q := e.names.Queue("cancelled")
	waitConsumed(t, e, q)
	waitConsumed(t, e, e.names.Queue("bystander"))
	first := e.publish(t, topic)
	if got := e.gw.waitCalls(t, "cancelled", 1, 10*time.Second); got[0].id != first {
		t.Fatalf("first call is for %s, want %s", got[0].id, first)
	}
	if _, err := e.ch.QueueDelete(q, false, false, false); err != nil {
		t.Fatal(err)
	}
	waitConsumed(t, e, q)
	id := e.publish(t, topic)
	if got := e.gw.waitCalls(t, "cancelled", 2, 10*time.Second); got[1].id != id {
		t.Errorf("second call is for %s, want %s", got[1].id, id)
	}
	e.gw.waitCalls(t, "bystander", 2, 10*time.Second)
	if n := logs.count("connected to RabbitMQ"); n != 1 {
		t.Errorf("%d broker sessions, want 1: a cancelled consumer must not reconnect them all", n)
	}
}

// A broker that keeps ending the function's consumer (here: its queue
// deleted again and again) gets its replacements at a growing delay, not in a
// loop of discoveries, declarations and consumers; once it stops, the
// function is subscribed again and gets its events.
//
// The delays are bounds from below: a replacement comes no sooner than its
// delay after the consumer before it ended, and load only makes it later.
// The test therefore measures how long four replacements take, never how
// many fit in a fixed time: it counted those in 3 s (2 to 8), and a loaded
// machine, where each replacement's discovery, quorum queue declaration and
// consumer take a second or more, could fit fewer than 2.
func TestAConsumerTheBrokerKeepsEndingIsReplacedAtAGrowingDelay(t *testing.T) {
	t.Parallel()
	e := setup(t, "churned")
	e.cfg.RefreshInterval = time.Hour
	e.cfg.MaxBackoff = 2 * time.Second
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("churned", topic, nil)
	logs := &logRecorder{}
	e.startLogging(t, slog.New(logs))
	q := e.names.Queue("churned")
	waitConsumed(t, e, q)

	ch, err := e.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Each consumer ends as soon as it is seen: its queue is deleted. The
	// first is the one subscribed at the start; the next ones replace it.
	const replacements = 4
	var deleted []time.Time
	for deadline := time.Now().Add(time.Minute); len(deleted) < 1+replacements; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d replacements of the consumer within a minute of deletions, want %d", max(len(deleted)-1, 0), replacements)
		}
		if n, err := e.tryConsumers(q); err == nil && n > 0 {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Fatal(err)
			}
			deleted = append(deleted, time.Now())
		}
	}
	// 200 ms, 400, 800 and 1.6 s at least between a deletion and the next
	// consumer: 3 s for four replacements; without the delay, a few
	// milliseconds each. (After a pause over twice MaxBackoff the delays
	// start again from 200 ms, but that pause alone is longer than 3 s.)
	var least time.Duration
	for d := 200 * time.Millisecond; d <= 1600*time.Millisecond; d *= 2 {
		least += d
	}
	took := deleted[replacements].Sub(deleted[0])
	t.Logf("%d replacements in %s", replacements, took.Round(time.Millisecond))
	if took < least {
		t.Errorf("the consumer was replaced %d times in %s, want no sooner than %s (200 ms, doubling)",
			replacements, took.Round(time.Millisecond), least)
	}
	// The last end is logged once the connector hears of it.
	const endedLog = "the broker ended the function's consumer, subscribing again"
	for deadline := time.Now().Add(10 * time.Second); logs.count(endedLog) < 1+replacements; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
	}
	if n := logs.count(endedLog); n != 1+replacements {
		t.Errorf("%d consumers ended by the broker logged, want %d (one per deletion)", n, 1+replacements)
	}
	// Each end's delay is twice the last, up to MaxBackoff, or back at
	// 200 ms after a calm spell over twice MaxBackoff: under load a
	// replacement may take that long (an interval near it may go either
	// way, as the connector times it from its own receipt of each end). A
	// constant delay, however long, would fail here.
	delays := logs.delays()
	if len(delays) != 1+replacements {
		t.Fatalf("delays logged %v, want one per deletion (%d)", delays, 1+replacements)
	}
	for i, d := range delays {
		grown := 200 * time.Millisecond
		if i > 0 {
			grown = min(2*delays[i-1], e.cfg.MaxBackoff)
		}
		calm := i > 0 && deleted[i].Sub(deleted[i-1]) > 2*e.cfg.MaxBackoff-500*time.Millisecond
		if d != grown && !(calm && d == 200*time.Millisecond) {
			t.Errorf("delay %d before subscribing again = %s (all: %v, deletions %v apart), want %s",
				i, d, delays, intervals(deleted), grown)
		}
	}
	waitConsumed(t, e, q)
	id := e.publish(t, topic)
	if got := e.gw.waitCalls(t, "churned", 1, 10*time.Second); got[0].id != id {
		t.Errorf("call for %s, want %s", got[0].id, id)
	}
}

// intervals are the times between consecutive instants of ts, rounded.
func intervals(ts []time.Time) []time.Duration {
	var d []time.Duration
	for i := 1; i < len(ts); i++ {
		d = append(d, ts[i].Sub(ts[i-1]).Round(time.Millisecond))
	}
	return d
}

// waitConsumed waits until q exists and has a consumer.
func waitConsumed(t *testing.T, e *env, q string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var n int
		if n, err = e.tryConsumers(q); err == nil && n > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s has no consumer within 10s (%v)", q, err)
}

func (e *env) tryConsumers(q string) (int, error) {
	info, err := e.inspect(q)
	return info.Consumers, err
}

// logRecorder is a slog.Handler keeping every record's message.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
	// afters are the "after" attributes logged, in order: the delays
	// before a function's consumer is subscribed again.
	afters []time.Duration
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "after" {
			l.afters = append(l.afters, a.Value.Duration())
		}
		return true
	})
	return nil
}

// delays returns the "after" attributes logged so far.
func (l *logRecorder) delays() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.afters)
}

func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// The warning about events waiting in the unrouted queue is logged when
// their count changes, not at every refresh: the runbook expects old events
// to sit there until purged. Until 2026-12-07 it was logged every
// RefreshInterval (5 s: about 17,000 lines a day) while the queue was not
// empty.
func TestUnroutedEventsAreLoggedWhenTheirCountChanges(t *testing.T) {
	t.Parallel()
	e := setup(t, "quiet")
	topic := e.names.Prefix + "product.changed.v1"
	e.gw.set("quiet", "", nil)
	logs := &logRecorder{}
	reg := e.startLogging(t, slog.New(logs))
	e.gw.synced(t)
	const warning = "events without subscriber are waiting"
	e.publish(t, topic)
	waitLen(t, e, e.names.Unrouted(), 1)
	for range 5 { // refreshes that find the same event waiting
		e.gw.synced(t)
	}
	if v := gaugeValue(t, reg, "shop_unrouted_messages"); v != 1 {
		t.Fatalf("shop_unrouted_messages = %v, want 1", v)
	}
	if n := logs.count(warning); n != 1 {
		t.Errorf("%q logged %d times over 10 refreshes with one event waiting, want once", warning, n)
	}
	e.publish(t, topic)
	waitLen(t, e, e.names.Unrouted(), 2)
	for range 2 {
		e.gw.synced(t)
	}
	if n := logs.count(warning); n != 2 {
		t.Errorf("%q logged %d times after a second event, want twice", warning, n)
	}
}
