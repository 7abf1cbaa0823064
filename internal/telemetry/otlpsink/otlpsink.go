// Package otlpsink is a real OTLP/HTTP trace receiver for tests: it decodes
// the protobuf ExportTraceServiceRequest the SDK's exporter sends to
// <URL>/v1/traces and keeps every span, so a test can check what a process
// exported — names, kinds, attributes and, above all, parent links.
package otlpsink

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	// TraceID, SpanID and ParentID are lower-case hex; ParentID is "" for a
	// root span.
	TraceID, SpanID, ParentID string
	// Name is the span's name.
	Name string
	// Kind is server, client, producer, consumer or internal.
	Kind string
	// Service is the resource's service.name.
	Service string
	// Attrs are the span's attributes, each value as text.
	Attrs map[string]string
	// Error is true when the span's status is Error.
	Error bool
	// Links are the span contexts the span links to, in order.
	Links []Link
}

// Link is a span's link to another span context.
type Link struct {
	// TraceID and SpanID are lower-case hex.
	TraceID, SpanID string
}

func (s Span) String() string {
	return fmt.Sprintf("%s %s %q (%s) span %s parent %s", s.Service, s.Kind, s.Name, s.TraceID, s.SpanID, s.ParentID)
}

// Sink is a running receiver.
type Sink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []Span
}

// Start runs a receiver on 127.0.0.1 until the test ends.
func Start(tb testing.TB) *Sink {
	tb.Helper()
	s := &Sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.srv.Close)
	return s
}

// URL is the base URL to export to (OTEL_EXPORTER_OTLP_ENDPOINT).
func (s *Sink) URL() string { return s.srv.URL }

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "only POST /v1/traces", http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "only application/x-protobuf, not "+ct, http.StatusUnsupportedMediaType)
		return
	}
	req, err := Decode(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				var links []Link
				for _, l := range sp.GetLinks() {
					links = append(links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				got = append(got, Span{
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					ParentID: hex.EncodeToString(sp.GetParentSpanId()), Name: sp.GetName(),
					Kind:    strings.ToLower(strings.TrimPrefix(sp.GetKind().String(), "SPAN_KIND_")),
					Service: service, Attrs: attrs(sp.GetAttributes()),
					Error: sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, Links: links,
				})
			}
		}
	}
	s.mu.Lock()
	s.spans = append(s.spans, got...)
	s.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = fmt.Sprint(x.DoubleValue)
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// Spans returns every span received so far.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.spans)
}

// Trace returns the spans received so far of one trace.
func (s *Sink) Trace(traceID string) []Span {
	var out []Span
	for _, sp := range s.Spans() {
		if sp.TraceID == traceID {
			out = append(out, sp)
		}
	}
	return out
}

// Wait polls until done accepts the spans received so far or timeout
// passes, and returns the last spans it saw and whether done accepted them.
func (s *Sink) Wait(timeout time.Duration, done func([]Span) bool) ([]Span, bool) {
	deadline := time.Now().Add(timeout)
	for {
		spans := s.Spans()
		if done(spans) {
			return spans, true
		}
		if time.Now().After(deadline) {
			return spans, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Decode reads the ExportTraceServiceRequest of an OTLP/HTTP protobuf
// request, gzip-compressed or not.
func Decode(r *http.Request) (*coltrace.ExportTraceServiceRequest, error) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	return &req, nil
}
