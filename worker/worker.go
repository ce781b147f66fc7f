// Package worker is the relay's write-facing half: River jobs that stamp
// committed notifications (give each newly committed row version an entry
// in relay_log, whose seq is the event id: the "bellhop_relay" job), a
// safety-net sweep, and pruning; and the waker that turns the pending
// channel (or, in poll mode, a timer) into relay jobs. With
// Config.WebhookURL, it also posts the webhook channel: the stamp inserts a
// "bellhop_webhook" job (and a delayed "bellhop_escalate" one) in its own
// transaction for the rows that need one (see webhook.go).
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
//     load pay nothing for NOTIFY's commit-time lock. Between the two, a
//     relay job that went idle stays parked: the flag up, it stamps as
//     each NOTIFY comes, and polls again only once commits come fast
//     (see park in jobs.go).
//   - notify: the flag stays up; every writing transaction NOTIFYs.
//   - poll: the flag stays down; the relay polls for unseen rows.
//   - logical: the flag stays down; the relay follows the commits that write
//     notification rows by logical decoding (logical.go) and stamps when one
//     is decoded, adaptive meanwhile whenever its stream is not running.
package worker

import (
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/fanout"
	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/internal/listen"
	"github.com/bellhophq/bellhop/internal/metrics"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/internal/tracing"
)

// WakeMode is how the relay learns of committed rows.
type WakeMode string

