package telemetry

import (
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP trace request in protobuf, written with protowire. Field numbers
// are those of opentelemetry-proto v1 (trace.proto, common.proto,
// resource.proto); proto3 rules apply: a scalar field at its zero value is
// left out, a message field that is set is written even when empty, and a
// member of AnyValue's oneof is always written. TestOTLPWireMatchesGeneratedTypes
// decodes the result with the generated types and compares it with the
// conversion those types made.

// appendTracesData appends TracesData (1: repeated ResourceSpans), spans
// grouped by resource, then by instrumentation scope, in the order they come.
func appendTracesData(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	type scopeGroup struct {
		scope instrumentation.Scope
		spans []sdktrace.ReadOnlySpan
	}
	type resGroup struct {
		res    *resource.Resource
		scopes []*scopeGroup
	}
	type scopeKey struct {
		res   *resource.Resource
		scope instrumentation.Scope
	}
	var groups []*resGroup
	byRes := map[*resource.Resource]*resGroup{}
	byScope := map[scopeKey]*scopeGroup{}
	for _, s := range spans {
		res := s.Resource()
		rg, ok := byRes[res]
		if !ok {
			rg = &resGroup{res: res}
			byRes[res] = rg
			groups = append(groups, rg)
		}
		scope := s.InstrumentationScope()
		key := scopeKey{res, instrumentation.Scope{Name: scope.Name, Version: scope.Version, SchemaURL: scope.SchemaURL}}
		sg, ok := byScope[key]
		if !ok {
			sg = &scopeGroup{scope: scope}
			byScope[key] = sg
			rg.scopes = append(rg.scopes, sg)
		}
		sg.spans = append(sg.spans, s)
	}
	for _, rg := range groups {
		b = appendMessage(b, 1, func(b []byte) []byte { // ResourceSpans
			b = appendMessage(b, 1, func(b []byte) []byte { // Resource
				if rg.res != nil {
					b = appendKeyValues(b, 1, rg.res.Attributes())
				}
				return b
			})
			for _, sg := range rg.scopes {
				b = appendMessage(b, 2, func(b []byte) []byte { // ScopeSpans
					b = appendMessage(b, 1, func(b []byte) []byte { // InstrumentationScope
						b = appendString(b, 1, sg.scope.Name)
						b = appendString(b, 2, sg.scope.Version)
						return appendKeyValues(b, 3, sg.scope.Attributes.ToSlice())
					})
					for _, s := range sg.spans {
						b = appendMessage(b, 2, func(b []byte) []byte { return appendSpan(b, s) })
					}
					return appendString(b, 3, sg.scope.SchemaURL)
				})
			}
			if rg.res != nil {
				b = appendString(b, 3, rg.res.SchemaURL())
			}
			return b
		})
	}
	return b
}

// appendSpan appends the fields of one finished span (Span).
func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, 1, tid[:])
	b = appendBytes(b, 2, sid[:])
	b = appendString(b, 3, sc.TraceState().String())
	if parent := s.Parent(); parent.SpanID().IsValid() {
		psid := parent.SpanID()
		b = appendBytes(b, 4, psid[:])
	}
	b = appendString(b, 5, s.Name())
	b = appendVarint(b, 6, uint64(s.SpanKind())) // the same numbers, 0–5
	b = appendFixed64(b, 7, unixNano(s.StartTime()))
	b = appendFixed64(b, 8, unixNano(s.EndTime()))
	b = appendKeyValues(b, 9, s.Attributes())
	b = appendVarint(b, 10, uint64(uint32(max(s.DroppedAttributes(), 0))))
	for _, ev := range s.Events() {
		b = appendMessage(b, 11, func(b []byte) []byte { // Span.Event
			b = appendFixed64(b, 1, unixNano(ev.Time))
			b = appendString(b, 2, ev.Name)
			b = appendKeyValues(b, 3, ev.Attributes)
			return appendVarint(b, 4, uint64(uint32(max(ev.DroppedAttributeCount, 0))))
		})
	}
	b = appendVarint(b, 12, uint64(uint32(max(s.DroppedEvents(), 0))))
	for _, l := range s.Links() {
		b = appendMessage(b, 13, func(b []byte) []byte { // Span.Link
			ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			b = appendBytes(b, 1, ltid[:])
			b = appendBytes(b, 2, lsid[:])
			b = appendString(b, 3, l.SpanContext.TraceState().String())
			b = appendKeyValues(b, 4, l.Attributes)
			b = appendVarint(b, 5, uint64(uint32(max(l.DroppedAttributeCount, 0))))
			return appendFixed32(b, 6, flags(l.SpanContext, l.SpanContext))
		})
	}
	b = appendVarint(b, 14, uint64(uint32(max(s.DroppedLinks(), 0))))
	b = appendMessage(b, 15, func(b []byte) []byte { // Status
		st := s.Status()
		b = appendString(b, 2, st.Description)
		switch st.Code { // the SDK's Unset 0, Error 1, Ok 2; OTLP's Unset 0, Ok 1, Error 2
		case codes.Ok:
			b = appendVarint(b, 3, 1)
		case codes.Error:
			b = appendVarint(b, 3, 2)
		}
		return b
	})
	return appendFixed32(b, 16, flags(sc, s.Parent()))
}

