package relay

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/fanout"
	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/internal/metrics"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/internal/tracing"
	"github.com/bellhophq/bellhop/worker"
)

// Config configures a Relay. New applies the defaults and validates it in
// one place (validate). cmd/relay fills it from the environment; the README
// lists the variables.
type Config struct {
	// Pool is the connection pool the relay works on, shared with the
	// application that embeds it; the caller closes it, after Stop. It
	// must allow a few connections beyond the application's own: the relay
	// holds two LISTEN connections (a direct or session-pooled connection:
	// not a transaction pooler) and stamps and serves through the rest. If
	// nil, New opens a pool of its own on DatabaseURL, and Stop closes it.
	Pool *pgxpool.Pool
	// DatabaseURL is the database, as a postgres:// URL or DSN, for a pool
	// of the relay's own. Required unless Pool is set; ignored if it is.
	DatabaseURL string
	// MaxConns bounds the pool New opens on DatabaseURL. Defaults to pgx's
	// default (the greater of 4 and the number of CPUs).
	MaxConns int32
	// Schema is Bellhop's schema, as migrated. Defaults to "bellhop".
	Schema string
	// ListenAddr is where ListenAndServe serves the API. Defaults to
	// ":8080".
	ListenAddr string
	// OpsAddr, when set, is where ListenAndServe serves /healthz, /readyz
	// and /metrics, instead of on ListenAddr, so they need not be public.
	// Defaults to "" (served on ListenAddr).
	OpsAddr string
	// TLSCertFile and TLSKeyFile, both or neither, are a PEM certificate
	// (chain) and its key: ListenAndServe then serves HTTPS on ListenAddr,
	// with HTTP/2, so that a browser's tabs share one connection. New reads
	// them, and refuses to start when they do not load. OpsAddr stays plain
	// HTTP. Defaults to "" (plain HTTP).
	TLSCertFile string
	TLSKeyFile  string
	// TracerProvider gets a span for every HTTP request (named for its
	// route, such as "GET /notifications/{id}"; health and metrics
	// requests excepted) and every fan-out of events to streams
	// ("bellhop.push", linked to the spans the rows were written in), and is
	// the worker's unless Worker.TracerProvider is set. Pass
	// otel.GetTracerProvider() for the global one. Defaults to nil: no
	// spans, and requests skip the tracing middleware altogether (it costs
	// microseconds a request even when it records nothing).
	TracerProvider trace.TracerProvider

	// JWTSecret is an HS256/384/512 secret of at least MinSecretBytes.
	// Exactly one of JWTSecret, JWTPublicKeyFile and JWKSURL is required.
	JWTSecret string
	// JWTPublicKeyFile is a PEM public key file (RSA, ECDSA or Ed25519).
	JWTPublicKeyFile string
	// JWKSURL is an identity provider's JWKS. It must be https:// (http://
	// only on loopback) and needs JWTAudience: the provider's keys sign
	// every application's tokens.
	JWKSURL string
	// JWKSClient fetches JWKSURL (a proxy, a private CA). Defaults to
	// keyfunc's client.
	JWKSClient *http.Client
	// JWTIssuer, when set, is required as the tokens' iss. Defaults to ""
	// (not checked).
	JWTIssuer string
	// JWTAudience, when set, is required in the tokens' aud. Defaults to ""
	// (not checked); required with JWKSURL.
	JWTAudience string
	// JWTMaxLifetime is the longest a token may be valid, from its iat (or
	// from now, if it has none or a later one) to its exp. Defaults to
	// DefaultJWTMaxLifetime (24h).
	JWTMaxLifetime time.Duration
	// CookieName is the cookie a browser may send the token in, instead of
	// the Authorization header. Defaults to "bellhop_token".
	CookieName string
	// AllowedOrigins are the cross-site origins (scheme://host[:port]) that
	// may call the API with the cookie, and get CORS headers. Defaults to
	// none.
	AllowedOrigins []string

	// Heartbeat is how often an idle stream gets a comment, so proxies keep
	// it open. Defaults to 25s.
	Heartbeat time.Duration
	// RetryHint is the reconnect delay a stream tells EventSource. Defaults
	// to 2s.
	RetryHint time.Duration
	// StreamBuffer is the events a stream may queue before it catches up
	// from the database instead. Defaults to 32.
	StreamBuffer int
	// WriteTimeout cuts a stream whose client stopped reading. Defaults to
	// 10s.
	WriteTimeout time.Duration
	// MaxStreams bounds the open streams of this relay. Defaults to 0: no
	// bound (cmd/relay sets 20000).
	MaxStreams int
	// MaxStreamsPerRecipient bounds one recipient's open streams. Defaults
	// to 0: no bound (cmd/relay sets 16).
	MaxStreamsPerRecipient int
	// UnreadCountCap bounds the unread count (the API answers "1000+").
	// Defaults to 1000.
	UnreadCountCap int64
	// RequestTimeout bounds every request but streams. Defaults to 10s.
	RequestTimeout time.Duration

	// Fanout, if set, is the broker the replicas share (see package
	// fanout): the hub receives each batch's head and its streams'
	// recipients' events there instead of the relayed NOTIFY and a read of
	// the log, and the worker New builds publishes its stamps there. The
	// caller opens it (fanout.Open) and closes it after Stop. Defaults to
	// none: PostgreSQL alone.
	Fanout fanout.Broker

	// Worker configures the worker New builds and runs with the relay: the
	// River jobs that stamp committed rows into relay_log, and prune.
	// Schema and Logger default to the relay's; Pusher and Registerer are
	// the relay itself. Ignored with NoWorker.
	Worker worker.Config
	// NoWorker makes New build the hub and the HTTP API only: the caller
	// builds the worker, with the relay as its Pusher and Registerer, and
	// attaches it (see Attach; cmd/relay does so). Defaults to false.
	NoWorker bool
}

