// Package worker is the relay's write-facing half: River jobs that stamp
// committed notifications (give each newly committed row version an entry
// in relay_log, whose seq is the event id: the "bellhop_relay" job), a
// safety-net sweep, and pruning; and the waker that turns the pending
// channel (or, in poll mode, a timer) into relay jobs.
//
// A Worker runs on the relay's pool and hands every stamp's events, as soon
// as they commit, to its Config.Pusher: the hub of the same process
// (relay.Relay implements Pusher). relay.New builds one unless
// relay.Config.NoWorker; cmd/relay assembles the two by hand:
//
//	r, err := relay.New(ctx, relay.Config{Pool: pool, NoWorker: true, ...}, log)
//	w, err := worker.New(pool, worker.Config{Pusher: r, Registerer: r.Registry()})
//	r.Attach(w)
//
// Wake modes decide how a committed row reaches the relay:
//
//   - adaptive (default): the writers' trigger NOTIFYs only while the wake
//     flag is up, which the relay raises when it goes idle. While busy it
//     looks for unseen rows every millisecond instead, so writers under
//     load pay nothing for NOTIFY's commit-time lock.
//   - notify: the flag stays up; every writing transaction NOTIFYs.
//   - poll: the flag stays down; the relay polls for unseen rows.
package worker

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/internal/listen"
	"github.com/bellhophq/bellhop/internal/metrics"
	"github.com/bellhophq/bellhop/internal/sqlq"
)

// WakeMode is how the relay learns of committed rows.
type WakeMode string

const (
	WakeAdaptive WakeMode = "adaptive"
	WakeNotify   WakeMode = "notify"
	WakePoll     WakeMode = "poll"
)

// queue is the River queue of the relay job; the prune job shares it.
const queue = "bellhop"

// Config configures a Worker. New applies the defaults and validates it
// (see validate); a zero Config is valid.
type Config struct {
	// Schema is Bellhop's schema, as migrated. Defaults to "bellhop".
	Schema string
	// WakeMode is how the worker learns of committed rows (see the package
	// documentation). Defaults to WakeAdaptive.
	WakeMode WakeMode
	// PollInterval is how often poll mode looks for pending rows. Defaults
	// to 5ms.
	PollInterval time.Duration
	// BusyPoll is the pause between stamps while rows keep coming: shorter
	// is lower latency, longer batches more rows per WAL flush. Defaults to
	// 1ms.
	BusyPoll time.Duration
	// Linger is how long a relay job keeps polling after the last row it
	// found before it goes idle, raising the wake flag in adaptive mode.
	// Defaults to 20ms.
	Linger time.Duration
	// BatchSize bounds the rows stamped per transaction. Defaults to 1000.
	BatchSize int
	// SweepInterval is the safety net: a relay job this often whatever
	// happens. It also pushes the notifications whose expiry has come (as
	// expired events), so it bounds how late those come. Defaults to 1s.
	SweepInterval time.Duration
	// Retention is how long read and archived notifications are kept,
	// from when they were read or archived. Defaults to 90 days (2160h).
	Retention time.Duration
	// ReplayWindow is how long deleted, live-only and expired rows, and the
	// log entries of any row, are kept for clients resuming with
	// Last-Event-ID. Defaults to 24h.
	ReplayWindow time.Duration
	// PruneInterval is how often the prune job runs. Defaults to 1m.
	PruneInterval time.Duration
	// Logger gets the worker's and River's warnings. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Registerer gets the worker's Prometheus collectors
	// (bellhop_stamp_batch_rows, bellhop_pruned_rows_total and
	// bellhop_listener_reconnects_total{channel="pending"}): pass
	// relay.Relay.Registry() and the relay's /metrics serves them. Defaults
	// to none.
	Registerer prometheus.Registerer
	// Pusher, if set, is the process's own hub (a *relay.Relay): it gets
	// every stamp's events as soon as they commit. Defaults to none: the
	// hubs of every process then learn of them from the relayed NOTIFY.
	Pusher Pusher
	// DurableStamps makes every stamp wait for its WAL flush, whatever the
	// clock and whatever synchronous_commit the server or the role defaults
	// to (see Durability in sql/worker.sql). Defaults to false.
	DurableStamps bool
}