const (
	WakeAdaptive WakeMode = "adaptive"
	WakeNotify   WakeMode = "notify"
	WakePoll     WakeMode = "poll"
	// WakeLogical follows the commits that write notification rows by
	// logical decoding (see logical.go): no NOTIFY for writers, no poll
	// waiting for a row. It needs wal_level = logical and a role with the
	// REPLICATION attribute; while its stream is down the worker runs as in
	// WakeAdaptive.
	WakeLogical WakeMode = "logical"
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
	// Logger gets the worker's logs and River's warnings and errors;
	// River's routine info lines too when Logger is enabled at debug.
	// Defaults to slog.Default().
	Logger *slog.Logger
	// Registerer gets the worker's Prometheus collectors
	// (bellhop_stamp_batch_rows, bellhop_pruned_rows_total,
	// bellhop_webhooks_total and
	// bellhop_listener_reconnects_total{channel="pending"}): pass
	// relay.Relay.Registry() and the relay's /metrics serves them. Defaults
	// to none.
	Registerer prometheus.Registerer
	// Pusher, if set, is the process's own hub (a *relay.Relay): it gets
	// every stamp's events as soon as they commit. Defaults to none: the
	// hubs of every process then learn of them from the relayed NOTIFY.
	Pusher Pusher
	// Fanout, if set, carries each stamp's events to every replica's hub
	// through a broker instead of the relayed NOTIFY (see package fanout):
	// the worker publishes each committed stamp there, and announces it by
	// NOTIFY only while the broker is down or when a publish fails. Pass
	// the relay's (relay.Config.Fanout): one connection per process.
	// Defaults to none.
	Fanout fanout.Broker
	// DurableStamps makes every stamp wait for its WAL flush, whatever the
	// clock and whatever synchronous_commit the server or the role defaults
	// to (see Durability in sql/worker.sql). Defaults to false.
	DurableStamps bool
	// LookBeforeStamp makes a busy relay, after a stamp that found
	// nothing, look first (HasPending: about 0.05 ms of database CPU
	// against an empty stamp's 0.13 ms) and stamp only when rows are
	// there. The rows a look finds wait one round trip more: measured on 2
	// cores, p50 1.10 → 1.48 ms at 100 events/s, and no saving that
	// outlasts the runs' spread in database CPU or writer throughput
	// (docs/benchmarks.md). Defaults to false: stamp on every poll.
	LookBeforeStamp bool
	// ParkRate is the commit rate (per second) under which an adaptive
	// relay job that went idle stays parked, the wake flag up, stamping as
	// each NOTIFY comes (see park in jobs.go), instead of ending: once it
	// stamps commits faster (ParkRate x Linger of them within Linger), it
	// lowers the flag and polls again; a polling drain goes idle, and
	// parks, once it stamps under half that rate (or after Linger with
	// nothing pending, as always). Higher keeps more rates parked:
	// lower latency and fewer polls, but writers pay for a NOTIFY per
	// transaction up to that rate, and notifying commits serialize.
	// Defaults to 400; negative turns parking off (the job ends when it
	// goes idle).
	ParkRate int
	// TracerProvider gets a span for every stamp that stamped rows
	// ("bellhop.stamp"), linked to the spans the rows were written in (their
	// traceparent column); the Pusher's push is its child. Pass
	// otel.GetTracerProvider() for the global one. Defaults to nil: no
	// spans (relay.New passes the relay's).
	TracerProvider trace.TracerProvider

	// WebhookURL, when set, turns the webhook channel on: for each row to
	// the webhook channel that a stamp logs, a River job, inserted in the
	// stamp's transaction, posts the notification there (see webhook.go).
	// http:// or https://. Defaults to "" (no webhooks, no escalations).
	WebhookURL string
	// WebhookSecret signs the webhooks (Standard Webhooks: HMAC-SHA256):
	// "whsec_" and the key in base64, or any other string, whose bytes are
	// the key. At least 16 bytes of key. Required with WebhookURL.
	WebhookSecret string
	// WebhookEvents are the events posted for rows to the webhook channel:
	// EventCreated, EventUpdated, EventRead. (EventUnread follows
	// escalations.) Defaults to EventCreated only.
	WebhookEvents []string
	// WebhookTimeout bounds one delivery attempt. Defaults to 10s.
	WebhookTimeout time.Duration
	// WebhookMaxAttempts is how often a webhook is tried (River's backoff
	// between attempts: attempt⁴ seconds, about three weeks for 25) before
	// River keeps it as discarded. Defaults to 25.
	WebhookMaxAttempts int
	// WebhookWorkers bounds the webhooks posted at once by this process.
	// Defaults to 10.
	WebhookWorkers int
	// WebhookClient posts the webhooks. Defaults to an http.Client without
	// a timeout of its own (WebhookTimeout bounds each attempt).
	WebhookClient *http.Client
	// EscalateAfter is the escalation delay per notification type, for
	// rows with no escalate_after of their own: that long after such a
	// row was written, if it is still unread and not deleted,
	// notification.unread is posted. Needs WebhookURL. Defaults to none.
	EscalateAfter map[string]time.Duration
	// RescueAfter is how long a job may stay running before River assumes
	// its process died and runs it again (River's RescueStuckJobsAfter;
	// River's rescuer looks every 30s): a webhook whose relay was killed
	// mid-delivery is retried after it. It must exceed WebhookTimeout and
	// a relay job's run. Defaults to 5m.
	RescueAfter time.Duration
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
	case WakeAdaptive, WakeNotify, WakePoll, WakeLogical:
	default:
		return fmt.Errorf("Config.WakeMode=%q is not one of adaptive, notify, poll, logical", c.WakeMode)
	}
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&c.PollInterval, 5*time.Millisecond)
	set(&c.BusyPoll, time.Millisecond)
	set(&c.Linger, 20*time.Millisecond)
	if c.ParkRate == 0 {
		c.ParkRate = 400
	}
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
	set(&c.WebhookTimeout, 10*time.Second)
	set(&c.RescueAfter, 5*time.Minute)
	if c.RescueAfter <= max(c.WebhookTimeout, maxJobRun) {
		return fmt.Errorf("Config.RescueAfter=%s must exceed Config.WebhookTimeout=%s and a relay job's %s", c.RescueAfter, c.WebhookTimeout, maxJobRun)
	}
	if c.WebhookMaxAttempts <= 0 {
		c.WebhookMaxAttempts = 25
	}
	if c.WebhookWorkers <= 0 {
		c.WebhookWorkers = 10
	}
	if c.WebhookClient == nil {
		c.WebhookClient = &http.Client{}
	}
	if c.WebhookEvents == nil {
		c.WebhookEvents = []string{EventCreated}
	}
	for _, e := range c.WebhookEvents {
		if e != EventCreated && e != EventUpdated && e != EventRead {
			return fmt.Errorf("Config.WebhookEvents: %q is not one of %s, %s, %s", e, EventCreated, EventUpdated, EventRead)
		}
	}
	for typ, d := range c.EscalateAfter {
		if d <= 0 {
			return fmt.Errorf("Config.EscalateAfter: %s for type %q must be positive", d, typ)
		}
	}
	if c.WebhookURL == "" {
		if len(c.EscalateAfter) > 0 {
			return errors.New("Config.EscalateAfter needs Config.WebhookURL: escalations are posted there")
		}
		return nil
	}
	u, err := url.Parse(c.WebhookURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("Config.WebhookURL=%q must be an http:// or https:// URL", c.WebhookURL)
	}
	if c.WebhookSecret == "" {
		return errors.New("Config.WebhookSecret is required with Config.WebhookURL: receivers verify the signature with it")
	}
	if _, err := webhookSigner(c.WebhookSecret); err != nil {
		return fmt.Errorf("Config.WebhookSecret: %w", err)
	}
	return nil
}