// validate applies the defaults to c and checks it: the one place that does.
func (c *Config) validate() error {
	if c.Pool == nil && c.DatabaseURL == "" {
		return errors.New("Config.DatabaseURL or Config.Pool is required: a postgres:// URL such as postgres://user:pass@host:5432/db (a direct or session-pooled connection: the relay LISTENs)")
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("Config.MaxConns=%d must not be negative", c.MaxConns)
	}
	if c.Schema == "" {
		c.Schema = sqlq.DefaultSchema
	}
	if err := sqlq.CheckSchema(c.Schema); err != nil {
		return fmt.Errorf("Config.Schema: %w", err)
	}
	if c.ListenAddr == "" {
		c.ListenAddr = ":8080"
	}
	if c.CookieName == "" {
		c.CookieName = "bellhop_token"
	}
	if c.JWTMaxLifetime < 0 {
		return fmt.Errorf("Config.JWTMaxLifetime=%s must be positive, e.g. 1h (the default is %s)", c.JWTMaxLifetime, DefaultJWTMaxLifetime)
	}
	c.JWTMaxLifetime = positive(c.JWTMaxLifetime, DefaultJWTMaxLifetime)
	c.Heartbeat = positive(c.Heartbeat, 25*time.Second)
	c.RetryHint = positive(c.RetryHint, 2*time.Second)
	c.RequestTimeout = positive(c.RequestTimeout, 10*time.Second)
	c.WriteTimeout = positive(c.WriteTimeout, 10*time.Second)
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = 32
	}
	if c.MaxStreams < 0 || c.MaxStreamsPerRecipient < 0 {
		return fmt.Errorf("Config.MaxStreams=%d and Config.MaxStreamsPerRecipient=%d must not be negative (0: no bound)", c.MaxStreams, c.MaxStreamsPerRecipient)
	}
	if c.UnreadCountCap <= 0 {
		c.UnreadCountCap = 1000
	}
	if c.Worker.Schema == "" {
		c.Worker.Schema = c.Schema
	}
	if c.Worker.Schema != c.Schema {
		return fmt.Errorf("Config.Worker.Schema=%q differs from Config.Schema=%q", c.Worker.Schema, c.Schema)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("Config.TLSCertFile and Config.TLSKeyFile go together: set both (a PEM certificate and its key) or neither")
	}
	if c.Worker.TracerProvider == nil {
		c.Worker.TracerProvider = c.TracerProvider
	}
	return nil
}

