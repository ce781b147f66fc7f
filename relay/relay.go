package relay

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only on BELLHOP_PPROF_ADDR
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/internal/metrics"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/worker"
)

// Config is the relay's configuration. cmd/relay reads it from the
// environment (the env tags); the README documents every variable.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL"`
	ListenAddr  string `env:"BELLHOP_LISTEN_ADDR, default=:8080"`
	Schema      string `env:"BELLHOP_SCHEMA, default=bellhop"`

	JWTSecret        string   `env:"BELLHOP_JWT_SECRET"`
	JWTPublicKeyFile string   `env:"BELLHOP_JWT_PUBLIC_KEY_FILE"`
	JWKSURL          string   `env:"BELLHOP_JWKS_URL"`
	JWTIssuer        string   `env:"BELLHOP_JWT_ISSUER"`
	JWTAudience      string   `env:"BELLHOP_JWT_AUDIENCE"`
	CookieName       string   `env:"BELLHOP_COOKIE_NAME, default=bellhop_token"`
	AllowedOrigins   []string `env:"BELLHOP_ALLOWED_ORIGINS"`

	// JWKSURL must be https:// (http:// only on loopback) and needs
	// JWTAudience: an identity provider's keys sign every application's
	// tokens. JWKSClient fetches it (a proxy, a private CA); defaults to
	// keyfunc's client.
	JWKSClient *http.Client `env:",noinit"`
	// JWTMaxLifetime is the longest a token may be valid, from its iat (or
	// from now, if it has none or a later one) to its exp. Defaults to 24h.
	JWTMaxLifetime time.Duration `env:"BELLHOP_JWT_MAX_LIFETIME, default=24h"`

	Heartbeat    time.Duration `env:"BELLHOP_HEARTBEAT, default=25s"`
	RetryHint    time.Duration `env:"BELLHOP_RETRY_HINT, default=2s"`
	StreamBuffer int           `env:"BELLHOP_STREAM_BUFFER, default=32"`
	// WriteTimeout cuts a stream whose client stopped reading.
	WriteTimeout time.Duration `env:"BELLHOP_WRITE_TIMEOUT, default=10s"`
	// MaxStreams and MaxStreamsPerRecipient bound open streams (0: no bound).
	MaxStreams             int   `env:"BELLHOP_MAX_STREAMS, default=20000"`
	MaxStreamsPerRecipient int   `env:"BELLHOP_MAX_STREAMS_PER_RECIPIENT, default=16"`
	UnreadCountCap         int64 `env:"BELLHOP_UNREAD_COUNT_CAP, default=1000"`
	// RequestTimeout bounds every request but streams.
	RequestTimeout time.Duration `env:"BELLHOP_REQUEST_TIMEOUT, default=10s"`

	WakeMode     string        `env:"BELLHOP_WAKE_MODE, default=adaptive"`
	PollInterval time.Duration `env:"BELLHOP_POLL_INTERVAL, default=5ms"`
	// BusyPoll is the pause between stamps while rows keep coming: shorter
	// is lower latency, longer batches more rows per WAL flush.
	BusyPoll time.Duration `env:"BELLHOP_BUSY_POLL, default=1ms"`
	// DurableStamps makes every stamp wait for its own WAL flush (see
	// Durability in worker/sql/worker.sql).
	DurableStamps bool          `env:"BELLHOP_DURABLE_STAMPS"`
	SweepInterval time.Duration `env:"BELLHOP_SWEEP_INTERVAL, default=1s"`
	Retention     time.Duration `env:"BELLHOP_RETENTION, default=2160h"`
	ReplayWindow  time.Duration `env:"BELLHOP_REPLAY_WINDOW, default=24h"`
	PruneInterval time.Duration `env:"BELLHOP_PRUNE_INTERVAL, default=1m"`
	MaxConns      int32         `env:"BELLHOP_DB_MAX_CONNS, default=16"`
	// PprofAddr, when set, serves net/http/pprof there (keep it private).
	PprofAddr string `env:"BELLHOP_PPROF_ADDR"`
	// OpsAddr, when set, serves /healthz, /readyz and /metrics there
	// instead of on ListenAddr, so they need not be public.
	OpsAddr string `env:"BELLHOP_OPS_ADDR"`
}

// queries are the hub's and the stream's SQL.
type queries struct {
	head, resume, tail, replay string
}

//go:embed sql/*.sql
var queryFiles embed.FS

// Relay is one relay process: River with the relay's workers, the hub and
// the HTTP API.
type Relay struct {
	cfg     Config
	pool    *pgxpool.Pool
	worker  *worker.Relay
	hub     *hub
	inbox   *inbox.Inbox
	auth    *authenticator
	metrics *metrics.Metrics
	log     *slog.Logger
	q       queries
	handler http.Handler
	ops     http.Handler
	cancel  context.CancelFunc
	// stopAuth ends the JWKS refresh, if any.
	stopAuth context.CancelFunc
	done     chan struct{}
}

