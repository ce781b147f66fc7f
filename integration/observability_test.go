package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/internal/relayproc"
	"github.com/bellhophq/bellhop/internal/sseclient"
	"github.com/bellhophq/bellhop/internal/tracing"
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
// the row), the stamp's span links to that span, and so does the push's
// span on each of two relays: the one that stamped pushes what it stamped
// (its push is the stamp's child, unless the relayed NOTIFY made its hub
// read the rows back first), the other reads them back from the
// relay_events view. Real Postgres, real SSE streams, an in-memory
// exporter per relay.
func TestTraceFromWriterToPush(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	traced := func(rec *tracetest.SpanRecorder) func(*relay.Config) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return func(c *relay.Config) { c.TracerProvider = tp }
	}
	recs := []*tracetest.SpanRecorder{tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()}
	relays := []*testRelay{b.startRelay(t, traced(recs[0])), b.startRelay(t, traced(recs[1]))}
	to := outbox.User("42")
	streams := []*stream{openStream(t, relays[0].URL, to, -1), openStream(t, relays[1].URL, to, -1)}

	app := sdktrace.NewTracerProvider().Tracer("app")
	spanCtx, checkout := app.Start(ctx, "checkout")
	var id string
	require.NoError(t, pgx.BeginFunc(spanCtx, b.db.Pool, func(tx pgx.Tx) error {
		var err error
		id, err = b.ob.Send(spanCtx, tx, to, outbox.Message{Kind: "order.paid", SSE: map[string]string{"order": "1"}})
		return err
	}))
	checkout.End()
	writer := checkout.SpanContext()

	for _, s := range streams {
		ev := s.next(t, 5*time.Second)
		require.Equal(t, id, ev.Data.ID)
	}

	var stamp sdktrace.ReadOnlySpan
	stamped := -1 // the relay whose worker stamped
	require.Eventually(t, func() bool {
		for i, rec := range recs {
			for _, s := range spanNamed(rec, "bellhop.stamp") {
				if linksTo(s, writer) {
					stamp, stamped = s, i
				}
			}
		}
		return stamp != nil
	}, 5*time.Second, 20*time.Millisecond, "a stamp span linked to the writer's span")
	require.NotEqual(t, writer.TraceID(), stamp.SpanContext().TraceID(), "the stamp is a trace of its own, linked")
	for i, rec := range recs {
		var push sdktrace.ReadOnlySpan
		require.Eventually(t, func() bool {
			for _, s := range spanNamed(rec, "bellhop.push") {
				if linksTo(s, writer) {
					push = s
				}
			}
			return push != nil
		}, 5*time.Second, 20*time.Millisecond, "relay %d: a push span linked to the writer's span", i)
		attrs := map[string]int64{}
		for _, kv := range push.Attributes() {
			attrs[string(kv.Key)] = kv.Value.AsInt64()
		}
		require.Equal(t, int64(1), attrs["bellhop.push.events"], "relay %d", i)
		require.Equal(t, int64(1), attrs["bellhop.push.deliveries"], "relay %d: its one stream", i)
		if i != stamped {
			require.False(t, push.Parent().IsValid(), "relay %d read the event back: its push starts a trace", i)
			continue
		}
		var child bool
		for _, s := range spanNamed(rec, "bellhop.push") {
			child = child || s.Parent().SpanID() == stamp.SpanContext().SpanID()
		}
		require.True(t, child, "the stamping relay's hand-over is the stamp's child")
	}

	// Every HTTP request has a span named for its route.
	rec := recs[0]
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
	_ = api(t, http.MethodGet, relays[0].URL+"/notifications/"+id+"/nothing-here", &to, nil)
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
	noWorker := b.startReplica(t)
	r, srv := noWorker.Relay, noWorker.URL

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

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths, and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bellhop test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600))
	return certFile, keyFile, roots
}