// queries are the hub's and the stream's SQL.
type queries struct {
	head, resume, tail, recipients, replay, backlogPlan, backlog, register string
}

//go:embed sql/*.sql
var queryFiles embed.FS

// Relay is one relay process: the hub that fans relayed events out to
// streams, the HTTP API, and, unless Config.NoWorker, the worker.
type Relay struct {
	cfg     Config
	pool    *pgxpool.Pool
	ownPool bool // New opened pool: Stop closes it
	worker  Worker
	hub     *hub
	inbox   *inbox.Inbox
	auth    *authenticator
	metrics *metrics.Metrics
	tracer  trace.Tracer
	tls     *tls.Config // nil: plain HTTP
	log     *slog.Logger
	q       queries
	handler http.Handler
	ops     http.Handler
	// patterns are the routes of handler and ops (route).
	patterns []string
	cancel   context.CancelFunc
	// stopAuth ends the JWKS refresh, if any.
	stopAuth context.CancelFunc
	done     chan struct{}
}

// Worker is what a Relay starts, stops and checks beside its hub: a
// *worker.Worker.
type Worker interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Ready() error
}

// New checks cfg, connects to the database (unless cfg.Pool is set) and
// builds a Relay that logs to log (nil: slog.Default()), with its worker
// unless cfg.NoWorker. Start runs it.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Relay, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The JWKS refresh lives as long as the relay: Stop ends it.
	authCtx, stopAuth := context.WithCancel(context.WithoutCancel(ctx))
	r, err := connect(ctx, authCtx, cfg, log)
	if err != nil {
		stopAuth()
		return nil, err
	}
	r.stopAuth = stopAuth
	return r, nil
}

func connect(ctx, authCtx context.Context, cfg Config, log *slog.Logger) (*Relay, error) {
	tlsConfig, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(authCtx, cfg)
	if err != nil {
		return nil, err
	}
	pool, own := cfg.Pool, false
	if pool == nil {
		pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("Config.DatabaseURL is not a valid PostgreSQL URL: %w", err)
		}
		if cfg.MaxConns > 0 {
			pcfg.MaxConns = cfg.MaxConns
		}
		pool, err = pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return nil, fmt.Errorf("connect to Config.DatabaseURL: %w", err)
		}
		own = true
	}
	r, err := build(pool, cfg, auth, log)
	if err != nil {
		if own {
			pool.Close()
		}
		return nil, err
	}
	r.ownPool = own
	r.tls = tlsConfig
	if !cfg.NoWorker {
		wcfg := cfg.Worker
		if wcfg.Logger == nil {
			wcfg.Logger = log
		}
		wcfg.Pusher, wcfg.Registerer = r, r.Registry()
		if wcfg.Fanout == nil {
			wcfg.Fanout = cfg.Fanout
		}
		w, err := worker.New(pool, wcfg)
		if err != nil {
			if own {
				pool.Close()
			}
			return nil, err
		}
		r.Attach(w)
	}
	return r, nil
}

