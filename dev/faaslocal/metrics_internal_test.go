package faaslocal

import (
	"reflect"
	"testing"
)

// TestConnectorMetricsFromTheirLogLine: a connector's metrics endpoint is
// the address of its "metrics listening" log line, under its service name;
// a later line (a restart) replaces it; other lines and non-loopback
// addresses are ignored.
func TestConnectorMetricsFromTheirLogLine(t *testing.T) {
	var c connectorMetrics
	c.observe("rabbitmq", `{"time":"x","level":"INFO","msg":"metrics listening","function":"rabbitmq-connector","addr":"127.0.0.1:40001"}`)
	c.observe("outbox-relay", `{"level":"INFO","msg":"metrics listening","function":"outbox-relay","addr":"127.0.0.1:40002"}`)
	c.observe("outbox-relay", `{"level":"INFO","msg":"metrics listening","function":"outbox-relay","addr":"127.0.0.1:40003"}`)
	c.observe("scheduler", `{"level":"INFO","msg":"scheduler starting","function":"scheduler"}`)
	c.observe("evil", `{"level":"INFO","msg":"metrics listening","function":"evil","addr":"10.0.0.1:9464"}`)
	c.observe("text", `metrics listening on 127.0.0.1:1`)
	want := []metricsEndpoint{{service: "outbox-relay", addr: "127.0.0.1:40003"}, {service: "rabbitmq-connector", addr: "127.0.0.1:40001"}}
	if got := c.list(); !reflect.DeepEqual(got, want) {
		t.Errorf("list() = %+v, want %+v", got, want)
	}
}
