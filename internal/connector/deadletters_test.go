package connector

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A function that leaves the gateway is no longer consumed, but while its
// queue stays bound (UnbindAfter) its shop_dead_letters series follows its
// dead-letter queue, so a purge clears DeadLetters; once the queue is
// unbound the series is deleted. Until 2026-12-03 the gauge was refreshed
// only for functions with a consumer: the series kept its last value, and
// DeadLetters fired, after the purge and forever after the function left.
func TestTheDeadLetterGaugeFollowsAFunctionThatLeft(t *testing.T) {
	t.Parallel()
	e := setup(t, "leaving")
	e.cfg.MaxAttempts = 1
	e.cfg.UnbindAfter = 3 * time.Second
	topic := e.names.Prefix + "order.placed.v1"
	e.gw.set("leaving", topic, func(int) int { return http.StatusServiceUnavailable })
	reg := e.start(t)
	e.gw.synced(t)
	e.publish(t, topic)
	waitLen(t, e, e.names.DLQ("leaving"), 1)
	waitDeadLetterGauge(t, reg, "leaving", 1, true)

	e.gw.remove("leaving")
	e.gw.synced(t)
	if _, err := e.ch.QueuePurge(e.names.DLQ("leaving"), false); err != nil {
		t.Fatal(err)
	}
	waitDeadLetterGauge(t, reg, "leaving", 0, true)
	waitDeadLetterGauge(t, reg, "leaving", 0, false)
}

// waitDeadLetterGauge waits until fn's shop_dead_letters series is present
// with value want, or (present false) absent.
func waitDeadLetterGauge(t *testing.T, reg *prometheus.Registry, fn string, want float64, present bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got float64
	var found bool
	for time.Now().Before(deadline) {
		got, found = deadLetterGauge(t, reg, fn)
		if found == present && (!present || got == want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if present {
		t.Fatalf("shop_dead_letters{function=%q}: %v (present %v), want %v", fn, got, found, want)
	}
	t.Fatalf("shop_dead_letters{function=%q} is still %v, want no series", fn, got)
}

func deadLetterGauge(t *testing.T, reg *prometheus.Registry, fn string) (float64, bool) {
	t.Helper()
	return metricValue(t, reg, "shop_dead_letters", map[string]string{"function": fn})
}

// metricValue is the value of the series of name whose labels include
// labels (a gauge's or a counter's), and whether there is one.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}