func build(pool *pgxpool.Pool, cfg Config, auth *authenticator, log *slog.Logger) (*Relay, error) {
	m := metrics.New()
	in, err := inbox.New(pool, inbox.Config{Schema: cfg.Schema, CountCap: cfg.UnreadCountCap})
	if err != nil {
		return nil, err
	}
	set, err := sqlq.Load(queryFiles, cfg.Schema)
	if err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, pool: pool, inbox: in, auth: auth, metrics: m, log: log,
		tracer: tracing.Tracer(cfg.TracerProvider, "github.com/bellhophq/bellhop/relay")}
	r.q = queries{head: set.Get("Head"), resume: set.Get("Resume"), tail: set.Get("Tail"), recipients: set.Get("Recipients"), replay: set.Get("Replay"),
		backlogPlan: set.Get("BacklogPlan"), backlog: set.Get("Backlog"), register: set.Get("RegisterListener")}
	if err := set.Err(); err != nil {
		return nil, err
	}
	m.RegisterBacklog(r.backlog, log)
	r.hub = newHub(pool, sqlq.Channel(cfg.Schema, "relayed"), inbox.PreferencesChannel(cfg.Schema), &r.q, cfg.StreamBuffer, m, r.tracer, log)
	r.hub.fanout = cfg.Fanout
	r.hub.listener.OnConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, r.q.register, sqlq.ListenerLock, cfg.Schema, sqlq.Channel(cfg.Schema, "relayed"), joinedNote)
		return err
	}
	r.hub.joined = func() {
		if w, ok := r.worker.(interface{ ListenerJoined() }); ok {
			w.ListenerJoined()
		}
	}
	if r.handler, err = r.routes(); err != nil {
		return nil, err
	}
	r.ops = r.opsHandler()
	return r, nil
}

// Attach makes w part of the relay: Start starts it after the hub, Stop
// stops it, and Ready (/readyz) checks it. Call it before Start, once; New
// attaches the worker it builds. By hand (with Config.NoWorker):
//
//	r, err := relay.New(ctx, relay.Config{Pool: pool, NoWorker: true, ...}, log)
//	w, err := worker.New(pool, worker.Config{Schema: ..., Pusher: r, Registerer: r.Registry()})
//	r.Attach(w)
func (r *Relay) Attach(w Worker) { r.worker = w }

// Stamped is the worker's hand-over (worker.Pusher): the hub pushes a
// stamp's events as soon as they commit, unless it misses events up to
// after, the head before them (another replica's): then it reads them all
// in order from the table.
func (r *Relay) Stamped(ctx context.Context, after int64, events []bellhoptype.Event) {
	r.hub.stamped(ctx, after, events)
}

// StampStarted and StampEnded bracket each of the worker's stamps
// (worker.StampObserver): the hub puts off the relayed NOTIFYs that come
// meanwhile, most likely the stamp's own, whose events Stamped pushes
// without a read.
func (r *Relay) StampStarted() { r.hub.stampStarted() }

// StampEnded: see StampStarted.
func (r *Relay) StampEnded() { r.hub.stampEnded() }

// ListenerPID is the server pid of the hub's LISTEN connection, 0 while it
// has none (worker.Listening): the worker's stamps leave it out when they
// ask whether another process listens on the relayed channel.
func (r *Relay) ListenerPID() uint32 { return r.hub.listener.PID() }

// Floor is the highest seq the hub has pushed (worker.Pusher): stamps
// never hand out a seq at or below it.
func (r *Relay) Floor() int64 { return r.hub.cursor.Load() }

// Registry is the Prometheus registry the relay's /metrics serves; a
// worker built by hand registers its collectors there
// (worker.Config.Registerer).
func (r *Relay) Registry() *prometheus.Registry { return r.metrics.Registry }

func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Handler is the relay's HTTP API and its contract (GET /openapi.json),
// with /healthz, /readyz and /metrics unless Config.OpsAddr is set.
func (r *Relay) Handler() http.Handler { return r.handler }

// OpsHandler serves /healthz, /readyz and /metrics (ListenAndServe serves
// it on Config.OpsAddr, when set).
func (r *Relay) OpsHandler() http.Handler { return r.ops }

