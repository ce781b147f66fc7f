package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/fanout"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/internal/tracing"
)

// stampedEvent is a row of the Stamp query: an event, and the head before
// the stamp.
type stampedEvent struct {
	bellhoptype.Event `db:",inline"`
	HeadBefore        int64 `db:"head_before"`
	// What the webhook jobs need (see hookJobs).
	Xid        string    `db:"xid"`
	CreatedAt  time.Time `db:"created_at"`
	Listed     bool      `db:"listed"`
	ViaWebhook bool      `db:"via_webhook"`
	HookData   []byte    `db:"hook_data"`
	EscalateUS *int64    `db:"escalate_us"`
	// FirstLogged: the row's first log entry, whatever its op.
	FirstLogged bool `db:"first_logged"`
}

// stamp stamps up to batch newly committed rows (relay_log entries) in one short
// transaction, serialized across replicas, and announces the new head on the
// relayed channel. It returns how many rows it stamped, and how many
// transactions wrote them. The notification rows themselves are only read.
//
// The statements go in one batch: one round trip, and, with no BEGIN, one
// implicit transaction that ends at the batch's Sync, so the stamp lock is
// held until the stamps commit. Each statement still takes its own snapshot
// (READ COMMITTED), so the stamp sees every row committed before the lock
// was granted, and the cursor the previous stamp left.
//
// With a webhook URL (Config.WebhookURL) the stamp runs in an explicit
// transaction instead, two round trips more (BEGIN, COMMIT): the webhook
// and escalation jobs of its rows are inserted in it (River's InsertManyFastTx: COPY),
// so a job exists exactly when the log entry does: never for a row that
// did not commit, never lost, never enqueued twice.
func (r *Worker) stamp(ctx context.Context) (rows, commits int, err error) {
	start := time.Now()
	var stamped []stampedEvent
	var floor int64
	var observer StampObserver
	handed := false
	if r.cfg.Pusher != nil {
		if o, ok := r.cfg.Pusher.(StampObserver); ok {
			observer = o
			o.StampStarted()
			// A stamp that hands rows over ends with their push (deliver).
			defer func() {
				if !handed {
					r.endStamp(o)
				}
			}()
		}
		floor = max(r.cfg.Pusher.Floor(), r.handed.Load())
	}
	// With a broker that is up, the batch is announced there, after the
	// commit, instead of by NOTIFY; without one, by NOTIFY only while
	// another process listens.
	channel, viaBroker := r.relayedChannel, r.cfg.Fanout != nil && r.cfg.Fanout.Up()
	notify, look := true, false
	if r.own != nil && !viaBroker {
		notify, look = r.audience.heed(start)
	}
	if viaBroker || !notify {
		channel = ""
	}
	b := &pgx.Batch{}
	b.Queue(r.q.lock)
	b.Queue(r.q.stamp, r.cfg.BatchSize, channel, floor, r.escalatedTypes).Query(func(rows pgx.Rows) error {
		var err error
		stamped, err = pgx.CollectRows(rows, sqlq.ScanStruct[stampedEvent])
		return err
	})
	b.Queue(r.q.durability, r.cfg.DurableStamps)
	if r.signer == nil {
		// The entries are read before the Sync that commits them: nothing
		// is pushed until Close reports the commit.
		if err := r.pool.SendBatch(ctx, b).Close(); err != nil {
			return 0, 0, fmt.Errorf("stamp pending rows: %w", err)
		}
	} else if err := r.stampWithJobs(ctx, b, &stamped); err != nil {
		return 0, 0, err
	}
	if len(stamped) > 0 {
		logged := make([]bellhoptype.Event, len(stamped))
		for i, s := range stamped {
			logged[i] = s.Event
			// The rows come in (xid, id) order.
			if i == 0 || s.Xid != stamped[i-1].Xid {
				commits++
			}
		}
		after := stamped[len(stamped)-1].HeadBefore
		r.metrics.StampBatch.Observe(float64(len(logged)))
		ctx, span := r.stampSpan(ctx, start, logged)
		if viaBroker {
			r.publish(ctx, after, logged) // queued for the publisher
		}
		if r.cfg.Pusher == nil {
			span.End()
		} else {
			raise(&r.handed, logged[len(logged)-1].Seq)
			r.hand(push{ctx: context.WithoutCancel(ctx), after: after, events: logged, span: span, observer: observer})
			handed = true
		}
	}
	if look {
		r.look(ctx)
	}
	return len(stamped), commits, nil
}

// pushQueue is how many committed stamps may wait for the pusher: while
// it pushes one, the next stamps run, and a stamp waits only when the
// pusher is this far behind.
const pushQueue = 2

// push is a committed stamp's events on their way to the Pusher, with the
// stamp's span, which ends once they are pushed, and the observer told of
// the stamp's end then; with no events, only that end (see endStamp).
type push struct {
	ctx      context.Context
	after    int64
	events   []bellhoptype.Event
	span     trace.Span
	observer StampObserver
}