// CheckConfig applies the defaults to cfg and checks it, as New does.
func CheckConfig(cfg *Config) error { return cfg.validate() }

// webhookSigner reads a secret: whsec_ and base64, or the bytes of any
// other string.
func webhookSigner(secret string) (*standardwebhooks.Webhook, error) {
	key := []byte(secret)
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			return nil, errors.New("a whsec_ secret must be followed by base64")
		}
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("the key is %d bytes; use at least 16 (24 to 64 random bytes, e.g. whsec_ and 32 bytes in base64)", len(key))
	}
	return standardwebhooks.NewWebhookRaw(key)
}

// Pusher is what a stamp hands its events to: the hub of the same process
// (relay.Relay implements it), which pushes them without waiting for the
// relayed NOTIFY and reading them back.
type Pusher interface {
	// Stamped gets the events of every stamp that found rows, in seq
	// order, once they are committed, and the head before them (after):
	// a hub whose cursor is below after missed another replica's events
	// and must read them first. ctx carries the stamp's span, the parent
	// of the push's. It is called from one goroutine of the worker's own
	// while the worker runs (see pusher), so the next stamp does not wait
	// for it; it should not block.
	Stamped(ctx context.Context, after int64, events []bellhoptype.Event)
	// Floor is the highest seq the hub has pushed: stamps never hand out
	// a seq at or below it, nor at or below one handed to Stamped and not
	// yet pushed.
	Floor() int64
}

// StampObserver is what a Pusher may also implement to be told when each
// stamp starts and ends, whether or not it stamped rows (relay.Relay does:
// its hub puts off the relayed NOTIFYs that come during a stamp, since
// Stamped brings that stamp's events without a read). StampEnded comes
// after Stamped. Neither may block.
type StampObserver interface {
	StampStarted()
	StampEnded()
}

// Listening is what a Pusher may also implement when it listens on the
// relayed channel itself (relay.Relay does): the server pid of its LISTEN
// connection, 0 while it has none. A stamp leaves that connection out when
// it asks whether another process listens (see sqlq.ListenerLock).
type Listening interface {
	ListenerPID() uint32
}

