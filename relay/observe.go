package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// unrouted is the route label of a request answered before or without a
// route: an unknown path, or a refusal by the checks every request passes
// first (CORS preflight, query string, body size).
const unrouted = "unrouted"

// streamRoute is the stream's route label: its requests are counted, not
// timed (a stream lasts as long as the client stays).
const streamRoute = "/notifications/stream"

// routeKey is the context key of a request's *routeNote.
type routeKey struct{}

// routeNote is where the route that takes a request writes its pattern,
// for the request's metrics (see instrument).
type routeNote struct{ route string }

// handle registers h for pattern on mux, and names the request after the
// pattern: its span ("GET /notifications/{id}", attribute http.route) and
// its metrics' route label (the path, "/notifications/{id}"). The innermost
// mux's pattern wins.
func handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	method, route, ok := strings.Cut(pattern, " ")
	if !ok {
		method, route = "", pattern
	}
	mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if note, ok := req.Context().Value(routeKey{}).(*routeNote); ok {
			note.route = route
		}
		span := trace.SpanFromContext(req.Context())
		if span.IsRecording() {
			m := method
			if m == "" {
				m = req.Method
			}
			span.SetName(m + " " + route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		h(w, req)
	}))
}

// instrument wraps the relay's handler: a span per request (otelhttp,
// which also takes a caller's trace context from a traceparent header),
// named by handle, but none for health and metrics; and the requests'
// metrics, counted when the status goes out (a stream when it opens, as
// its end may be hours away) and, streams excepted, timed when the
// handler returns.
func (r *Relay) instrument(next http.Handler) http.Handler {
	counted := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		note := &routeNote{}
		req = req.WithContext(context.WithValue(req.Context(), routeKey{}, note))
		code := 0
		sent := func(status int) {
			if code == 0 {
				code = status
				route := note.route
				if route == "" {
					route = unrouted
				}
				r.metrics.ObserveRequest(route, req.Method, code)
			}
		}
		w = httpsnoop.Wrap(w, httpsnoop.Hooks{
			WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
				return func(status int) {
					if status >= 200 {
						sent(status)
					}
					next(status)
				}
			},
			Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
				return func(b []byte) (int, error) {
					sent(http.StatusOK)
					return next(b)
				}
			},
			Flush: func(next httpsnoop.FlushFunc) httpsnoop.FlushFunc {
				return func() {
					sent(http.StatusOK)
					next()
				}
			},
			// A stream that takes its connection writes its own 200.
			Hijack: func(next httpsnoop.HijackFunc) httpsnoop.HijackFunc {
				return func() (net.Conn, *bufio.ReadWriter, error) {
					conn, rw, err := next()
					if err == nil {
						sent(http.StatusOK)
					}
					return conn, rw, err
				}
			},
		})
		next.ServeHTTP(w, req)
		sent(http.StatusOK) // a handler that wrote nothing answered 200
		route := note.route
		if route == "" {
			route = unrouted
		}
		if route != streamRoute {
			r.metrics.ObserveDuration(route, req.Method, code, time.Since(start))
		}
	})
	if r.cfg.TracerProvider == nil {
		return counted
	}
	return otelhttp.NewHandler(counted, "",
		otelhttp.WithTracerProvider(r.cfg.TracerProvider),
		otelhttp.WithSpanNameFormatter(func(_ string, req *http.Request) string { return req.Method }),
		otelhttp.WithFilter(func(req *http.Request) bool {
			switch req.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}))
}

// BacklogCountCap bounds the pending rows /metrics counts: each costs an
// index entry and a heap tuple (about 0.1 s at the cap, on 2 busy cores).
// bellhop_backlog_rows stops there, and the oldest age is that of the
// oldest of them.
const BacklogCountCap = 10000

// backlog reads the backlog for /metrics (metrics.Backlog): the planner
// settings and the query in one implicit transaction, one round trip.
func (r *Relay) backlog(ctx context.Context) (int64, time.Duration, error) {
	var rows int64
	var age float64
	b := &pgx.Batch{}
	b.Queue(r.q.backlogPlan)
	b.Queue(r.q.backlog, BacklogCountCap).QueryRow(func(row pgx.Row) error { return row.Scan(&rows, &age) })
	if err := r.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, 0, fmt.Errorf("read backlog: %w", err)
	}
	return rows, time.Duration(age * float64(time.Second)), nil
}

// loadTLS reads Config.TLSCertFile and TLSKeyFile, if set. HTTP/2 comes
// with net/http's TLS server (ALPN h2).
func loadTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("Config.TLSCertFile=%q and Config.TLSKeyFile=%q do not load as a PEM certificate and its key: %w", cfg.TLSCertFile, cfg.TLSKeyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
