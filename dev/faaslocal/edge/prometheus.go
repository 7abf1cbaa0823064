package edge

import "net/http"

// PrometheusConfig is the config of Kong's prometheus plugin. It is checked
// and has no effect locally: Kong serves its metrics on its status
// listener, and the local runtime's functions serve theirs on /_/metrics.
type PrometheusConfig struct {
	// PerConsumer labels metrics with the consumer.
	PerConsumer bool `json:"per_consumer"`
	// StatusCodeMetrics counts responses by status.
	StatusCodeMetrics bool `json:"status_code_metrics"`
	// LatencyMetrics measures request, upstream and Kong latencies.
	LatencyMetrics bool `json:"latency_metrics"`
	// BandwidthMetrics counts bytes in and out.
	BandwidthMetrics bool `json:"bandwidth_metrics"`
	// UpstreamHealthMetrics exports upstream target health.
	UpstreamHealthMetrics bool `json:"upstream_health_metrics"`
	// AIMetrics exports Kong's AI plugin metrics.
	AIMetrics bool `json:"ai_metrics"`
}

func (c *PrometheusConfig) setDefaults() {}

// Validate accepts every combination of the flags.
func (c *PrometheusConfig) Validate() error { return nil }

// prometheus is Kong's prometheus plugin: the request passes unchanged.
type prometheus struct{}

func newPrometheus(PrometheusConfig, *scope) (plugin, error) { return prometheus{}, nil }

func (prometheus) wrap(next http.Handler) http.Handler { return next }