// With BELLHOP_TLS_CERT_FILE and BELLHOP_TLS_KEY_FILE the relay binary
// serves HTTPS with HTTP/2: streams multiplex on one connection (a
// browser's tabs need no proxy to get past HTTP/1.1's six connections per
// origin), and every event arrives on each, flushed as it happens. Its
// health check asks it over HTTPS.
func TestTLSServesHTTP2Streams(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	certFile, keyFile, roots := selfSigned(t, t.TempDir())
	p, err := relayproc.New(relayBinary(t), "relay", "DATABASE_URL="+b.db.URL, "BELLHOP_SCHEMA="+b.db.Schema,
		"BELLHOP_JWT_SECRET="+secret, "BELLHOP_DB_MAX_CONNS=6", "BELLHOP_LOG_LEVEL=warn",
		"BELLHOP_TLS_CERT_FILE="+certFile, "BELLHOP_TLS_KEY_FILE="+keyFile,
		// A write's deadline must not outlive the write: over HTTP/2 it is
		// a timer that resets the stream when it fires.
		"BELLHOP_WRITE_TIMEOUT=500ms")
	require.NoError(t, err)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	p.URL, p.Client = "https://"+p.Addr, hc
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("relay log (tail):\n%s", p.Logs())
		}
	})
	require.NoError(t, p.Start(ctx))

	to := outbox.User("h2")
	var conns []string
	var streams []*sseclient.Stream
	for range 3 {
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			conns = append(conns, info.Conn.LocalAddr().String())
		}}
		s, err := sseclient.Connect(httptrace.WithClientTrace(ctx, trace), hc, p.URL+"/notifications/stream",
			http.Header{"Authorization": {"Bearer " + token(t, to)}}, "")
		require.NoError(t, err)
		t.Cleanup(s.Close)
		require.Equal(t, 2, s.Response.ProtoMajor, "HTTP/2 over TLS")
		require.Equal(t, "text/event-stream", s.Response.Header.Get("Content-Type"))
		streams = append(streams, s)
	}
	require.Len(t, conns, 3)
	require.Equal(t, conns[0], conns[1], "one connection for every stream")
	require.Equal(t, conns[0], conns[2], "one connection for every stream")

	time.Sleep(time.Second) // idle, past the write timeout
	id := b.send(t, to, "over.h2")
	for i, s := range streams {
		done := make(chan string, 1)
		go func() {
			for {
				f, err := s.Next()
				if err != nil {
					close(done)
					return
				}
				if f.HasData {
					done <- f.Data
					return
				}
			}
		}()
		select {
		case data, ok := <-done:
			require.True(t, ok, "stream %d ended", i)
			require.Contains(t, data, id)
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d: no event within 5s over HTTP/2", i)
		}
	}

	env := []string{"BELLHOP_LISTEN_ADDR=" + p.Addr, "BELLHOP_TLS_CERT_FILE=" + certFile, "BELLHOP_OPS_ADDR="}
	out, err := relayBinary(t).Run(ctx, env, "healthcheck")
	require.NoError(t, err)
	require.Contains(t, string(out), "GET https://"+p.Addr+"/healthz answered 200")
}

// The relay binary traces when the standard variables say so: spans go
// to OTEL_EXPORTER_OTLP_ENDPOINT over OTLP/HTTP, and a request's
// traceparent header continues the caller's trace.
func TestTracingExportsOTLP(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	var mu sync.Mutex
	var exported [][]byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if req.Method == http.MethodPost && req.URL.Path == "/v1/traces" && req.Header.Get("Content-Type") == "application/x-protobuf" {
			mu.Lock()
			exported = append(exported, body)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(collector.Close)
	p := b.startProcess(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+collector.URL, "OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_SERVICE_NAME=relay-under-test")

	to := outbox.User("otlp")
	caller := trace.TraceID{0xca, 0x11, 0xe4}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/notifications/unread/count", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, to))
	req.Header.Set("traceparent", "00-"+caller.String()+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	b.send(t, to, "traced")

	has := func(want []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, body := range exported {
			if bytes.Contains(body, want) {
				return true
			}
		}
		return false
	}
	for _, want := range [][]byte{[]byte("GET /notifications/unread/count"), caller[:], []byte("bellhop.stamp"), []byte("bellhop.push"), []byte("relay-under-test")} {
		require.Eventually(t, func() bool { return has(want) }, 10*time.Second, 20*time.Millisecond, "%q exported", want)
	}
}

// A SQL writer holding only the writer role passes its trace context to
// bellhop.send (the README's example, verbatim), and the relay's stamp
// links to it.
func TestSQLWriterTraceparentIsLinked(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	r := b.startRelay(t, func(c *relay.Config) { c.TracerProvider = tp })
	s := openStream(t, r.URL, outbox.User("42"), -1)
	app := loginAs(t, b.db, b.db.Schema+"_tracer", b.db.WriterRole())

	blocks := readmeSQL(t, "### Tracing", b.db.Schema)
	require.Len(t, blocks, 1)
	_, err := app.Exec(ctx, blocks[0])
	require.NoError(t, err, "the README's send with a traceparent, as the writer role")
	require.Equal(t, "invoice.paid", s.next(t, 5*time.Second).Data.Type)

	writer, ok := tracing.Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	require.True(t, ok)
	require.Eventually(t, func() bool {
		for _, s := range spanNamed(rec, "bellhop.stamp") {
			if linksTo(s, writer) {
				return true
			}
		}
		return false
	}, 5*time.Second, 20*time.Millisecond)
}
