package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"gopkg.in/yaml.v3"

	"github.com/shopfaas/shop/dev/faaslocal/runtimetest"
	"github.com/shopfaas/shop/internal/broker"
	"github.com/shopfaas/shop/internal/broker/rabbitnode"
	"github.com/shopfaas/shop/internal/connector"
)

// TestRabbitMQAlertsReadWhatRabbitMQServes runs a RabbitMQ node of its own
// with the rabbitmq_prometheus plugin and Debian's Prometheus scraping it
// through the jobs of monitoring/prometheus.yml that scrape the rabbitmq
// service (their paths and parameters, the node's address), with
// monitoring/rules loaded. On the shop's topology, with the production
// names (fn.<function>, its DLQ and retry queues, shop.unrouted):
// fn.index-product holds 150 events and a consumer that acknowledges
// nothing, fn.notify-user holds 3 and no consumer, and the DLQ, the retry
// queues and shop.unrouted hold messages without a consumer, as they do by
// design. Every signal of the shop-rabbitmq alerts must return series (a
// metric name or label RabbitMQ does not serve fails it), and exactly
// RabbitMQQueueBacklog on fn.index-product and RabbitMQQueueNoConsumer on
// fn.notify-user become active (pending: their for durations are promtool's
// tests). Then a memory alarm raised on the node blocks a publisher and
// activates RabbitMQResourceAlarm{resource="memory"}, which ends once the
// alarm is cleared. Every panel of the Shop RabbitMQ dashboard returns
// series too.
func TestRabbitMQAlertsReadWhatRabbitMQServes(t *testing.T) {
	bin := prometheusBinary(t)
	ctx := context.Background()
	promPort, err := rabbitnode.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	node, err := rabbitnode.Start(ctx, rabbitnode.Options{PrometheusPort: promPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })

	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	names := broker.Names{} // production's: the rules select these names
	delays := connector.Config{}.Delays()
	if err := broker.DeclareExchange(ch, names); err != nil {
		t.Fatal(err)
	}
	for fn, topic := range map[string]string{"notify-user": "order.placed.v1", "index-product": "product.changed.v1"} {
		if err := broker.DeclareFunction(ch, names, fn, delays); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(names.Queue(fn), topic, names.Exchange(), false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	publish := func(exchange, key string, n int) {
		t.Helper()
		for range n {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, amqp.Publishing{Body: []byte("{}")})
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				t.Fatalf("publish to %q with key %s: confirmed %v, %v", exchange, key, ok, err)
			}
		}
	}
	publish(names.Exchange(), "product.changed.v1", 150)
	publish(names.Exchange(), "order.placed.v1", 3)
	publish(names.Exchange(), "nobody.subscribes.v1", 2) // to shop.unrouted
	publish("", names.DLQ("notify-user"), 2)
	publish("", names.Retry("index-product", delays[len(delays)-1]), 2)
	hold, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Consume(names.Queue("index-product"), "test-hold", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	prom := runPrometheus(t, bin, scrapeConfig(t, map[string][]string{"rabbitmq": {net.JoinHostPort("127.0.0.1", strconv.Itoa(promPort))}}))
	waitTargets(t, prom, map[string]int{"rabbitmq": 1, "rabbitmq-queues": 1})

	checks := ruleChecks(t, rabbitMQGroup)
	if len(checks) == 0 {
		t.Fatalf("no alert in rule group %s", rabbitMQGroup)
	}
	for _, c := range []struct{ alert, label string }{
		{"RabbitMQQueueBacklog", "queue=fn.index-product"},
		{"RabbitMQQueueNoConsumer", "queue=fn.notify-user"},
		{"RabbitMQResourceAlarm", ""},
		{"RabbitMQMetricsDown", ""},
	} {
		waitActive(t, prom, c.alert, c.label)
	}
	waitChecks(t, prom, append(checks, dashboardChecks(t, "shop-rabbitmq.json")...))

	// A memory alarm blocks a publisher and activates the alert.
	if err := node.RaiseMemoryAlarm(ctx); err != nil {
		t.Fatal(err)
	}
	blockedPublisher(t, node.URL())
	waitActive(t, prom, "RabbitMQResourceAlarm", "resource=memory")
	if err := node.ClearMemoryAlarm(ctx); err != nil {
		t.Fatal(err)
	}
	waitActive(t, prom, "RabbitMQResourceAlarm", "")
}

// blockedPublisher publishes one message on a new connection and fails
// unless RabbitMQ answers it with connection.blocked instead of a
// confirmation, as it answers the outbox relay during an alarm.
func blockedPublisher(t *testing.T, amqpURL string) {
	t.Helper()
	c, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	// The broker does not read a blocked connection: its close would wait.
	defer func() { _ = c.CloseDeadline(time.Now().Add(time.Second)) }()
	blocked := c.NotifyBlocked(make(chan amqp.Blocking, 1))
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), broker.Names{}.Exchange(), "order.placed.v1", false, false,
		amqp.Publishing{Body: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-blocked:
		if !b.Active {
			t.Errorf("connection.unblocked during a memory alarm: %+v", b)
		}
	case <-dc.Done():
		t.Error("a publish was confirmed during a memory alarm")
	case <-time.After(30 * time.Second):
		t.Error("no connection.blocked within 30s of a publish during a memory alarm")
	}
}