// hand gives p to the pusher while the worker runs (see startPusher),
// else pushes it at once. The stamp does not wait for the push: on a busy
// relay, pushing a batch of 1,000 events to their streams takes about a
// fifth of a stamp's round (10-16 ms of 50-65 ms, measured in cmd/bench
// scenario 2 on 2 shared cores), which the next stamp now runs beside.
func (r *Worker) hand(p push) {
	r.pushMu.RLock()
	defer r.pushMu.RUnlock()
	if r.pushes == nil {
		r.deliver(p)
		return
	}
	r.pending.Add(1)
	r.pushes <- p
}

// endStamp tells o that a stamp that handed nothing over has ended: at once,
// unless pushes wait, and then after them. Its hub drops the relayed
// NOTIFYs it put off during this process's stamps once they end, those
// whose events it has pushed by then (the stamps' own); an end that came
// before an earlier stamp's push would let it read that stamp back.
func (r *Worker) endStamp(o StampObserver) {
	r.pushMu.RLock()
	defer r.pushMu.RUnlock()
	if r.pushes == nil || r.pending.Load() == 0 {
		o.StampEnded()
		return
	}
	r.pending.Add(1)
	r.pushes <- push{observer: o}
}

// deliver pushes p.
func (r *Worker) deliver(p push) {
	if len(p.events) > 0 {
		r.cfg.Pusher.Stamped(p.ctx, p.after, p.events)
		p.span.End()
	}
	if p.observer != nil {
		p.observer.StampEnded()
	}
}

// startPusher starts the goroutine that pushes handed stamps, in order,
// if the worker has a Pusher.
func (r *Worker) startPusher() {
	if r.cfg.Pusher == nil {
		return
	}
	r.pushMu.Lock()
	defer r.pushMu.Unlock()
	pushes, done := make(chan push, pushQueue), make(chan struct{})
	r.pushes, r.pushDone = pushes, done
	go func() {
		defer close(done)
		for p := range pushes {
			r.deliver(p)
			r.pending.Add(-1)
		}
	}()
}

// stopPusher pushes what is queued and ends the pusher; stamps after it
// push at once.
func (r *Worker) stopPusher() {
	r.pushMu.Lock()
	if r.pushes == nil {
		r.pushMu.Unlock()
		return
	}
	close(r.pushes)
	r.pushes = nil
	r.pushMu.Unlock()
	<-r.pushDone
}