// Worker runs River with the relay's job workers (stamping and pruning) and
// the waker that turns the pending channel, or a timer, into relay jobs.
type Worker struct {
	cfg      Config
	pool     *pgxpool.Pool
	river    *river.Client[pgx.Tx]
	listener *listen.Listener // nil in poll mode
	commits  *commitStream    // WakeLogical only
	// kick ends a busy drain's pause when a commit is decoded, and wakes a
	// parked job when a NOTIFY comes (see park).
	kick           chan struct{}
	metrics        *metrics.Worker
	tracer         trace.Tracer
	log            *slog.Logger
	relayedChannel string
	wakeSeq        string
	q              struct {
		hasPending, lock, stamp, announce, listeners, tryLease, unlease, head, durability, setWake, snapshot, settled, prune, forget, escalation, expireDue, expire string
	}
	// own is the Pusher if it listens on the relayed channel itself, and
	// audience whether another process does (see audience in stamp.go).
	own      Listening
	audience audience
	// signer signs webhooks; nil without Config.WebhookURL.
	signer *standardwebhooks.Webhook
	events map[string]bool
	inbox  *inbox.Inbox
	// escalatedTypes are Config.EscalateAfter's types (the stamp's $4).
	escalatedTypes []string

	// busy is up while a relay job of this process may still stamp what is
	// pending; queued while a job this process inserted has not started.
	busy   atomic.Int32
	queued atomic.Int64 // unix nanos of the insert, 0 if none
	// draining is up while a relay job of this process runs its loop;
	// again asks that loop (or the next job) to look once more.
	draining atomic.Bool
	again    atomic.Bool
	// sweptHead is the head the last sweep saw while another replica held
	// the drain lease (see stuck).
	sweptHead atomic.Int64
	// leaseSeen is when a job of this process last found another replica
	// holding the drain lease (unix nanos): for a second from then, the
	// waker leaves wake-ups to that replica, whose own waker gets them too.
	leaseSeen atomic.Int64
	// handedOver: the drain loop ran maxJobRun; its job queues a successor.
	handedOver atomic.Bool
	// parked is up while a relay job of this process waits, the wake flag
	// up, for the NOTIFYs of commits (see park); the waker then kicks it.
	// Under parkMu, so that a NOTIFY that finds it down is one the job
	// will look for (see leased).
	parkMu  sync.Mutex
	parked  bool
	running atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}
	// stopping is closed by Stop: a parked job ends.
	stopping chan struct{}
	stopOnce sync.Once
	// published carries committed stamps to publisher, in order, with a
	// broker (Config.Fanout); Stop closes pubStop, and pubDone is closed
	// when the publisher has ended.
	published chan fanout.Batch
	pubStop   chan struct{}
	pubDone   chan struct{}
	// pushes carries committed stamps to pusher, in order, while the
	// worker runs (not nil, under pushMu; Stop closes it, and pushDone is
	// closed when the pusher has ended); pending counts those not pushed
	// yet. handed is the highest seq a stamp handed over: the next stamp's
	// floor, before the hub has pushed it.
	pushMu   sync.RWMutex
	pushes   chan push
	pushDone chan struct{}
	pending  atomic.Int32
	handed   atomic.Int64
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
	own, _ := cfg.Pusher.(Listening)
	r := &Worker{
		own:            own,
		escalatedTypes: []string{},
		cfg:            cfg,
		pool:           pool,
		metrics:        m,
		tracer:         tracing.Tracer(cfg.TracerProvider, "github.com/bellhophq/bellhop/worker"),
		log:            cfg.Logger,
		relayedChannel: sqlq.Channel(cfg.Schema, "relayed"),
		wakeSeq:        pgx.Identifier{cfg.Schema, "relay_wake"}.Sanitize(),
		kick:           make(chan struct{}, 1),
	}
	r.q.hasPending = set.Get("HasPending")
	r.q.lock = set.Get("Lock")
	r.q.stamp = set.Get("Stamp")
	r.q.announce = set.Get("Announce")
	r.q.listeners = set.Get("Listeners")
	r.q.tryLease = set.Get("TryLease")
	r.q.unlease = set.Get("Unlease")
	r.q.head = set.Get("Head")
	r.q.durability = set.Get("Durability")
	r.q.setWake = set.Get("SetWake")
	r.q.snapshot = set.Get("Snapshot")
	r.q.settled = set.Get("Settled")
	r.q.prune = set.Get("Prune")
	r.q.forget = set.Get("Forget")
	r.q.escalation = set.Get("Escalation")
	r.q.expireDue = set.Get("ExpireDue")
	r.q.expire = set.Get("Expire")
	if err := set.Err(); err != nil {
		return nil, err
	}
	if r.inbox, err = inbox.New(pool, inbox.Config{Schema: cfg.Schema}); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &relayWorker{r: r})
	river.AddWorker(workers, &pruneWorker{r: r})
	queues := map[string]river.QueueConfig{queue: {MaxWorkers: 4}}
	if cfg.WebhookURL != "" {
		r.signer, _ = webhookSigner(cfg.WebhookSecret) // checked by validate
		r.events = map[string]bool{}
		for _, e := range cfg.WebhookEvents {
			r.events[e] = true
		}
		for typ := range cfg.EscalateAfter {
			r.escalatedTypes = append(r.escalatedTypes, typ)
		}
		river.AddWorker(workers, &webhookWorker{r: r})
		river.AddWorker(workers, &escalateWorker{r: r})
		queues[webhookQueue] = river.QueueConfig{MaxWorkers: cfg.WebhookWorkers}
	}
	r.river, err = river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: cfg.Schema,
		Queues: queues,
		// A job left running by a killed process (a webhook mid-delivery)
		// runs again after RescueAfter; River wants its JobTimeout below.
		RescueStuckJobsAfter: cfg.RescueAfter,
		JobTimeout:           min(time.Minute, cfg.RescueAfter),
		// River's default cooldown (100 ms) is tuned for throughput; a
		// relay job must start within a millisecond or two of its insert,
		// which River announces by NOTIFY. Its poll is only the fallback
		// when a NOTIFY is lost, and stays at River's default (1 s, the
		// sweep's interval): at 50 ms it was half of an idle relay's
		// queries and CPU.
		FetchCooldown:     time.Millisecond,
		FetchPollInterval: time.Second,
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
		Logger: riverLogger(cfg.Logger),
	})
	if err != nil {
		return nil, fmt.Errorf("worker: river client: %w", err)
	}
	if cfg.WakeMode != WakePoll {
		r.listener = listen.New(pool, sqlq.Channel(cfg.Schema, "pending"), cfg.Logger)
		r.listener.OnReconnect = func() { r.metrics.ListenerReconnects.WithLabelValues("pending").Inc() }
	}
	if cfg.WakeMode == WakeLogical {
		r.commits = newCommitStream(pool, cfg.Schema, cfg.Logger)
		r.commits.OnUp = func(ctx context.Context) {
			// Every commit from now on is decoded: writers stop paying for
			// NOTIFY.
			if err := r.setWake(ctx, false); err != nil {
				r.log.Warn("lower wake flag", "err", err)
			}
		}
		r.commits.OnDown = func(ctx context.Context) {
			// Adaptive again: a drain ends by raising the flag (arm).
			if r.busy.Load() == 0 {
				r.enqueue(ctx)
			}
		}
	}
	return r, nil
}

