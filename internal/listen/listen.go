// Package listen keeps a LISTEN connection open on one channel for as long
// as its context lives, and tells its owner when to re-read.
//
// It wraps pgxlisten with what the relay needs around it: the connection is
// hijacked from a pool (so the pool's lifetime rules never close it),
// reconnects back off exponentially, and Connected reports the state for
// readiness checks.
package listen

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"
)

// Listener listens on one channel.
type Listener struct {
	pool    *pgxpool.Pool
	channel string
	// Wake is signalled (without blocking; signals fold) on every
	// notification and after every (re)connect, when whatever was sent while
	// disconnected must be re-read.
	Wake chan struct{}
	// OnReconnect, if set, is called after every connect but the first.
	OnReconnect func()
	// OnConnect, if set, runs on every (re)connect before LISTEN and the
	// wake that follows it: to register the connection (the relay's hub
	// takes a session lock there, see sqlq.ListenerLock). If it fails,
	// the connection is closed and Run connects again.
	OnConnect func(ctx context.Context, conn *pgx.Conn) error
	// Stale, if set, tells notifications that need no wake by their
	// payload: news the waiting side already has.
	Stale func(payload string) bool
	log   *slog.Logger
	// also are further channels on the same connection (see Also).
	also map[string]func(payload string, reconnected bool)

	connected atomic.Bool
	failures  atomic.Int32
	connects  atomic.Int64
	// PID is the backend pid of the current connection (for tests and logs).
	pid atomic.Uint32
}

// New returns a Listener for channel; run it with Run.
func New(pool *pgxpool.Pool, channel string, log *slog.Logger) *Listener {
	return &Listener{pool: pool, channel: channel, Wake: make(chan struct{}, 1), log: log}
}

// Connected reports whether the LISTEN connection is up.
func (l *Listener) Connected() bool { return l.connected.Load() }

// PID is the server process id of the current connection, 0 if none.
func (l *Listener) PID() uint32 { return l.pid.Load() }

// Run listens until ctx ends.
func (l *Listener) Run(ctx context.Context) {
	pl := &pgxlisten.Listener{
		Connect:        l.connect,
		ReconnectDelay: -1, // connect backs off itself
		LogError: func(ctx context.Context, err error) {
			l.connected.Store(false)
			l.pid.Store(0)
			l.failures.Add(1)
			if ctx.Err() == nil {
				l.log.Warn("listener lost its connection", "channel", l.channel, "err", err)
			}
		},
	}
	pl.Handle(l.channel, l)
	for channel, handle := range l.also {
		pl.Handle(channel, &alsoHandler{handle: handle, main: l.channel})
	}
	_ = pl.Listen(ctx)
	l.connected.Store(false)
}

func (l *Listener) connect(ctx context.Context) (*pgx.Conn, error) {
	if n := l.failures.Load(); n > 0 {
		// 50 ms, doubling to 5 s, with jitter so replicas do not stampede a
		// database that is coming back.
		d := min(50*time.Millisecond<<min(n-1, 7), 5*time.Second)
		d = d/2 + rand.N(d/2+1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
	}
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire: %w", err)
	}
	c := conn.Hijack()
	l.pid.Store(c.PgConn().PID())
	if l.OnConnect != nil {
		if err := l.OnConnect(ctx, c); err != nil {
			_ = c.Close(ctx)
			return nil, fmt.Errorf("register the connection: %w", err)
		}
	}
	return c, nil
}

// HandleBacklog runs once LISTEN is in place after each (re)connect.
func (l *Listener) HandleBacklog(ctx context.Context, channel string, conn *pgx.Conn) error {
	l.failures.Store(0)
	l.connected.Store(true)
	if l.connects.Add(1) > 1 && l.OnReconnect != nil {
		l.OnReconnect()
	}
	l.signal()
	return nil
}

// HandleNotification handles one notification.
func (l *Listener) HandleNotification(ctx context.Context, n *pgconn.Notification, conn *pgx.Conn) error {
	if l.Stale == nil || !l.Stale(n.Payload) {
		l.signal()
	}
	return nil
}

// Also listens on channel too, on the same connection (one connection
// fewer than a Listener of its own): handle gets each notification's
// payload, and is called with reconnected after every (re)connect, when
// whatever was sent while disconnected is lost. Call it before Run.
func (l *Listener) Also(channel string, handle func(payload string, reconnected bool)) {
	if l.also == nil {
		l.also = map[string]func(string, bool){}
	}
	l.also[channel] = handle
}

type alsoHandler struct {
	handle func(payload string, reconnected bool)
	main   string
}

func (h *alsoHandler) HandleNotification(ctx context.Context, n *pgconn.Notification, conn *pgx.Conn) error {
	h.handle(n.Payload, false)
	return nil
}

// HandleBacklog also repeats the main channel's LISTEN (a no-op): pgxlisten
// listens in map order, and pg_stat_activity shows a connection's last
// statement, by which operators (and the drills) find the listener.
func (h *alsoHandler) HandleBacklog(ctx context.Context, channel string, conn *pgx.Conn) error {
	h.handle("", true)
	_, err := conn.Exec(ctx, "listen "+pgx.Identifier{h.main}.Sanitize())
	return err
}

// Kick signals Wake as a notification would.
func (l *Listener) Kick() { l.signal() }

func (l *Listener) signal() {
	select {
	case l.Wake <- struct{}{}:
	default:
	}
}
