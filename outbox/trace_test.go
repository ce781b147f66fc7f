package outbox_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/outbox"
)

// A send inside a span carries the span's W3C trace context into the row,
// and a progress upsert replaces it with its own; without a span it stays
// NULL.
func TestSendCarriesTheTraceContext(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx, b := setup(t)
			span := func(traceID, spanID byte) trace.SpanContext {
				return trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: trace.TraceID{traceID, 1}, SpanID: trace.SpanID{spanID, 2}, TraceFlags: trace.FlagsSampled,
				})
			}
			traceparent := func(id string) *string {
				var tp *string
				require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT traceparent FROM "+b.db.Table("notifications")+" WHERE id = $1", id).Scan(&tp))
				return tp
			}

			id, err := b.send(ctx, driver, outbox.User("1"), invoicePaid{id: "a"})
			require.NoError(t, err)
			require.Nil(t, traceparent(id), "no span, no trace context")

			inSpan := trace.ContextWithSpanContext(ctx, span(0xab, 0xcd))
			id, err = b.send(inSpan, driver, outbox.User("1"), invoicePaid{id: "b"})
			require.NoError(t, err)
			require.Equal(t, "00-ab010000000000000000000000000000-cd02000000000000-01", *traceparent(id))

			first, err := b.send(inSpan, driver, outbox.User("1"), progress{key: "k", pct: 1})
			require.NoError(t, err)
			again, err := b.send(trace.ContextWithSpanContext(ctx, span(0xef, 0x12)), driver, outbox.User("1"), progress{key: "k", pct: 2})
			require.NoError(t, err)
			require.Equal(t, first, again)
			require.Equal(t, "00-ef010000000000000000000000000000-1202000000000000-01", *traceparent(again), "the upsert's own")
		})
	}
}
