package relay

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopfaas/shop/internal/events"
	"github.com/shopfaas/shop/internal/outbox"
	"github.com/shopfaas/shop/internal/postgres"
	"github.com/shopfaas/shop/internal/proctest"
	"github.com/shopfaas/shop/internal/tcpproxy"
)

const (
	blockedWarning = "the broker blocked the publishing connection (resource alarm)"
	alarmOver      = "the broker accepts events again"
)

// A batch the broker does not read is given up at Config.ConfirmTimeout,
// like one it does not confirm: the relay counts a broker error, says the
// batch was not written, and publishes the rows again on a new connection.
// RabbitMQ blocks a connection that publishes during a resource alarm: it
// sends connection.blocked and stops reading the socket. Here a proxy does
// both (an alarm on the shared broker would hold up every other test), and
// the batch is larger than the sockets' buffers, so the relay's write waits.
// The block is told once, at warn with the broker's reason, and its end once
// a batch goes through. Until 2026-12-07 the deadline started after the
// last write: the worker waited in the write until the alarm cleared (here
// until RabbitMQ's heartbeat timeout ended the connection the proxy kept
// silent, about 30 s), and nothing was logged of the block.
func TestABatchTheBrokerDoesNotReadIsGivenUpAtItsDeadline(t *testing.T) {
	ctx := context.Background()
	names, ch := declareExchange(t, "last")
	// The queue keeps only the last event: the batch weighs 12 MiB, which
	// the shared broker need not hold.
	queue := names.Prefix + "last"
	if _, err := ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-max-length": int32(1)}); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", names.Exchange(), false, nil); err != nil {
		t.Fatal(err)
	}
	pool, url := openOutbox(t)
	proxy := tcpproxy.New(t, "127.0.0.1:5672")
	logs := &proctest.Output{}
	// The deadline is far above the 3 s the batch took to go out on a new
	// connection under the race detector on a loaded machine (reading and
	// parsing its envelopes count in it too).
	const batch, confirmTimeout = 32, 10 * time.Second
	r, err := New(Config{Databases: []Database{{Name: "orders", URL: url}}, BrokerURL: "amqp://guest:guest@" + proxy.Addr() + "/",
		Names: names, BatchSize: batch, ConfirmTimeout: confirmTimeout,
		PollInterval: 200 * time.Millisecond, MaxBackoff: 300 * time.Millisecond},
		slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	run(t, ctx, r)
	// Before the relay is stopped: a write the broker does not read ends
	// only with its connection.
	t.Cleanup(proxy.Cut)
	commitEvent(t, ctx, pool, "before")
	allMarked(t, pool) // the publishing connection is open

	c := proxy.Conn(t, 0)
	c.Stall()
	if err := c.Send(connectionBlocked("low on memory")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the block told", func() bool { return strings.Contains(logs.String(), blockedWarning) })
	if !strings.Contains(logs.String(), `reason="low on memory"`) {
		t.Errorf("the warning does not name the broker's reason:\n%s", logs)
	}
	// 32 events of 384 KiB: far more than the relay's send buffer and the
	// proxy's receive buffer hold (4 MiB and 128 KiB by default on Linux).
	pad := strings.Repeat("x", 384<<10)
	if err := postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		for i := range batch {
			ev, err := events.New(ctx, "test", events.OrderPlaced, "big", map[string]string{"order_id": strconv.Itoa(i), "pad": pad})
			if err != nil {
				return err
			}
			if err := outbox.Append(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	brokerErrors := func() float64 { return testutil.ToFloat64(r.metrics.errors.WithLabelValues("orders", "broker")) }
	// Within its deadline and well before RabbitMQ's own heartbeat timeout
	// ends the connection, which hears nothing from the relay through the
	// stalled proxy (about 30 s after the stall: without the deadline the
	// write failed then, "connection reset by peer").
	waitFor(t, confirmTimeout+10*time.Second, "the batch given up at its deadline (a broker error counted)", func() bool { return brokerErrors() > 0 })
	if !strings.Contains(logs.String(), "not written within "+confirmTimeout.String()+": the broker did not read the connection, which it blocks") {
		t.Errorf("the failure does not say the batch was not written in time on a blocked connection:\n%s", logs)
	}
	allMarked(t, pool) // published again on a new connection, which is read
	if n := proxy.Accepted(); n < 2 {
		t.Errorf("%d connections through the proxy, want a new one after the stalled one", n)
	}
	waitFor(t, 5*time.Second, "the alarm's end told", func() bool { return strings.Contains(logs.String(), alarmOver) })
	if n := strings.Count(logs.String(), blockedWarning); n != 1 {
		t.Errorf("told %d times of the block, want once:\n%s", n, logs)
	}
}

// A block is told once per alarm: RabbitMQ blocks each connection that
// publishes during it, and the relay opens a new one after each batch it
// gives up on. Its end, an unblocked connection, is told once, and the
// next alarm is told again.
func TestABlockIsToldOncePerAlarm(t *testing.T) {
	logs := &proctest.Output{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	var p publisher
	connection := func(bs ...amqp.Blocking) {
		blocks := make(chan amqp.Blocking, len(bs))
		for _, b := range bs {
			blocks <- b
		}
		close(blocks)
		p.watchBlocks(blocks, new(atomic.Bool), log)
	}
	block := amqp.Blocking{Active: true, Reason: "low on memory"}
	for range 3 {
		connection(block) // given up on while blocked
	}
	connection(block, amqp.Blocking{})
	connection(amqp.Blocking{})
	connection(amqp.Blocking{Active: true, Reason: "low on disk"})
	out := logs.String()
	if n := strings.Count(out, blockedWarning); n != 2 {
		t.Errorf("told %d blocks, want 2 (one per alarm):\n%s", n, out)
	}
	if n := strings.Count(out, alarmOver); n != 1 {
		t.Errorf("told %d ends of an alarm, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "low on disk") {
		t.Errorf("the second alarm's reason not told:\n%s", out)
	}
}

// A batch not written in time names the resource alarm as the cause only
// when the broker blocked the connection: a stall it did not announce may be
// an alarm or a link too slow.
func TestNotWrittenNamesTheAlarmOnlyWhenBlocked(t *testing.T) {
	if got := errNotWritten(15*time.Second, false).Error(); !strings.Contains(got, "not written within 15s") ||
		!strings.Contains(got, "or the link too slow") {
		t.Errorf("not blocked: %q, want the alarm and a slow link as causes", got)
	}
	if got := errNotWritten(15*time.Second, true).Error(); !strings.Contains(got, "not written within 15s") ||
		strings.Contains(got, "too slow") || !strings.Contains(got, "resource alarm") {
		t.Errorf("blocked: %q, want the alarm named", got)
	}
}

// connectionBlocked is the frame of RabbitMQ's connection.blocked with
// reason (AMQP 0-9-1: a method frame on channel 0, class 10, method 60).
func connectionBlocked(reason string) []byte {
	payload := append([]byte{0, 10, 0, 60, byte(len(reason))}, reason...)
	frame := binary.BigEndian.AppendUint32([]byte{1, 0, 0}, uint32(len(payload)))
	return append(append(frame, payload...), 0xCE)
}