// validate applies the defaults and checks c: the one place that does.
func (c *Config) validate() error {
	if c.Schema == "" {
		c.Schema = sqlq.DefaultSchema
	}
	if err := sqlq.CheckSchema(c.Schema); err != nil {
		return fmt.Errorf("Config.Schema: %w", err)
	}
	switch c.WakeMode {
	case "":
		c.WakeMode = WakeAdaptive
	case WakeAdaptive, WakeNotify, WakePoll:
	default:
		return fmt.Errorf("Config.WakeMode=%q is not one of adaptive, notify, poll", c.WakeMode)
	}
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&c.PollInterval, 5*time.Millisecond)
	set(&c.BusyPoll, time.Millisecond)
	set(&c.Linger, 20*time.Millisecond)
	set(&c.SweepInterval, time.Second)
	set(&c.Retention, 90*24*time.Hour)
	set(&c.ReplayWindow, 24*time.Hour)
	set(&c.PruneInterval, time.Minute)
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Pusher is what a stamp hands its events to: the hub of the same process
// (relay.Relay implements it), which pushes them without waiting for the
// relayed NOTIFY and reading them back.
type Pusher interface {
	// Stamped gets the events of every stamp that found rows, in seq
	// order, once they are committed, and the head before them (after):
	// a hub whose cursor is below after missed another replica's events
	// and must read them first.
	Stamped(after int64, events []bellhoptype.Event)
	// Floor is the highest seq the hub has pushed: stamps never hand out
	// a seq at or below it.
	Floor() int64
}

// Worker runs River with the relay's job workers (stamping and pruning) and
// the waker that turns the pending channel, or a timer, into relay jobs.
type Worker struct {
	cfg            Config
	pool           *pgxpool.Pool
	river          *river.Client[pgx.Tx]
	listener       *listen.Listener // nil in poll mode
	metrics        *metrics.Worker
	log            *slog.Logger
	relayedChannel string
	wakeSeq        string
	q              struct {
		hasPending, lock, stamp, durability, setWake, snapshot, settled, prune, forget, expire string
	}

	// busy is up while a relay job of this process may still stamp what is
	// pending; queued while a job this process inserted has not started.
	busy   atomic.Int32
	queued atomic.Int64 // unix nanos of the insert, 0 if none
	// draining is up while a relay job of this process runs its loop;
	// again asks that loop (or the next job) to look once more.
	draining atomic.Bool
	again    atomic.Bool
	running  atomic.Bool
	cancel   context.CancelFunc
	done     chan struct{}
}

//go:embed sql/*.sql
var queryFiles embed.FS

