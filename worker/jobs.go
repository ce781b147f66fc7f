package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// relayArgs is the relay job: stamp what is pending until there is nothing
// left for a while, then (adaptive mode) raise the wake flag.
type relayArgs struct {
	// Sweep marks the periodic safety-net run.
	Sweep bool `json:"sweep,omitempty"`
}

func (relayArgs) Kind() string { return "bellhop_relay" }

func (relayArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue, MaxAttempts: 3}
}

// maxJobRun bounds one relay job; a job still busy then hands over to a
// successor, so no job runs into River's timeouts or delays a shutdown.
const maxJobRun = 5 * time.Second

// settleWait bounds how long an idling job waits for transactions that may
// have missed the wake flag (see arm).
const settleWait = 50 * time.Millisecond

type relayWorker struct {
	river.WorkerDefaults[relayArgs]
	r *Worker
}

func (w *relayWorker) Timeout(*river.Job[relayArgs]) time.Duration { return maxJobRun + time.Minute }

// Work drains, unless a relay job of this process already is: a second
// drain loop would only double the stamps and contend for their lock. A
// woken job then leaves its wake-up to the draining one (again), which
// looks once more before it ends; a sweep has nothing to add, and drains
// only when it finds something pending.
func (w *relayWorker) Work(ctx context.Context, job *river.Job[relayArgs]) error {
	r := w.r
	if job.Args.Sweep {
		// Due expiries first, whether or not a drain runs: what they touch
		// is pending, and stamped like any change. A failure must not stop
		// the safety net.
		if err := r.expire(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("push expired notifications", "err", err)
		}
		// An idle relay's sweep looks once; only what it finds starts a
		// drain (and its linger and arm: some 70 queries).
		if r.draining.Load() {
			return nil
		}
		if pending, err := r.hasPending(ctx); err != nil || !pending {
			return err
		}
	} else {
		r.queued.Store(0)
		r.again.Store(true)
	}
	for {
		if !r.draining.CompareAndSwap(false, true) {
			return nil
		}
		err := w.leased(ctx, job.Args.Sweep)
		r.draining.Store(false)
		// A wake-up that came as the loop ended, and found it still
		// running, is this job's to serve.
		if err != nil || !r.again.Load() {
			return err
		}
	}
}

// leaseNamespace is the first key of the drain lease (see leased); the
// second is the schema's hash, as for the stamp's lock, which it must not
// be: a session lock and a transaction lock on one key exclude each other.
const leaseNamespace = 0x6c65_6173 // "leas"

// leased runs the drain loop under the drain lease: a session advisory
// lock that one replica's loop holds at a time. Without it every replica
// woken by the pending NOTIFY polls every BusyPoll while rows come, each
// under the stamp's lock in turn: R replicas cost the database R times the
// polls for the same rows. A job that finds the lease taken leaves its rows
// to the holder, which stamps everything committed, and looks once more
// after it lets the lease go (a wake-up that came while it still held it
// is served then).
//
// A sweep drains without the lease when the holder stamped nothing for a
// whole sweep interval while rows were pending (its process hangs with its
// connection open): the stamp's own lock keeps that safe, the lease only
// saves polls.
func (w *relayWorker) leased(ctx context.Context, sweep bool) error {
	r := w.r
	for {
		conn, err := r.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("drain lease: %w", err)
		}
		var got bool
		if err := conn.QueryRow(ctx, r.q.tryLease, leaseNamespace, r.cfg.Schema).Scan(&got); err != nil {
			conn.Release()
			return fmt.Errorf("drain lease: %w", err)
		}
		if !got {
			conn.Release()
			r.metrics.LeaseTaken.Inc()
			r.leaseSeen.Store(time.Now().UnixNano())
			if sweep && r.stuck(ctx) {
				r.log.Warn("the replica holding the drain lease stamped nothing for a sweep interval; draining without it")
				r.handedOver.Store(false)
				if err := w.work(ctx); err != nil || !r.handedOver.Load() {
					return err
				}
				return handOver(ctx)
			}
			// Nothing for this process to look at again: the holder will.
			r.again.Store(false)
			return nil
		}
		// The holder serves the wake-ups from now on (see leasedElsewhere).
		r.leaseSeen.Store(0)
		r.handedOver.Store(false)
		err = w.work(ctx)
		// The lock is the session's: it must not go back to the pool with
		// the connection.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), r.q.unlease, leaseNamespace, r.cfg.Schema); uerr != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
		if err == nil && r.handedOver.Load() {
			// Queued only now that the lease is free for it, so that it
			// cannot find it taken and leave (while the wake flag is down).
			return handOver(ctx)
		}
		if err != nil || ctx.Err() != nil {
			return err
		}
		// A job that found the lease taken before it was let go left its
		// rows to this loop.
		pending, err := r.hasPending(ctx)
		if err != nil || !pending {
			return err
		}
	}
}

