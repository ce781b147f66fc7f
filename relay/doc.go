// Package relay pushes committed Bellhop notifications to browsers over
// Server-Sent Events and serves the inbox API: the sidecar that cmd/relay
// runs, as a library an application can embed.
//
// A Relay is a hub and an HTTP API on a PostgreSQL pool. Its worker
// (package worker: River jobs) stamps newly committed notification rows
// into relay_log, whose seq is the event id, and hands each stamp's events
// to the hub of the same process (the relay implements worker.Pusher);
// other replicas' hubs read them by seq when NOTIFY announces a new head.
// The hub fans every event out to the open streams of its recipient; a
// stream that reconnects with Last-Event-ID is replayed from the table.
// Handler serves GET /notifications/stream, the inbox routes (list, unread
// count, mark read and unread, read all, delete), GET /openapi.json (the
// contract of them all, api/openapi.yaml) and, unless Config.OpsAddr,
// /healthz, /readyz and /metrics. Requests authenticate
// with a JWT (Config.JWTSecret, JWTPublicKeyFile or JWKSURL) in the
// Authorization header or the Config.CookieName cookie.
//
// New builds everything from a Config: on Config.Pool, an application's
// own pool (the caller closes it), or on a pool of its own opened on
// Config.DatabaseURL (Stop closes it); with the worker, configured by
// Config.Worker. With Config.NoWorker the parts are assembled by hand, as
// cmd/relay does: New, then worker.New with the relay as Pusher and
// Registerer, then Attach. Start runs the hub and the worker; serve Handler
// on a server of your own (NewServer has the relay's timeouts), or call
// ListenAndServe (HTTPS with HTTP/2 when Config.TLSCertFile is set). The
// package reads no environment; cmd/relay maps the BELLHOP_* variables
// onto Config.
//
// Observability: /metrics serves the relay's Prometheus collectors (the
// backlog, read at scrape; requests by route and status; streams, replays,
// refetches) and the worker's. With Config.TracerProvider set, every
// request, stamp and fan-out gets an OpenTelemetry span; the stamp's and
// the fan-out's link to the spans the rows were written in (their
// traceparent column, which outbox.Send fills from its ctx).
//
// See Example for a relay embedded in a program, and Example_sharedPool
// for one assembled by hand on an application's pool.
package relay