// raise sets v to n if n is higher.
func raise(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// How often stamps look who listens on the relayed channel, and for how
// long an answer holds: after one older than audienceStale (an idle
// relay), stamps NOTIFY until the next answer.
const (
	audienceRefresh = 250 * time.Millisecond
	audienceStale   = 2 * time.Second
)

// audience is what the last look found (see look): whether a process
// other than this one listens on the relayed channel. With none, a lone
// relay, stamps NOTIFY nothing: this process's hub has their events from
// Stamped, and the NOTIFY would only wake its LISTEN connection's backend,
// then the hub, for news it has, at every stamp. Only a worker whose
// Pusher listens itself (Listening) asks; any other always NOTIFYs.
//
// A replica that starts listening says so on the relayed channel
// (RegisterListener in relay/sql), and this process's hub passes it on
// (ListenerJoined): the next stamp NOTIFYs, and looks. What was stamped
// before, the replica reads after registering; a stamp that was under way
// without a NOTIFY, on the next NOTIFY or its one-second backstop.
type audience struct {
	mu     sync.Mutex
	at     time.Time // of the last answer; zero before the first
	others bool
	failed bool // the last look failed (logged once until one succeeds)
	// joins counts ListenerJoined: a look that began before one does not
	// answer for after it.
	joins int
}

// heed reports whether a stamp that starts at now must NOTIFY, and whether
// it must look again after it.
func (a *audience) heed(now time.Time) (notify, look bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	age := now.Sub(a.at)
	return a.at.IsZero() || age >= audienceStale || a.others, a.at.IsZero() || age >= audienceRefresh
}

// ListenerJoined tells the worker that a process has begun to listen on
// the relayed channel (relay.Relay calls it when its hub hears one): the
// stamps NOTIFY again, from the next one, which looks who listens.
func (r *Worker) ListenerJoined() {
	r.audience.mu.Lock()
	r.audience.at = time.Time{}
	r.audience.joins++
	r.audience.mu.Unlock()
}

// look counts the processes other than this one that listen on the
// relayed channel (Listeners: the LISTEN connections of relay hubs hold a
// shared lock, see sqlq.ListenerLock), for the stamps that follow. If it
// fails, they NOTIFY.
func (r *Worker) look(ctx context.Context) {
	a := &r.audience
	a.mu.Lock()
	joins := a.joins
	a.mu.Unlock()
	var n int64
	err := r.pool.QueryRow(ctx, r.q.listeners, sqlq.ListenerLock, r.cfg.Schema, int32(r.own.ListenerPID())).Scan(&n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.joins != joins {
		return
	}
	a.at = time.Now()
	if err != nil {
		if !a.failed && ctx.Err() == nil {
			r.log.Warn("look for other processes listening on the relayed channel; stamps NOTIFY it meanwhile", "err", err)
		}
		a.failed, a.others = true, true
		return
	}
	a.failed, a.others = false, n > 0
	r.metrics.RelayedListeners.Set(float64(n))
}

// publish queues a committed batch for the broker (publisher sends it,
// so a stamp never waits for the broker); with the queue full, it
// announces the batch by NOTIFY at once.
func (r *Worker) publish(ctx context.Context, after int64, logged []bellhoptype.Event) {
	b := fanout.Batch{Before: after, Head: logged[len(logged)-1].Seq, Events: logged}
	select {
	case r.published <- b:
	default:
		r.announce(ctx, b, errors.New("the publish queue is full"))
	}
}

// publisher publishes the queued batches in order until Stop, then what
// is left.
func (r *Worker) publisher(ctx context.Context) {
	defer close(r.pubDone)
	send := func(b fanout.Batch) {
		if err := r.cfg.Fanout.Publish(ctx, b); err != nil {
			r.announce(ctx, b, err)
			return
		}
		r.metrics.FanoutPublished.WithLabelValues("ok").Inc()
	}
	for {
		select {
		case b := <-r.published:
			send(b)
		case <-r.pubStop:
			for {
				select {
				case b := <-r.published:
					send(b)
				default:
					return
				}
			}
		}
	}
}

// announce is a stamp's NOTIFY, for a batch the broker did not take: the
// replicas then read it from the log.
func (r *Worker) announce(ctx context.Context, b fanout.Batch, cause error) {
	r.metrics.FanoutPublished.WithLabelValues("error").Inc()
	r.log.Warn("publish a stamp to the broker; announcing it by NOTIFY", "err", cause)
	if _, err := r.pool.Exec(context.WithoutCancel(ctx), r.q.announce, r.relayedChannel, strconv.FormatInt(b.Head, 10)); err != nil {
		// The replicas' hubs find it on their next wake or within a
		// second (their backstop).
		r.log.Warn("announce a stamp", "err", err)
	}
}

// stampWithJobs runs the stamp batch b in a transaction with the webhook
// jobs of the rows it stamps.
func (r *Worker) stampWithJobs(ctx context.Context, b *pgx.Batch, stamped *[]stampedEvent) error {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("stamp pending rows: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("stamp pending rows: %w", err)
	}
	jobs, err := r.hookJobs(*stamped)
	if err != nil {
		return fmt.Errorf("stamp pending rows: %w", err)
	}
	if len(jobs) > 0 {
		if _, err := r.river.InsertManyFastTx(ctx, tx, jobs); err != nil {
			return fmt.Errorf("stamp pending rows: enqueue webhooks: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("stamp pending rows: %w", err)
	}
	return nil
}

// stampSpan starts the span of a stamp that stamped rows, back at its
// start: an empty stamp, every millisecond while the relay is busy, makes
// none. It links to the spans the rows were written in.
func (r *Worker) stampSpan(ctx context.Context, start time.Time, logged []bellhoptype.Event) (context.Context, trace.Span) {
	ctx, span := r.tracer.Start(ctx, "bellhop.stamp", trace.WithTimestamp(start), trace.WithNewRoot())
	if !span.IsRecording() {
		return ctx, span
	}
	var links tracing.Links
	for i := range logged {
		links.Add(logged[i].Traceparent)
	}
	for _, l := range links.List() {
		span.AddLink(l)
	}
	span.SetAttributes(
		attribute.Int("bellhop.stamp.rows", len(logged)),
		attribute.Int64("bellhop.stamp.first_seq", logged[0].Seq),
		attribute.Int64("bellhop.stamp.last_seq", logged[len(logged)-1].Seq),
		attribute.String("bellhop.schema", r.cfg.Schema),
	)
	return ctx, span
}

func (r *Worker) hasPending(ctx context.Context) (bool, error) {
	var ok bool
	if err := r.pool.QueryRow(ctx, r.q.hasPending).Scan(&ok); err != nil {
		return false, fmt.Errorf("look for pending rows: %w", err)
	}
	return ok, nil
}

// setWake flips the wake flag the triggers read.
func (r *Worker) setWake(ctx context.Context, on bool) error {
	v := 0
	if on {
		v = 1
	}
	if _, err := r.pool.Exec(ctx, r.q.setWake, r.wakeSeq, v); err != nil {
		return fmt.Errorf("set wake flag: %w", err)
	}
	return nil
}