// handOver queues the successor of a drain that was still busy after
// maxJobRun (Worker.handedOver): it goes on in a job of its own.
func handOver(ctx context.Context) error {
	_, err := river.ClientFromContext[pgx.Tx](ctx).Insert(ctx, relayArgs{}, nil)
	return err
}

// stuck reports whether rows are pending and the head has not moved since
// the last sweep that asked.
func (r *Worker) stuck(ctx context.Context) bool {
	var head int64
	if err := r.pool.QueryRow(ctx, r.q.head).Scan(&head); err != nil {
		return false
	}
	last := r.sweptHead.Swap(head)
	if head != last {
		return false
	}
	pending, err := r.hasPending(ctx)
	return err == nil && pending
}

func (w *relayWorker) work(ctx context.Context) error {
	r := w.r
	r.again.Store(false)
	r.busy.Add(1)
	defer r.busy.Add(-1)

	deadline := time.Now().Add(maxJobRun)
	if r.cfg.WakeMode == WakeAdaptive {
		// This job drains, polling: writers stop paying for NOTIFY.
		if err := r.setWake(ctx, false); err != nil {
			return err
		}
	}
	for {
		busy, err := r.drain(ctx, deadline)
		if err != nil {
			return err
		}
		if busy {
			// The caller queues the successor once it let the lease go.
			r.handedOver.Store(true)
			return nil
		}
		if !r.adaptive() {
			return r.idle(ctx)
		}
		more, err := r.arm(ctx)
		if err != nil {
			return err
		}
		// A wake-up during arm (its job found this loop running) means
		// rows came.
		more = more || r.again.Swap(false)
		if !more && r.parks() {
			if more, err = r.park(ctx, deadline); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
		// A writer committed while the flag went up, or commits come fast:
		// busy again.
		if err := r.setWake(ctx, false); err != nil {
			return err
		}
	}
}

// park is an adaptive drain's idle time, up to deadline: with the wake flag
// up (arm), it waits for the NOTIFYs of commits and stamps at each, instead
// of polling every BusyPoll. A relay that writers keep busy a little (100
// notifications a second, say) polled through every gap between two rows,
// about four polls per notification, most finding nothing: now it stamps
// once per commit, and a row no longer waits for the next poll. Writers
// pay for a NOTIFY each meanwhile, which only a high rate makes them feel
// (their commits serialize on PostgreSQL's notify queue lock): once it
// stamped commits at Config.ParkRate or faster (ParkRate x Linger of them
// within Linger, 8 in 20 ms by default, counted by their xids: NOTIFYs
// that come while the waker is busy are folded into one), park reports
// busy, and the drain lowers the flag and polls again.
//
// It also looks every SweepInterval (the sweep leaves a parked job's rows
// to it), and ends at the deadline or on Stop, the flag left up as an idle
// relay's. A NOTIFY that comes as it ends finds it no longer parked and
// queues a job, which finds this one draining and asks it to look again
// (again; see Work), or finds the lease free; and leased looks once more
// after every drain.
func (r *Worker) park(ctx context.Context, deadline time.Time) (busy bool, err error) {
	r.parkMu.Lock()
	r.parked = true
	r.parkMu.Unlock()
	defer func() {
		r.parkMu.Lock()
		r.parked = false
		r.parkMu.Unlock()
	}()
	commits := r.newCommitTimes()
	look := time.NewTimer(r.cfg.SweepInterval)
	defer look.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	for {
		cause := "look"
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-r.stopping:
			return false, nil
		case <-end.C:
			return false, nil
		case <-look.C:
		case <-r.kick:
			cause = "notified"
		}
		look.Reset(r.cfg.SweepInterval)
		for {
			n, c, err := r.stamp(ctx)
			if err != nil {
				return false, err
			}
			result := "rows"
			if n == 0 {
				result = "empty"
			}
			r.metrics.Stamps.WithLabelValues(cause, result).Inc()
			now := time.Now()
			commits.add(now, c)
			if commits.atLeast(len(commits.t), now, r.cfg.Linger) {
				return true, nil
			}
			if n < r.cfg.BatchSize {
				break
			}
		}
	}
}

