// Package tracing holds what the worker's and the relay's spans share: a
// writer's trace context, as its row carries it (the traceparent column),
// made into span links.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// MaxLinks bounds the links of one span: the SDK's default limit
// (OTEL_SPAN_LINK_COUNT_LIMIT), past which it would drop them anyway.
const MaxLinks = 128

// Tracer is tp's tracer named name; a nil tp traces nothing.
func Tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(name)
}

// Links gathers links to the distinct writers' span contexts of a batch.
// The zero Links is ready to use.
type Links struct {
	seen  map[string]struct{}
	links []trace.Link
}

// Add links to the span whose W3C traceparent a row carries, once, unless
// it is nil, malformed or MaxLinks are taken.
func (l *Links) Add(traceparent *string) {
	if traceparent == nil || len(l.links) >= MaxLinks {
		return
	}
	if _, ok := l.seen[*traceparent]; ok {
		return
	}
	sc, ok := Parse(*traceparent)
	if !ok {
		return
	}
	if l.seen == nil {
		l.seen = map[string]struct{}{}
	}
	l.seen[*traceparent] = struct{}{}
	l.links = append(l.links, trace.Link{SpanContext: sc})
}

// List returns the links gathered.
func (l *Links) List() []trace.Link { return l.links }

// Parse reads a W3C traceparent.
func Parse(traceparent string) (trace.SpanContext, bool) {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	return sc, sc.IsValid()
}
