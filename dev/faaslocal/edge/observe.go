package edge

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
)

// prometheus is Kong's prometheus plugin. Its configuration is checked;
// the local edge exports no metrics (Kong serves them on its status
// listener, the local runtime's functions have /_/metrics).
func prometheus(cfg map[string]any, _ *Options) (Middleware, error) {
	c := struct {
		PerConsumer           bool `json:"per_consumer"`
		StatusCodeMetrics     bool `json:"status_code_metrics"`
		LatencyMetrics        bool `json:"latency_metrics"`
		BandwidthMetrics      bool `json:"bandwidth_metrics"`
		UpstreamHealthMetrics bool `json:"upstream_health_metrics"`
		AIMetrics             bool `json:"ai_metrics"`
	}{}
	if err := decodeConfig(cfg, &c); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	return func(next http.Handler) http.Handler { return next }, nil
}

var traceparent = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$`)

// openTelemetry is Kong's opentelemetry plugin reduced to W3C propagation:
// the upstream always receives a traceparent that continues the caller's
// trace (a new span id under the caller's trace id) or starts one. Spans
// are not exported locally; the functions export their own.
func openTelemetry(cfg map[string]any, _ *Options) (Middleware, error) {
	type propagation struct {
		Extract       []string `json:"extract"`
		Inject        []string `json:"inject"`
		DefaultFormat string   `json:"default_format"`
		Clear         []string `json:"clear"`
	}
	c := struct {
		Endpoint                     string            `json:"endpoint"`
		TracesEndpoint               string            `json:"traces_endpoint"`
		LogsEndpoint                 string            `json:"logs_endpoint"`
		Headers                      map[string]string `json:"headers"`
		ResourceAttributes           map[string]string `json:"resource_attributes"`
		Queue                        map[string]any    `json:"queue"`
		ConnectTimeout               int               `json:"connect_timeout"`
		SendTimeout                  int               `json:"send_timeout"`
		ReadTimeout                  int               `json:"read_timeout"`
		HTTPResponseHeaderForTraceID string            `json:"http_response_header_for_traceid"`
		HeaderType                   string            `json:"header_type"`
		SamplingRate                 *float64          `json:"sampling_rate"`
		Propagation                  *propagation      `json:"propagation"`
	}{}
	if err := decodeConfig(cfg, &c); err != nil {
		return nil, fmt.Errorf("opentelemetry: %w", err)
	}
	if c.Endpoint == "" && c.TracesEndpoint == "" {
		return nil, fmt.Errorf("opentelemetry: traces_endpoint is required")
	}
	if p := c.Propagation; p != nil && p.DefaultFormat != "" && p.DefaultFormat != "w3c" {
		return nil, fmt.Errorf("opentelemetry: only w3c propagation is supported by the local edge")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var trace, flags string
			if m := traceparent.FindStringSubmatch(r.Header.Get("Traceparent")); m != nil && m[1] != zeros32 {
				trace, flags = m[1], m[3]
			} else {
				trace, flags = randomHex(16), "01"
			}
			r.Header.Set("Traceparent", "00-"+trace+"-"+randomHex(8)+"-"+flags)
			if c.HTTPResponseHeaderForTraceID != "" {
				w.Header().Set(c.HTTPResponseHeaderForTraceID, trace)
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

const zeros32 = "00000000000000000000000000000000"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