// OTLP 1.1's span flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK and
// SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK, beside the W3C trace flags.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// flags are the W3C trace flags of sc and whether remote (the span's parent,
// or the linked span) is remote, as OTLP 1.1 encodes them.
func flags(sc, remote trace.SpanContext) uint32 {
	f := uint32(sc.TraceFlags()) | flagHasIsRemote
	if remote.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() || t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano())
}

// appendKeyValues appends each of kvs as field num (repeated KeyValue).
func appendKeyValues(b []byte, num protowire.Number, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendMessage(b, num, func(b []byte) []byte {
			b = appendString(b, 1, string(kv.Key))
			return appendMessage(b, 2, func(b []byte) []byte { return appendAnyValue(b, kv.Value) })
		})
	}
	return b
}

// appendAnyValue appends the fields of AnyValue for v: its oneof member,
// written even at its zero value; nothing for an empty value, as OTLP says.
func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.STRING:
		return protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), v.AsString())
	case attribute.BOOL:
		return protowire.AppendVarint(protowire.AppendTag(b, 2, protowire.VarintType), protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		return protowire.AppendVarint(protowire.AppendTag(b, 3, protowire.VarintType), uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return protowire.AppendFixed64(protowire.AppendTag(b, 4, protowire.Fixed64Type), math.Float64bits(v.AsFloat64()))
	case attribute.BYTESLICE:
		return appendBytes(b, 7, v.AsByteSlice())
	case attribute.BOOLSLICE:
		return appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		return appendArray(b, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	case attribute.MAP:
		return appendMessage(b, 6, func(b []byte) []byte { return appendKeyValues(b, 1, v.AsMap()) }) // KeyValueList
	}
	return b
}

// appendArray appends AnyValue's array_value (5: ArrayValue, 1: repeated
// AnyValue).
func appendArray[T any](b []byte, xs []T, value func(T) attribute.Value) []byte {
	return appendMessage(b, 5, func(b []byte) []byte {
		for _, x := range xs {
			b = appendMessage(b, 1, func(b []byte) []byte { return appendAnyValue(b, value(x)) })
		}
		return b
	})
}

// appendMessage appends field num as a length-delimited message whose fields
// fill appends: written in place, then moved to make room for its length.
func appendMessage(b []byte, num protowire.Number, fill func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	start := len(b)
	b = fill(b)
	n := len(b) - start
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size)...)
	copy(b[start+size:], b[start:start+n])
	protowire.AppendVarint(b[start:start], uint64(n))
	return b
}

// appendBytes appends a bytes field; a string or bytes field of a oneof is
// written even when empty (the callers outside AnyValue pass non-empty ids).
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// appendString appends a proto3 string field, left out when empty.
func appendString(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// appendVarint appends a proto3 varint field, left out at zero.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

// appendFixed64 appends a proto3 fixed64 field, left out at zero.
func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v)
}

// appendFixed32 appends a proto3 fixed32 field, left out at zero.
func appendFixed32(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), v)
}