// Server timeouts. No route reads a request body (noBody), so a request is
// its headers: a client gets headerTimeout to send them. The server's
// ReadTimeout is only a backstop, above the request timeout, since
// net/http cancels the context of a request that outlives it; a stream
// clears the deadlines when it takes its connection (open). Idle
// keep-alive connections stay longer than the 60 s idle timeout of common
// load balancers (AWS ALB, nginx upstreams): a backend that closes first
// makes them answer 502.
const (
	headerTimeout = 5 * time.Second
	idleTimeout   = 2 * time.Minute
)

// NewServer is an http.Server for h with the relay's timeouts, and TLS
// when Config.TLSCertFile is set (serve it with ListenAndServeTLS("", "")
// or ServeTLS(l, "", "")).
func (r *Relay) NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		TLSConfig:         r.tls.Clone(),
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       r.cfg.RequestTimeout + headerTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
}

// Pool is the relay's connection pool.
func (r *Relay) Pool() *pgxpool.Pool { return r.pool }

// Start starts the hub and the attached worker.
func (r *Relay) Start(ctx context.Context) error {
	if err := r.hub.start(ctx); err != nil {
		return err
	}
	if r.worker != nil {
		if err := r.worker.Start(ctx); err != nil {
			return err
		}
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.hub.run(hctx)
	}()
	return nil
}

// Stop ends every stream (clients reconnect and resume), stops the hub and
// the attached worker, and closes the pool if New opened it (not
// Config.Pool).
func (r *Relay) Stop(ctx context.Context) error {
	r.hub.close()
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
	var err error
	if r.worker != nil {
		err = r.worker.Stop(ctx)
	}
	if r.ownPool {
		r.pool.Close()
	}
	if r.stopAuth != nil {
		r.stopAuth()
	}
	return err
}

// Ready reports why the relay is not ready, or nil.
func (r *Relay) Ready(ctx context.Context) error {
	if r.worker == nil {
		return errors.New("no worker attached: nothing stamps committed rows")
	}
	if err := r.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	if !r.hub.listener.Connected() {
		return errors.New("relayed listener is not connected")
	}
	return r.worker.Ready()
}

// ListenAndServe serves the API on cfg.ListenAddr until ctx ends, then shuts
// down gracefully: streams are told to reconnect, River stops cleanly.
//
// It binds both addresses before it starts anything: an address that is
// taken or malformed is an error naming it, and nothing was started.
func (r *Relay) ListenAndServe(ctx context.Context) error {
	srv := r.NewServer(r.cfg.ListenAddr, r.handler)
	ln, err := net.Listen("tcp", listenAddr(r.cfg.ListenAddr))
	if err != nil {
		return fmt.Errorf("listen on Config.ListenAddr %s: %w", r.cfg.ListenAddr, err)
	}
	defer ln.Close()
	var opsLn net.Listener
	if r.cfg.OpsAddr != "" {
		if opsLn, err = net.Listen("tcp", listenAddr(r.cfg.OpsAddr)); err != nil {
			return fmt.Errorf("listen on Config.OpsAddr %s: %w", r.cfg.OpsAddr, err)
		}
		defer opsLn.Close()
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() {
		if r.tls != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	if opsLn != nil {
		opsSrv := r.NewServer(r.cfg.OpsAddr, r.ops)
		opsSrv.TLSConfig = nil
		go func() {
			if err := opsSrv.Serve(opsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve Config.OpsAddr %s: %w", r.cfg.OpsAddr, err)
			}
		}()
		defer opsSrv.Close()
	}
	r.log.Info("relay serving", "addr", r.cfg.ListenAddr, "tls", r.tls != nil, "ops_addr", r.cfg.OpsAddr, "schema", r.cfg.Schema, "wake_mode", r.cfg.Worker.WakeMode)
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.hub.close() // streams end first, or Shutdown would wait for them
	if serr := srv.Shutdown(shutdown); serr != nil && err == nil {
		err = serr
	}
	if serr := r.Stop(shutdown); serr != nil && err == nil {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// listenAddr is addr as net/http's ListenAndServe reads it: empty is ":http".
func listenAddr(addr string) string {
	if addr == "" {
		return ":http"
	}
	return addr
}
