package integration

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	"github.com/bellhophq/bellhop/worker"
)

// spanNamed returns the ended spans called name.
func spanNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func linksTo(s sdktrace.ReadOnlySpan, sc trace.SpanContext) bool {
	for _, l := range s.Links() {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return true
		}
	}
	return false
}

// One trace, from the writer's span to the push: the app's transaction
// sends inside its span (outbox.Send takes the trace context from ctx into
// the row), the stamp's span links to that span, and the push's span, the
// stamp's child, links to it too. A second relay, which learns of the
// event from the relayed NOTIFY and reads it back (the relay_events view),
// links its push to the writer's span as well. Real Postgres, real SSE
// streams, an in-memory exporter.
func TestTraceFromWriterToPush(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	traced := func(c *relay.Config) { c.TracerProvider = tp }
	stamping := b.startRelay(t, traced)
	// The other relay stamps nothing: its worker polls rarely, and the
	// first relay's adaptive wake sees every write first.
	other := b.startRelay(t, traced, func(c *relay.Config) {
		c.Worker = worker.Config{WakeMode: worker.WakePoll, PollInterval: time.Hour, SweepInterval: time.Hour}
	})
	to := outbox.User("42")
	s1 := openStream(t, stamping.URL, to, -1)
	s2 := openStream(t, other.URL, to, -1)

	app := tp.Tracer("app")
	spanCtx, checkout := app.Start(ctx, "checkout")
	var id string
	require.NoError(t, pgx.BeginFunc(spanCtx, b.db.Pool, func(tx pgx.Tx) error {
		var err error
		id, err = b.ob.Send(spanCtx, tx, to, outbox.Message{Kind: "order.paid", SSE: map[string]string{"order": "1"}})
		return err
	}))
	checkout.End()
	writer := checkout.SpanContext()

	for _, s := range []*stream{s1, s2} {
		ev := s.next(t, 5*time.Second)
		require.Equal(t, id, ev.Data.ID)
	}

	var stamp, push, tailPush sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, s := range spanNamed(rec, "bellhop.stamp") {
			if linksTo(s, writer) {
				stamp = s
			}
		}
		if stamp == nil {
			return false
		}
		for _, s := range spanNamed(rec, "bellhop.push") {
			switch {
			case !linksTo(s, writer):
			case s.Parent().SpanID() == stamp.SpanContext().SpanID():
				push = s
			case !s.Parent().IsValid():
				tailPush = s
			}
		}
		return push != nil && tailPush != nil
	}, 5*time.Second, 20*time.Millisecond, "a stamp span linked to the writer's span, its push child and the other relay's push, both linked to it")
	require.NotEqual(t, writer.TraceID(), stamp.SpanContext().TraceID(), "the stamp is a trace of its own, linked")
	require.Equal(t, stamp.SpanContext().TraceID(), push.SpanContext().TraceID(), "the push is in the stamp's trace")
	attrs := map[string]int64{}
	for _, kv := range push.Attributes() {
		attrs[string(kv.Key)] = kv.Value.AsInt64()
	}
	require.Equal(t, int64(1), attrs["bellhop.push.events"])
	require.Equal(t, int64(1), attrs["bellhop.push.deliveries"], "one stream on the stamping relay")

	// Every HTTP request has a span named for its route.
	require.Eventually(t, func() bool {
		for _, s := range spanNamed(rec, "GET /notifications/stream") {
			for _, kv := range s.Attributes() {
				if kv.Key == "http.route" && kv.Value.AsString() == "/notifications/stream" {
					return true
				}
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond, "a span for the stream request")
	_ = api(t, http.MethodGet, stamping.URL+"/notifications/"+id+"/nothing-here", &to, nil)
	require.Eventually(t, func() bool { return len(spanNamed(rec, "GET /notifications/")) > 0 }, 5*time.Second, 20*time.Millisecond,
		"an unknown path under /notifications/ is named for the catch-all, not for itself")
	for _, s := range rec.Ended() {
		require.NotContains(t, s.Name(), id, "span names are routes, never ids")
	}
}

// seriesValue reads one series from a /metrics page; -1 when absent.
func seriesValue(t *testing.T, page, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(body)
}

// The metrics operators alert on move: with no worker the backlog grows
// (committed rows only: an open transaction's row is not pending yet) and
// its oldest row ages; a worker drains it to zero. Requests are counted by
// route and status (a 404 for a path no route takes), and timed; a resume
// and its refetch are counted.
func TestMetricsMove(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	cfg := b.relayConfig()
	cfg.NoWorker = true
	r, err := relay.New(ctx, cfg, nil)
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	hs := httptest.NewServer(r.Handler())
	t.Cleanup(hs.Close)
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	srv := hs.URL

	page := scrape(t, srv)
	require.Equal(t, 0.0, seriesValue(t, page, "bellhop_backlog_rows"))
	require.Equal(t, 0.0, seriesValue(t, page, "bellhop_backlog_oldest_age_seconds"))

	to := outbox.User("7")
	for range 3 {
		b.send(t, to, "queued")
	}
	open, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = open.Rollback(ctx) }()
	_, err = b.ob.Send(ctx, open, to, outbox.Message{Kind: "uncommitted"})
	require.NoError(t, err)
	time.Sleep(1100 * time.Millisecond)
	page = scrape(t, srv)
	require.Equal(t, 3.0, seriesValue(t, page, "bellhop_backlog_rows"), "committed rows only")
	require.GreaterOrEqual(t, seriesValue(t, page, "bellhop_backlog_oldest_age_seconds"), 1.0)

	// A worker, attached by hand, drains it.
	w, err := worker.New(r.Pool(), worker.Config{Schema: b.db.Schema, Pusher: r, Registerer: r.Registry()})
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	require.Eventually(t, func() bool {
		page := scrape(t, srv)
		return seriesValue(t, page, "bellhop_backlog_rows") == 0 && seriesValue(t, page, "bellhop_backlog_oldest_age_seconds") == 0
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, open.Commit(ctx))
	require.Eventually(t, func() bool { return seriesValue(t, scrape(t, srv), "bellhop_stamp_batch_rows_count") >= 2 },
		10*time.Second, 50*time.Millisecond, "the committed one is stamped too")

	res, err := http.Get(srv + "/nothing-here")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	require.Equal(t, http.StatusNotFound, api(t, http.MethodPost, srv+"/notifications/00000000-0000-0000-0000-000000000000/read", &to, nil).StatusCode)
	require.Equal(t, int64(4), b.unread(t, srv, to))
	s := openStream(t, srv, to, 1<<60) // an id ahead of the database's: refetch
	require.Equal(t, "refetch", s.next(t, 5*time.Second).Data.Op)

	page = scrape(t, srv)
	for series, want := range map[string]float64{
		`bellhop_http_requests_total{code="404",method="GET",route="unrouted"}`:                                    1,
		`bellhop_http_requests_total{code="404",method="POST",route="/notifications/{id}/read"}`:                   1,
		`bellhop_http_requests_total{code="200",method="GET",route="/notifications/unread/count"}`:                 1,
		`bellhop_http_requests_total{code="200",method="GET",route="/notifications/stream"}`:                       1,
		`bellhop_http_request_duration_seconds_count{code="200",method="GET",route="/notifications/unread/count"}`: 1,
		`bellhop_stream_resumes_total`: 1,
		`bellhop_refetches_total`:      1,
		`bellhop_streams_connected`:    1,
	} {
		require.Equal(t, want, seriesValue(t, page, series), series)
	}
	require.Equal(t, -1.0, seriesValue(t, page, `bellhop_http_request_duration_seconds_count{code="200",method="GET",route="/notifications/stream"}`),
		"streams are counted, not timed")
	require.GreaterOrEqual(t, seriesValue(t, page, `bellhop_http_requests_total{code="200",method="GET",route="/metrics"}`), 4.0)
}