// parks reports whether a drain that goes idle parks (see park).
func (r *Worker) parks() bool { return r.cfg.WakeMode == WakeAdaptive && r.cfg.ParkRate > 0 }

// commitTimes holds the times of the latest commits a drain or a parked job
// stamped, as a ring from next: ParkRate x Linger of them, the most that
// come within Linger at ParkRate.
type commitTimes struct {
	t    []time.Time
	next int
}

func (r *Worker) newCommitTimes() commitTimes {
	return commitTimes{t: make([]time.Time, max(1, int(float64(r.cfg.ParkRate)*r.cfg.Linger.Seconds())))}
}

// add records n commits stamped at now.
func (c *commitTimes) add(now time.Time, n int) {
	for range min(n, len(c.t)) {
		c.t[c.next], c.next = now, (c.next+1)%len(c.t)
	}
}

// atLeast reports whether k commits (1 <= k <= len(c.t)) were stamped within
// d before now.
func (c *commitTimes) atLeast(k int, now time.Time, d time.Duration) bool {
	t := c.t[(c.next-k+len(c.t))%len(c.t)]
	return !t.IsZero() && now.Sub(t) < d
}

// kickParked wakes a parked relay job for a NOTIFY, and reports whether
// there was one.
func (r *Worker) kickParked() bool {
	r.parkMu.Lock()
	defer r.parkMu.Unlock()
	if !r.parked {
		return false
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return true
}

// drain stamps until nothing has been pending for Linger, or until the
// deadline (then it reports busy). An empty stamp writes nothing, so polling
// with it costs one round trip. A drain that parks when it goes idle (see
// park) also goes idle, after its first Linger, once it stamps fewer than
// half the commits ParkRate would bring within Linger: rows that come
// evenly, 10 ms apart say, never leave a gap of Linger, and their drain
// would poll through every one.
func (r *Worker) drain(ctx context.Context, deadline time.Time) (busy bool, err error) {
	idleSince := time.Time{}
	cause := "poll"
	started, commits := time.Now(), r.newCommitTimes()
	for {
		if time.Now().After(deadline) {
			return true, nil
		}
		// With LookBeforeStamp, after an empty stamp, look before
		// stamping: a stamp is three statements in a transaction, HasPending
		// one read-only statement; the rows a look finds wait one round
		// trip more.
		n, c, began := 0, 0, time.Now()
		if !idleSince.IsZero() && r.cfg.LookBeforeStamp {
			pending, err := r.hasPending(ctx)
			if err != nil {
				return false, err
			}
			if pending {
				if n, c, err = r.stamp(ctx); err != nil {
					return false, err
				}
			}
		} else if n, c, err = r.stamp(ctx); err != nil {
			return false, err
		}
		result := "rows"
		if n == 0 {
			result = "empty"
		}
		r.metrics.Stamps.WithLabelValues(cause, result).Inc()
		cause = "poll"
		if n == r.cfg.BatchSize {
			continue // a backlog: no pause
		}
		now := time.Now()
		commits.add(now, c)
		if r.parks() && now.Sub(started) >= r.cfg.Linger && !commits.atLeast(max(1, len(commits.t)/2), now, r.cfg.Linger) {
			return false, nil
		}
		// Otherwise pause BusyPoll even after finding rows: each stamp is a
		// commit with its own WAL flush, and stamping right after every
		// writer's commit would double the flushes the writers wait on.
		if n > 0 {
			idleSince = time.Time{}
		} else if idleSince.IsZero() {
			idleSince = time.Now()
		} else if time.Since(idleSince) >= r.cfg.Linger {
			return false, nil
		}
		decoded, err := r.pause(ctx, began, n > 0)
		if err != nil {
			return false, err
		}
		if decoded {
			cause = "decoded"
		}
	}
}

// logicalPoll is how often a busy drain that follows commits (WakeLogical)
// stamps when none is decoded: a commit is decoded once its WAL is flushed,
// a moment before its rows are visible, so a stamp it wakes may miss them.
const logicalPoll = 5 * time.Millisecond

// pause waits between two stamps of a drain, the last of which began at
// began and found rows or not: BusyPoll; or, following commits after a
// stamp that found none, until one is decoded (but no sooner than BusyPoll
// after began) or logicalPoll has passed. While rows keep coming, a stamp
// every BusyPoll takes them in batches either way; what the stream saves
// is the polls in between, and the wait for the first row after a pause.
// It reports whether a decoded commit ended it.
func (r *Worker) pause(ctx context.Context, began time.Time, found bool) (decoded bool, err error) {
	wait := r.cfg.BusyPoll
	if found {
		// The stamp to come takes what the commits decoded meanwhile
		// announced.
		select {
		case <-r.kick:
		default:
		}
	} else if r.following() {
		t := time.NewTimer(logicalPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
			return false, nil
		case <-r.kick:
			t.Stop()
		}
		decoded = true
		if wait = time.Until(began.Add(r.cfg.BusyPoll)); wait <= 0 {
			return true, nil
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return decoded, nil
	}
}

// idle ends a job in notify, poll and logical modes: the waker may skip a wake while
// this process is busy, so stop being busy first, then look once more.
//
// Following commits, a commit decoded as the drain ended signalled it (kick)
// rather than queue a job, and may not be visible to the look yet: one more
// drain then.
func (r *Worker) idle(ctx context.Context) error {
	r.busy.Add(-1)
	defer r.busy.Add(1)
	pending, err := r.hasPending(ctx)
	if err != nil {
		return err
	}
	if !pending {
		select {
		case <-r.kick:
		default:
			return nil
		}
	}
	_, err = r.drain(ctx, time.Now().Add(maxJobRun))
	return err
}

// arm raises the wake flag and closes the race it opens: a writer whose
// trigger read the flag while it was down, and which commits only now, sent
// no NOTIFY. Every such writer was running when the flag went up, so it is
// in the snapshot taken just after; once none of those is still running,
// their rows are visible and one last look finds them. arm reports whether
// it found rows (the job goes on). A transaction that outlives settleWait is
// left to the periodic sweep.
func (r *Worker) arm(ctx context.Context) (bool, error) {
	r.busy.Add(-1)
	defer r.busy.Add(1)
	if err := r.setWake(ctx, true); err != nil {
		return false, err
	}
	var snapshot string
	if err := r.pool.QueryRow(ctx, r.q.snapshot).Scan(&snapshot); err != nil {
		return false, fmt.Errorf("take snapshot: %w", err)
	}
	start := time.Now()
	for {
		var settled bool
		if err := r.pool.QueryRow(ctx, r.q.settled, snapshot).Scan(&settled); err != nil {
			return false, fmt.Errorf("check snapshot: %w", err)
		}
		pending, err := r.hasPending(ctx)
		if err != nil || pending {
			return pending, err
		}
		if settled || time.Since(start) > settleWait {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(r.cfg.BusyPoll):
		}
	}
}

// expire touches the notifications whose expiry has come, a batch at a
// time (see Expire in sql/worker.sql), if any has (ExpireDue).
func (r *Worker) expire(ctx context.Context) error {
	var due bool
	if err := r.pool.QueryRow(ctx, r.q.expireDue).Scan(&due); err != nil || !due {
		return err
	}
	for {
		tag, err := r.pool.Exec(ctx, r.q.expire, r.cfg.BatchSize)
		if err != nil {
			return err
		}
		if tag.RowsAffected() < int64(r.cfg.BatchSize) {
			return nil
		}
	}
}

// pruneArgs is the periodic prune job.
type pruneArgs struct{}

func (pruneArgs) Kind() string { return "bellhop_prune" }

func (pruneArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue, MaxAttempts: 3}
}

type pruneWorker struct {
	river.WorkerDefaults[pruneArgs]
	r *Worker
}

// pruneBatch bounds each delete, so pruning never holds many locks long.
const pruneBatch = 5000

func (w *pruneWorker) Work(ctx context.Context, job *river.Job[pruneArgs]) error {
	r := w.r
	for {
		var n int64
		err := r.pool.QueryRow(ctx, r.q.prune, r.cfg.ReplayWindow, r.cfg.Retention, pruneBatch).Scan(&n)
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		r.metrics.Pruned.Add(float64(n))
		if n < pruneBatch {
			break
		}
	}
	for {
		var n int64
		if err := r.pool.QueryRow(ctx, r.q.forget, r.cfg.ReplayWindow, pruneBatch).Scan(&n); err != nil {
			return fmt.Errorf("prune: fold old recipient horizons: %w", err)
		}
		if n < pruneBatch {
			return nil
		}
	}
}