// scrapeConfig is a Prometheus configuration loading monitoring/rules with
// every job of monitoring/prometheus.yml whose one target is a compose
// service of targets (its "service:port"), scraping the service's addresses
// in targets instead, every 2 seconds.
func scrapeConfig(t *testing.T, targets map[string][]string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(runtimetest.Root(t), "monitoring", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prod struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &prod); err != nil {
		t.Fatal(err)
	}
	var jobs []map[string]any
	found := map[string]bool{}
	for _, job := range prod.ScrapeConfigs {
		var static []struct {
			Targets []string `yaml:"targets"`
		}
		b, _ := yaml.Marshal(job["static_configs"])
		if err := yaml.Unmarshal(b, &static); err != nil || len(static) != 1 || len(static[0].Targets) != 1 {
			continue
		}
		service, _, _ := strings.Cut(static[0].Targets[0], ":")
		addrs, ok := targets[service]
		if !ok {
			continue
		}
		found[service] = true
		job["static_configs"] = []map[string]any{{"targets": addrs}}
		jobs = append(jobs, job)
	}
	for service := range targets {
		if !found[service] {
			t.Fatalf("monitoring/prometheus.yml has no job scraping %s", service)
		}
	}
	out, err := yaml.Marshal(map[string]any{
		"global":         map[string]string{"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"},
		"rule_files":     []string{filepath.Join(runtimetest.Root(t), "monitoring", "rules", "*.yml")},
		"scrape_configs": jobs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// waitActive waits until the alert's active (pending or firing) instances
// are exactly one with label (name=value), or none when label is empty.
func waitActive(t *testing.T, p *prometheus, alert, label string) {
	t.Helper()
	name, _, _ := strings.Cut(label, "=")
	var instances []map[string]string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		var err error
		if instances, err = p.alerts(alert); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, labels := range instances {
			got = append(got, name+"="+labels[name])
		}
		if (label == "" && len(got) == 0) || slices.Equal(got, []string{label}) {
			return
		}
	}
	if label == "" {
		t.Errorf("%s stays active: %v", alert, instances)
	} else {
		t.Errorf("%s: active %v, want exactly one with %s", alert, instances, label)
	}
}

// alerts returns the label sets of the alert's pending and firing
// instances (the ALERTS series).
func (p *prometheus) alerts(name string) ([]map[string]string, error) {
	q := `ALERTS{alertname="` + name + `"}`
	res, err := p.client.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%d %s", res.StatusCode, raw)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, out.Error)
	}
	var labels []map[string]string
	for _, r := range out.Data.Result {
		labels = append(labels, r.Metric)
	}
	return labels, nil
}