// New builds a Worker on pool; Start runs it.
func New(pool *pgxpool.Pool, cfg Config) (*Worker, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	set, err := sqlq.Load(queryFiles, cfg.Schema)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	m, err := metrics.NewWorker(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	r := &Worker{
		cfg:            cfg,
		pool:           pool,
		metrics:        m,
		log:            cfg.Logger,
		relayedChannel: sqlq.Channel(cfg.Schema, "relayed"),
		wakeSeq:        pgx.Identifier{cfg.Schema, "relay_wake"}.Sanitize(),
	}
	r.q.hasPending = set.Get("HasPending")
	r.q.lock = set.Get("Lock")
	r.q.stamp = set.Get("Stamp")
	r.q.durability = set.Get("Durability")
	r.q.setWake = set.Get("SetWake")
	r.q.snapshot = set.Get("Snapshot")
	r.q.settled = set.Get("Settled")
	r.q.prune = set.Get("Prune")
	r.q.forget = set.Get("Forget")
	r.q.expire = set.Get("Expire")
	if err := set.Err(); err != nil {
		return nil, err
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &relayWorker{r: r})
	river.AddWorker(workers, &pruneWorker{r: r})
	r.river, err = river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: cfg.Schema,
		Queues: map[string]river.QueueConfig{queue: {MaxWorkers: 4}},
		// River's defaults (100 ms, 1 s) are tuned for throughput; a relay
		// job must start within a millisecond or two of its insert.
		FetchCooldown:     time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		// Relay jobs are bookkeeping, thousands an hour; nothing in them is
		// worth keeping for a day.
		CompletedJobRetentionPeriod: time.Minute,
		Workers:                     workers,
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(cfg.SweepInterval),
				func() (river.JobArgs, *river.InsertOpts) { return relayArgs{Sweep: true}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.PruneInterval),
				func() (river.JobArgs, *river.InsertOpts) { return pruneArgs{}, nil }, nil),
		},
		// River reports every job at info; the relay runs thousands.
		Logger: slog.New(warnAndAbove{cfg.Logger.Handler()}).With("component", "river"),
	})
	if err != nil {
		return nil, fmt.Errorf("worker: river client: %w", err)
	}
	if cfg.WakeMode != WakePoll {
		r.listener = listen.New(pool, sqlq.Channel(cfg.Schema, "pending"), cfg.Logger)
		r.listener.OnReconnect = func() { r.metrics.ListenerReconnects.WithLabelValues("pending").Inc() }
	}
	return r, nil
}

// Start sets the wake flag for the mode, then starts River and the waker.
func (r *Worker) Start(ctx context.Context) error {
	if err := r.setWake(ctx, r.cfg.WakeMode == WakeNotify); err != nil {
		return err
	}
	if err := r.river.Start(ctx); err != nil {
		return fmt.Errorf("worker: start river: %w", err)
	}
	r.running.Store(true)
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.wake(ctx)
	}()
	return nil
}

// Stop stops the waker, then River, letting running jobs finish.
func (r *Worker) Stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	<-r.done
	r.running.Store(false)
	if err := r.river.Stop(ctx); err != nil {
		return fmt.Errorf("worker: stop river: %w", err)
	}
	return nil
}

// Ready reports whether River runs and, unless polling, the pending
// listener is connected.
func (r *Worker) Ready() error {
	if !r.running.Load() {
		return errors.New("river is not running")
	}
	if r.listener != nil && !r.listener.Connected() {
		return errors.New("pending listener is not connected")
	}
	return nil
}

// wake turns notifications, or the poll timer, into relay jobs.
func (r *Worker) wake(ctx context.Context) {
	if r.listener == nil {
		t := time.NewTicker(r.cfg.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if r.busy.Load() > 0 || r.recentlyQueued() {
					continue
				}
				if ok, err := r.hasPending(ctx); err != nil {
					r.log.Warn("poll for pending rows", "err", err)
				} else if ok {
					r.enqueue(ctx)
				}
			}
		}
	}
	go r.listener.Run(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.listener.Wake:
			if r.cfg.WakeMode == WakeAdaptive {
				// Busy from here: writers stop paying for NOTIFY.
				if err := r.setWake(ctx, false); err != nil {
					r.log.Warn("lower wake flag", "err", err)
				}
			}
			if r.busy.Load() == 0 {
				r.enqueue(ctx)
			}
		}
	}
}

// recentlyQueued reports whether this process inserted a relay job that has
// not started yet; after a second it assumes another replica took it.
func (r *Worker) recentlyQueued() bool {
	at := r.queued.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < time.Second
}

func (r *Worker) enqueue(ctx context.Context) {
	r.queued.Store(time.Now().UnixNano())
	if _, err := r.river.Insert(ctx, relayArgs{}, nil); err != nil && ctx.Err() == nil {
		r.log.Warn("insert relay job", "err", err)
	}
}

// warnAndAbove passes on warnings and errors only.
type warnAndAbove struct{ slog.Handler }

func (h warnAndAbove) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