// New checks cfg, connects to the database and builds a Relay that logs to
// log (nil: slog.Default()). Start runs it.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Relay, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.Schema == "" {
		cfg.Schema = sqlq.DefaultSchema
	}
	if err := sqlq.CheckSchema(cfg.Schema); err != nil {
		return nil, fmt.Errorf("BELLHOP_SCHEMA: %w", err)
	}
	if cfg.CookieName == "" {
		cfg.CookieName = "bellhop_token"
	}
	cfg.Heartbeat = positive(cfg.Heartbeat, 25*time.Second)
	cfg.RetryHint = positive(cfg.RetryHint, 2*time.Second)
	cfg.RequestTimeout = positive(cfg.RequestTimeout, 10*time.Second)
	cfg.WriteTimeout = positive(cfg.WriteTimeout, 10*time.Second)
	if cfg.StreamBuffer <= 0 {
		cfg.StreamBuffer = 32
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
	auth, err := newAuthenticator(authCtx, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL is required, e.g. postgres://user:pass@host:5432/db (a direct or session-pooled connection: the relay LISTENs)")
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL: %w", err)
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	r, err := build(pool, cfg, auth, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return r, nil
}

func build(pool *pgxpool.Pool, cfg Config, auth *authenticator, log *slog.Logger) (*Relay, error) {
	m := metrics.New()
	var h *hub // the stamp pushes through it; set below, before Start
	w, err := worker.New(pool, worker.Config{
		Schema:        cfg.Schema,
		WakeMode:      worker.WakeMode(cfg.WakeMode),
		PollInterval:  cfg.PollInterval,
		BusyPoll:      cfg.BusyPoll,
		SweepInterval: cfg.SweepInterval,
		Retention:     cfg.Retention,
		ReplayWindow:  cfg.ReplayWindow,
		PruneInterval: cfg.PruneInterval,
		Logger:        log,
		Metrics:       m,
		Stamped:       func(after int64, es []worker.Entry) { h.stamped(after, es) },
		Floor:         func() int64 { return h.cursor.Load() },
		DurableStamps: cfg.DurableStamps,
	})
	if err != nil {
		return nil, fmt.Errorf("BELLHOP_WAKE_MODE or related: %w", err)
	}
	in, err := inbox.New(pool, inbox.Config{Schema: cfg.Schema, CountCap: cfg.UnreadCountCap})
	if err != nil {
		return nil, err
	}
	set, err := sqlq.Load(queryFiles, cfg.Schema)
	if err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, pool: pool, worker: w, inbox: in, auth: auth, metrics: m, log: log}
	r.q = queries{head: set.Get("Head"), resume: set.Get("Resume"), tail: set.Get("Tail"), replay: set.Get("Replay")}
	if err := set.Err(); err != nil {
		return nil, err
	}
	h = newHub(pool, sqlq.Channel(cfg.Schema, "relayed"), &r.q, cfg.StreamBuffer, m, log)
	r.hub = h
	r.handler = r.routes()
	r.ops = r.opsHandler()
	return r, nil
}

func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Handler is the relay's HTTP API, with /healthz, /readyz and /metrics
// unless Config.OpsAddr is set.
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

// NewServer is an http.Server for h with the relay's timeouts.
func (r *Relay) NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
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

// Start starts the hub and the workers.
func (r *Relay) Start(ctx context.Context) error {
	if err := r.hub.start(ctx); err != nil {
		return err
	}
	if err := r.worker.Start(ctx); err != nil {
		return err
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
// River, and closes the pool.
func (r *Relay) Stop(ctx context.Context) error {
	r.hub.close()
	if r.cancel != nil {
		r.cancel()
		<-r.done
	}
	err := r.worker.Stop(ctx)
	r.pool.Close()
	if r.stopAuth != nil {
		r.stopAuth()
	}
	return err
}

// Ready reports why the relay is not ready, or nil.
func (r *Relay) Ready(ctx context.Context) error {
	if err := r.pool.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	if !r.hub.listener.Connected() {
		return errors.New("relayed listener is not connected")
	}
	return r.worker.Ready()
}

// ListenerPIDs are the backend pids of the relay's LISTEN connections, for
// fault drills.
func (r *Relay) ListenerPIDs() []uint32 {
	return []uint32{r.hub.listener.PID(), r.worker.PendingListenerPID()}
}

// ListenAndServe serves the API on cfg.ListenAddr until ctx ends, then shuts
// down gracefully: streams are told to reconnect, River stops cleanly.
func (r *Relay) ListenAndServe(ctx context.Context) error {
	srv := r.NewServer(r.cfg.ListenAddr, r.handler)
	if err := r.Start(ctx); err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
	if r.cfg.OpsAddr != "" {
		opsSrv := r.NewServer(r.cfg.OpsAddr, r.ops)
		go func() {
			if err := opsSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("BELLHOP_OPS_ADDR %s: %w", r.cfg.OpsAddr, err)
			}
		}()
		defer opsSrv.Close()
	}
	if r.cfg.PprofAddr != "" {
		// DefaultServeMux holds net/http/pprof's handlers, and nothing else.
		pprofSrv := &http.Server{Addr: r.cfg.PprofAddr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := pprofSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.log.Warn("pprof server", "addr", r.cfg.PprofAddr, "err", err)
			}
		}()
		defer pprofSrv.Close()
	}
	r.log.Info("relay serving", "addr", r.cfg.ListenAddr, "ops_addr", r.cfg.OpsAddr, "schema", r.cfg.Schema, "wake_mode", r.cfg.WakeMode)
	var err error
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