// Start sets the wake flag for the mode, then starts River and the waker.
func (r *Worker) Start(ctx context.Context) error {
	if err := r.setWake(ctx, r.cfg.WakeMode == WakeNotify); err != nil {
		return err
	}
	r.stopping = make(chan struct{})
	if err := r.river.Start(ctx); err != nil {
		return fmt.Errorf("worker: start river: %w", err)
	}
	if r.cfg.Fanout != nil {
		r.published, r.pubStop, r.pubDone = make(chan fanout.Batch, 1024), make(chan struct{}), make(chan struct{})
		go r.publisher(context.WithoutCancel(ctx))
	}
	r.startPusher()
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
	r.stopOnce.Do(func() { close(r.stopping) })
	err := r.river.Stop(ctx)
	r.stopPusher()
	if r.pubStop != nil {
		close(r.pubStop)
		<-r.pubDone
	}
	if err != nil {
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
				if r.busy.Load() > 0 || r.recentlyQueued() || r.leasedElsewhere() {
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
	var commits chan struct{} // nil, never ready, but in logical mode
	if r.commits != nil {
		commits = r.commits.Commits
		go r.commits.Run(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.listener.Wake:
			if r.kickParked() {
				continue
			}
			if r.cfg.WakeMode == WakeLogical {
				// Following commits (or busy from here): writers stop
				// paying for NOTIFY. In adaptive mode the job lowers the
				// flag once it holds the drain lease: the replica that
				// holds it may be parked, waiting for NOTIFYs.
				if err := r.setWake(ctx, false); err != nil {
					r.log.Warn("lower wake flag", "err", err)
				}
			}
			if r.busy.Load() == 0 && !r.leasedElsewhere() {
				r.enqueue(ctx)
			}
		case <-commits:
			r.metrics.DecodedCommits.Inc()
			if r.busy.Load() > 0 {
				select {
				case r.kick <- struct{}{}:
				default:
				}
			} else if !r.recentlyQueued() && !r.leasedElsewhere() {
				// One job for the commits decoded until it starts (a
				// River insert is a transaction of its own).
				r.enqueue(ctx)
			}
		}
	}
}

// following reports whether the worker learns of commits from its
// logical decoding stream (WakeLogical, stream up); otherwise it drains as
// in its mode, WakeLogical as WakeAdaptive.
func (r *Worker) following() bool { return r.commits != nil && r.commits.Up() }

// adaptive reports whether a drain that goes idle raises the wake flag.
func (r *Worker) adaptive() bool {
	return r.cfg.WakeMode == WakeAdaptive || (r.cfg.WakeMode == WakeLogical && !r.following())
}

// recentlyQueued reports whether this process inserted a relay job that has
// not started yet; after a second it assumes another replica took it.
func (r *Worker) recentlyQueued() bool {
	at := r.queued.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < time.Second
}

// leasedElsewhere reports whether a job of this process found another
// replica draining in the last second (see Worker.leaseSeen).
func (r *Worker) leasedElsewhere() bool {
	at := r.leaseSeen.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < time.Second
}

func (r *Worker) enqueue(ctx context.Context) {
	r.queued.Store(time.Now().UnixNano())
	if _, err := r.river.Insert(ctx, relayArgs{}, nil); err != nil && ctx.Err() == nil {
		r.log.Warn("insert relay job", "err", err)
	}
}

// riverLogger is River's logger: its warnings and errors, and its routine
// info (every job, a producer report every 5 s) only when log is at debug.
func riverLogger(log *slog.Logger) *slog.Logger {
	return slog.New(quietRiver{log.Handler()}).With("component", "river")
}

// quietRiver drops River's records below warn unless its handler takes debug.
type quietRiver struct{ slog.Handler }

func (h quietRiver) Enabled(ctx context.Context, l slog.Level) bool {
	if l < slog.LevelWarn && !h.Handler.Enabled(ctx, slog.LevelDebug) {
		return false
	}
	return h.Handler.Enabled(ctx, l)
}

// WithAttrs and WithGroup keep the filter: the embedded handler's own would
// return a handler without it (River's logger is made With attributes).
func (h quietRiver) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietRiver{h.Handler.WithAttrs(attrs)}
}

func (h quietRiver) WithGroup(name string) slog.Handler {
	return quietRiver{h.Handler.WithGroup(name)}
}
