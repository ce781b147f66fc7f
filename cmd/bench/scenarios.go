package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/internal/loadgen"
	"github.com/bellhophq/bellhop/outbox"
)

const scenarioDoc = `1. **Commit-to-event latency.** 1,000 SSE streams (one per recipient) stay connected; writers commit
   single-row transactions (` + "`outbox.Send`" + ` in ` + "`BEGIN … COMMIT`" + `) to random recipients on an open-loop schedule
   of 100/s and 1,000/s for 5 s per run. Latency is the time the stream read the event minus the time the writer's
   COMMIT returned (and, in the "from COMMIT sent" rows, minus the time COMMIT was sent), over every event of a run.
   Anchor: a ` + "`pg_notify`" + ` round trip on the same server (LISTEN on one connection; on another, a transaction that
   inserts one row into a plain table and NOTIFYs, 1,000 sequential pings, with nothing else running): the floor for
   anything a durable commit wakes, its WAL flush included (a transaction that only NOTIFYs writes no WAL before its
   commit record and does not wait for a flush). The "writer's COMMIT" rows are the writers' own COMMIT, sent to
   return, in the same runs: the part of the "from COMMIT sent" figures no relay can shorten. At 1,000/s the "floor"
   rows run the same writers (rate, connections, statement) for as long right before each run, into a copy of the
   notifications table (` + "`LIKE … INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS`" + `, in a schema of its own)
   that no trigger watches and no relay reads, the relay idle: a writer's COMMIT with no relay work at all, the
   lowest "from COMMIT sent" any relay that pushes only committed rows could reach here. The "to the stamp" and
   "stamp to receipt" rows split the latency from COMMIT return at the stamp that logged the event: an event's id
   is a seq, which a stamp takes just below its clock in microseconds whenever the head is not ahead of the clock
   (as here), so the id read as a time is when the stamp's statement began; before it, the wait for the next stamp
   (the busy poll) and its lock; after it, the stamp, its commit, the push and the client's read. Last, "relay on its own
   core": 1,000/s again with the writers (this process, which also reads the streams, and their backends) on the
   first CPU and the relay (its process and backends) on the second, pinned as in scenario 3; skipped where
   scenario 3's pinned pass would be. It asks how much of the relay's part is waiting for a core.
2. **Sustained throughput.** The same 1,000 streams; writers commit as fast as they can for 5 s: 16 writers of
   single-row transactions, then 4 writers of ` + "`SendMany`" + ` to all 1,000 recipients (1,000 rows per transaction).
   "Writers' commit rate" is rows committed per second, over the writers' run; "relay delivered rate" is events
   received by the streams per second, over the same run shifted by the first event's lag (commit return to
   receipt, before anything queued) and ending at the last event received: a relay whose lag does not grow
   delivers at the writers' rate, one that falls behind by the time its lag grew. "Drain" is how long after the
   writers stopped the last event arrived (the lag left over), and p99 lag is commit-return-to-receive. Writers run
   closed-loop at their maximum, so when the drain stays short the relay kept up with the highest rate the writers
   could push, with zero loss. For the bulk writers, "CPU per row committed" splits the machine's CPU time over
   the run, from ` + "`/proc/<pid>/stat`" + `, by the rows committed: the writers' backends (every client backend of the
   database but the relay's), the relay's backends (told apart by their application_name), the relay process, and
   this process (the writers' client side and the 1,000 streams' reader). Then the relay's own pace with no writer
   running: this process holds the stamp lock (every stamp waits for it) while it commits 50 ` + "`SendMany`" + ` to the
   1,000 recipients, then lets go; the rate is the 50,000 events over the time from the release to the last one
   received. Last, "relay on its own core": the bulk writers again, with the writers (this process, which also
   reads the streams, and their backends) on the first CPU and the relay (its process and backends) on the second,
   pinned as in scenario 3; skipped where scenario 3's pinned pass would be.
3. **Cost to the app's transaction.** Closed-loop writers (1, 4, 16) each running ` + "`BEGIN; INSERT … RETURNING id; COMMIT`" + `
   into ` + "`<schema>.notifications`" + ` (with its triggers, while the relay runs and stamps in that wake mode) and
   into ` + "`bare`" + `, created ` + "`(LIKE <schema>.notifications INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)`" + ` —
   same columns, indexes and checks, no triggers, nobody stamping. Each run gives each table 2 s, as four 0.5 s slices
   alternating between the two tables (so drift in the disk's fsync speed hits both alike). Ratio = notification
   rows/s over bare rows/s in the same run; tx latency is BEGIN to COMMIT return. Afterwards every inserted row must
   have been stamped (nothing left pending). The relay runs through the bare slices too, so its idle cost weighs on
   the anchor: a poll-mode relay polls every 5 ms while idle (about a tenth of a core, relay and backend, measured
   with pgbench at 16 writers), an adaptive one parks, so poll's ratio reads a few points higher than the same
   notification rows/s would give adaptive. Last, "relay on its own core": adaptive again with the writers (this
   process and their backends) pinned to the first CPU it may use and the relay (its process and backends) to the
   second (sched_setaffinity, re-applied before each slice; PostgreSQL's own processes stay free); skipped where
   there is one CPU, or the backends are not processes of this machine this process may pin. It asks what the
   writers keep when the relay does not take their CPU.
4. **Connections.** 10,000 idle SSE streams (raw HTTP/1.1 clients, one per recipient) on a fresh relay with
   ` + "`BELLHOP_MAX_STREAMS=100000`" + `. RSS is VmRSS of the relay process from ` + "`/proc/<pid>/status`" + ` before connecting and
   2 s after the last stream connected; per stream = the difference / 10,000. Then one ` + "`SendMany`" + ` to all 10,000
   recipients: time from its COMMIT returning until the last (and the median) stream received its event.
5. **Unread count.** 1,000,000 rows bulk-loaded with ` + "`INSERT … SELECT generate_series`" + ` (already stamped; half of the
   filler rows read), then ` + "`VACUUM ANALYZE`" + `; three recipients with 10, 1,000 and 100,000 unread. 1,000 sequential
   ` + "`GET /notifications/unread/count`" + ` per recipient over a keep-alive connection; each answer is checked (count capped
   at 1,000). Anchor: the relay's own count (` + "`inbox.UnreadCount`" + `, the query the route runs) from this process over
   pgx, interleaved request by request with the HTTP calls: the database's share, and the rest is the relay's HTTP
   side. "Relay process CPU per request" is the relay's CPU time over each recipient's 1,000 requests (from
   ` + "`/proc/<pid>/stat`" + `, in 10 ms ticks, its background work included), divided by them.
6. **Resume.** A stream receives one event and disconnects; 1,000 events for its recipient are committed and stamped;
   the stream reconnects with ` + "`Last-Event-ID`" + `. Time from starting the reconnect (TCP dial) until the 1,000th event
   was read; every event must arrive once, in order.
7. **Large open transaction.** The latency setup of scenario 1 (1,000 streams, single-row writers at 100/s for 5 s),
   first with nothing else running (the anchor), then while another connection holds a transaction with 100,000
   uncommitted rows (for a recipient with no stream; rolled back after the run). The relay's probes must not walk
   those rows: commit-to-event latency for everyone else should stay where the anchor is.
8. **Database cost per notification.** On a throwaway cluster of its own (local binaries; fsync off, autovacuum off),
   so that its server-wide counters count nothing else: the relay runs (adaptive), and 5,000 rows are inserted with
   the statement of scenario 3, once into ` + "`notifications`" + ` (then until the relay has logged every one) and once into
   ` + "`bare`" + `, alternating which goes first: at 1,000/s (8 paced writers), and as fast as 4 closed-loop writers go.
   One CHECKPOINT and a warm-up of both tables come first, and none during the runs (checkpoint_timeout 1 h), so
   full-page images are left out. WAL bytes are the move of ` + "`pg_current_wal_insert_lsn()`" + `; PostgreSQL CPU is the user +
   system time of the postmaster and all its processes (backends that ended included), from ` + "`/proc`" + `; both
   divided by the rows. So the notification's figures include the trigger, the relay's stamps, polls, NOTIFYs
   and sweeps, and the ratio to a bare insert is the database-side price of the relay, independent of how fast
   the machine is.
9. **Wake modes.** ` + "`BELLHOP_WAKE_MODE=logical`" + ` (the relay learns of commits by logical decoding) against
   ` + "`adaptive`" + ` (the default: polls every millisecond while rows come fast, parks between them below
   ` + "`BELLHOP_PARK_RATE`" + `): scenario 1's probe (1,000 streams, 100/s
   and 1,000/s, 5 s each) on a throwaway cluster of its own with ` + "`wal_level = logical`" + ` and fsync on, the two modes
   alternating run by run, with PostgreSQL's CPU (walsender included) and the relay process's CPU per notification
   over each measured stretch, from ` + "`/proc`" + ` as in scenario 8. Figures from this cluster are comparable with each
   other, not with scenario 1's (another server, another disk's flush).

The smoke run (` + "`make bench-smoke`" + `) runs every scenario once at small sizes (fewer streams, rows and seconds).
`

var msg = outbox.Message{Kind: "bench.ping", Data: map[string]any{"n": 1}, SSE: map[string]any{"n": 1}}

func userNames(prefix string, n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return u
}

func (b *bench) pick(full, smoke int) int {
	if b.smoke {
		return smoke
	}
	return full
}

func (b *bench) dur(full, smoke time.Duration) time.Duration {
	if b.smoke {
		return smoke
	}
	return full
}

// sendOne commits one notification for user in its own transaction
// (outbox.Send is SendMany of one).
func (b *bench) sendOne(ctx context.Context, ob *outbox.Outbox, user string, l *ledger) error {
	return b.sendMany(ctx, ob, []string{user}, l)
}

// sendMany commits one notification for each of users in one statement.
func (b *bench) sendMany(ctx context.Context, ob *outbox.Outbox, users []string, l *ledger) error {
	to := make([]outbox.Recipient, len(users))
	for i, u := range users {
		to[i] = outbox.User(u)
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return err
	}
	ids, err := ob.SendMany(ctx, tx, to, msg)
	if err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	at := time.Now()
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	l.addMany(ids, users, at, time.Now())
	return nil
}

// paced runs op rate*d times on an open-loop schedule (op i at start +
// i/rate), spread over workers (loadgen.Paced).
func paced(ctx context.Context, rate int, d time.Duration, workers int, op func() error) error {
	_, err := loadgen.Paced(ctx, rate, d, workers, func(context.Context, int) error { return op() })
	return err
}

// closedLoop runs op on workers goroutines as fast as it goes for d and
// returns each op's latency.
func closedLoop(ctx context.Context, d time.Duration, workers int, op func() error) ([]time.Duration, error) {
	start := time.Now()
	var mu sync.Mutex
	var all []time.Duration
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			var mine []time.Duration
			defer func() { mu.Lock(); all = append(all, mine...); mu.Unlock() }()
			for time.Since(start) < d {
				t := time.Now()
				if err := op(); err != nil {
					return err
				}
				mine = append(mine, time.Since(t))
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return all, err
}

// deliver waits for every event in l to reach fleet f and verifies it.
func (b *bench) deliver(scenario string, f *fleet, l *ledger, timeout time.Duration) []delivery {
	f.wait(int64(l.len()), timeout)
	// A moment more, to catch duplicates or strays after the last one.
	time.Sleep(20 * time.Millisecond)
	ds, problems := f.verify(l)
	b.problem(scenario, problems...)
	return ds
}

// commitTimes is each delivered event's COMMIT, sent to return.
func commitTimes(ds []delivery) []time.Duration {
	c := make([]time.Duration, len(ds))
	for i, d := range ds {
		c[i] = d.doneAt.Sub(d.commitAt)
	}
	return c
}

func latencies(ds []delivery) (fromDone, fromSent []time.Duration) {
	for _, d := range ds {
		fromDone = append(fromDone, d.recv.Sub(d.doneAt))
		fromSent = append(fromSent, d.recv.Sub(d.commitAt))
	}
	return
}

// ---------------------------------------------------------------- 1

func (b *bench) latency(ctx context.Context) error {
	const s = "1. Latency"
	anchor := map[string]*figure{}
	for _, k := range []string{"p50", "p95", "p99", "sent p50", "sent p99"} {
		anchor[k] = anchorFig("ms")
	}
	for range b.runs {
		done, sentAt, err := b.pgNotifyRTT(ctx, b.pick(1000, 100))
		if err != nil {
			return fmt.Errorf("pg_notify anchor: %w", err)
		}
		anchor["p50"].add(pct(done, 50))
		anchor["p95"].add(pct(done, 95))
		anchor["p99"].add(pct(done, 99))
		anchor["sent p50"].add(pct(sentAt, 50))
		anchor["sent p99"].add(pct(sentAt, 99))
	}

	// The relay's connections are named for the pinned pass below.
	p, ob, users, f, err := b.relayWithStreamsIn(ctx, "adaptive", "DATABASE_URL="+withAppName(b.dbURL, latencyRelayApp))
	if err != nil {
		return err
	}
	defer p.stop()
	defer f.close()
	fmt.Fprintf(os.Stderr, "   %d streams connected\n", len(users))

	// The floor: the same writers into a copy of the table that no relay
	// reads and no trigger watches.
	floor := p.schema + "_floor"
	if _, err := b.pool.Exec(ctx, fmt.Sprintf("CREATE SCHEMA %[2]s; "+
		"CREATE TABLE %[2]s.notifications (LIKE %[1]s.notifications INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)",
		p.schema, floor)); err != nil {
		return err
	}
	defer dropSchema(b.pool, floor)
	floorOb, err := outbox.New(outbox.Config{Schema: floor})
	if err != nil {
		return err
	}

	d := b.dur(5*time.Second, 500*time.Millisecond)
	// The 1,000/s figures the target's limit is written from.
	var target, targetP99, commit50, commit99, relay50, toStamp50, fromStamp50, floor50, floor99 *figure
	for _, rate := range []int{100, 1000} {
		run := func(d time.Duration) ([]delivery, error) { return b.pacedRun(ctx, s, ob, users, f, rate, d) }
		if _, err := run(b.dur(500*time.Millisecond, 200*time.Millisecond)); err != nil { // warm-up, verified, not counted
			return err
		}
		name := func(x string) string { return fmt.Sprintf("%s/s: %s", thousands(float64(rate)), x) }
		p50 := b.fig(s, name("p50, from COMMIT return"), "ms")
		p95 := b.fig(s, name("p95, from COMMIT return"), "ms")
		p99 := b.fig(s, name("p99, from COMMIT return"), "ms")
		s50 := b.fig(s, name("p50, from COMMIT sent"), "ms")
		s99 := b.fig(s, name("p99, from COMMIT sent"), "ms")
		c50 := b.fig(s, name("writer's COMMIT p50, sent to return"), "ms")
		c99 := b.fig(s, name("writer's COMMIT p99, sent to return"), "ms")
		w50 := b.fig(s, name("p50, COMMIT return to the stamp"), "ms")
		f50 := b.fig(s, name("p50, the stamp to receipt"), "ms")
		var b50, b99 *figure
		if rate == 1000 {
			b50 = b.fig(s, name("the floor: a COMMIT p50 with no relay work, sent to return"), "ms")
			b99 = b.fig(s, name("the floor: a COMMIT p99 with no relay work, sent to return"), "ms")
		}
		p50.anchor, p95.anchor, p99.anchor = anchor["p50"], anchor["p95"], anchor["p99"]
		s50.anchor, s99.anchor = anchor["sent p50"], anchor["sent p99"]
		if rate == 1000 {
			// Issue 15's first milestone, from COMMIT sent.
			s50.target, s50.ok = "≤ 1 ms", atMost(1)
			s99.target, s99.ok = "≤ 5 ms", atMost(5)
			target, targetP99, commit50, commit99, relay50, toStamp50, fromStamp50 = s50, s99, c50, c99, p50, w50, f50
			floor50, floor99 = b50, b99
		}
		for range b.runs {
			if b50 != nil {
				// Right before each measured run, so that both meet the
				// disk and the machine of the same moment.
				commits, err := b.floorRun(ctx, floorOb, users, rate, d)
				if err != nil {
					return fmt.Errorf("the floor: %w", err)
				}
				b50.add(pct(commits, 50))
				b99.add(pct(commits, 99))
			}
			ds, err := run(d)
			if err != nil {
				return err
			}
			done, sentAt := latencies(ds)
			p50.add(pct(done, 50))
			p95.add(pct(done, 95))
			p99.add(pct(done, 99))
			s50.add(pct(sentAt, 50))
			s99.add(pct(sentAt, 99))
			commits := commitTimes(ds)
			c50.add(pct(commits, 50))
			c99.add(pct(commits, 99))
			fmt.Fprintf(os.Stderr, "   %d/s: %d events, p50 %.2f ms p99 %.2f ms\n", rate, len(ds), pct(done, 50), pct(done, 99))
			toStamp, fromStamp := stampSplit(ds)
			w50.add(pct(toStamp, 50))
			f50.add(pct(fromStamp, 50))
		}
	}
	setLimit := func(pinned50 *figure) {
		target.limit = latencyLimit(commit50.median(), commit99.median(), floor50.median(), floor99.median(),
			anchor["sent p50"].median(), relay50.median(), toStamp50.median(), fromStamp50.median(), pinned50)
		targetP99.limit = target.limit
	}

	// 1,000/s again, with the relay on a core the writers and the streams'
	// reader do not share: how much of the relay's part is waiting for a
	// core.
	pin, unpin, err := b.pinnedPass(ctx, latencyRelayApp, p.Pid(), 8) // pacedRun's 8 writers
	if err != nil {
		return err
	}
	defer unpin()
	if pin == nil {
		setLimit(nil)
		return nil
	}
	name := func(x string) string { return "1,000/s, relay on its own core: " + x }
	p50 := b.fig(s, name("p50, from COMMIT return"), "ms")
	p99 := b.fig(s, name("p99, from COMMIT return"), "ms")
	s50 := b.fig(s, name("p50, from COMMIT sent"), "ms")
	c50 := b.fig(s, name("writer's COMMIT p50, sent to return"), "ms")
	for range b.runs {
		if err := pin.pin(ctx); err != nil {
			return err
		}
		ds, err := b.pacedRun(ctx, s, ob, users, f, 1000, d)
		if err != nil {
			return err
		}
		done, sentAt := latencies(ds)
		p50.add(pct(done, 50))
		p99.add(pct(done, 99))
		s50.add(pct(sentAt, 50))
		c50.add(pct(commitTimes(ds), 50))
		fmt.Fprintf(os.Stderr, "   1000/s, relay on its own core: %d events, p50 %.2f ms p99 %.2f ms\n",
			len(ds), pct(done, 50), pct(done, 99))
	}
	setLimit(p50)
	return nil
}

// latencyRelayApp is the application_name of scenario 1's relay
// connections.
const latencyRelayApp = "bench-relay-latency"

// stampSplit splits each delivery's latency from COMMIT return at the
// stamp that logged it: the event's id is a seq, which a stamp takes just
// below its clock in microseconds (sql/worker.sql, Stamp) whenever, as
// here, the head is not ahead of the clock. So the id, read as a time, is
// when the stamp's statement began: before it, the wait for a stamp to
// look (the busy poll) and its lock; after it, the stamp, its commit, the
// push and the client's read.
func stampSplit(ds []delivery) (toStamp, fromStamp []time.Duration) {
	for _, d := range ds {
		at := time.UnixMicro(d.seq)
		toStamp = append(toStamp, at.Sub(d.doneAt))
		fromStamp = append(fromStamp, d.recv.Sub(at))
	}
	return toStamp, fromStamp
}

// pacedRun is scenario 1's probe: one-row transactions at rate for d,
// each to one of users at random (pacedSends); it returns the deliveries,
// checked against what committed.
func (b *bench) pacedRun(ctx context.Context, s string, ob *outbox.Outbox, users []string, f *fleet, rate int, d time.Duration) ([]delivery, error) {
	l, err := b.pacedSends(ctx, ob, users, rate, d)
	if err != nil {
		return nil, err
	}
	return b.deliver(s, f, l, 30*time.Second), nil
}

// pacedSends commits one-row transactions at rate for d, each to one of
// users at random, from 8 writers, and returns what committed.
func (b *bench) pacedSends(ctx context.Context, ob *outbox.Outbox, users []string, rate int, d time.Duration) (*ledger, error) {
	l := newLedger()
	err := paced(ctx, rate, d, 8, func() error {
		return b.sendOne(ctx, ob, users[rand.IntN(len(users))], l)
	})
	return l, err
}

// floorRun is pacedRun's writers (pacedSends) into ob's table, a copy of
// the notifications table without its triggers that no relay reads: each
// COMMIT, sent to return, with no relay work at all. No event can come
// sooner after COMMIT sent than the COMMIT returns.
func (b *bench) floorRun(ctx context.Context, ob *outbox.Outbox, users []string, rate int, d time.Duration) ([]time.Duration, error) {
	l, err := b.pacedSends(ctx, ob, users, rate, d)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	commits := make([]time.Duration, 0, len(l.m))
	for _, s := range l.m {
		commits = append(commits, s.doneAt.Sub(s.commitAt))
	}
	return commits, nil
}

// latencyLimit says what bounds scenario 1's latency at 1,000/s, with the
// medians of the runs: the writers' COMMIT (sent to return) at p50 and p99,
// the same with no relay work (floorRun), the anchor's p50 from COMMIT
// sent, the relay's p50 from COMMIT return and its two parts (stampSplit),
// and, when it ran, the pass with the relay on its own core.
func latencyLimit(commit50, commit99, floor50, floor99, anchor50, relay50, toStamp50, fromStamp50 float64, pinned50 *figure) string {
	pinned := ""
	if pinned50 != nil && len(pinned50.vals) > 0 {
		diff := "the difference is what waiting for a CPU cost it in these runs"
		if pinned50.median() >= relay50 {
			diff = "no less, so in these runs waiting for a CPU was not what held it back"
		}
		pinned = fmt.Sprintf(" With the relay on a core of its own (the \"relay on its own core\" rows) it took %s "+
			"against %s: %s.", format(pinned50.median(), "ms"), format(relay50, "ms"), diff)
	}
	left := "so the writer's commit alone took the whole 1 ms budget at the median"
	if commit50 < 1 {
		left = "so the 1 ms budget left the relay " + format(1-commit50, "ms") + " at the median"
	}
	floor := "the rest of the writers' COMMIT is what relaying added on the same cores (the relay's work, and this " +
		"process's reading of the streams)"
	var beyond []string
	if floor50 >= 1 {
		beyond = append(beyond, "the p50 target")
	}
	if floor99 >= 5 {
		beyond = append(beyond, "the p99 target")
	}
	if len(beyond) > 0 {
		verb := " is"
		if len(beyond) > 1 {
			verb = " are"
		}
		floor = strings.Join(beyond, " and ") + verb + " out of reach on this machine for anything that pushes " +
			"only committed rows: no event can arrive before its COMMIT returns"
	}
	return fmt.Sprintf("From COMMIT sent, an event waits first for the writer's own COMMIT: in these runs it took %s at "+
		"the median and %s at p99, sent to return (its WAL flush, on a server that also runs the relay's stamps), "+
		"against %s for a durable commit's NOTIFY on the idle server (the anchor); %s. The floor rows measure the "+
		"same writers at the same rate, right before each run, into a copy of the table that no trigger watches and "+
		"no relay reads: with no relay work at all a COMMIT took %s at the median and %s at p99, so %s. "+
		"From COMMIT return the relay took %s: "+
		"%s until the stamp that logged the event began (its next look for new rows, every BELLHOP_BUSY_POLL after "+
		"the last stamp ended, 1 ms, and the stamp's lock) and %s from there to the client's read (the stamp, its "+
		"commit, the push, the stream's write and the read), at the median of the \"to the stamp\" and \"stamp to "+
		"receipt\" rows.%s A p50 of 1 ms from COMMIT sent needs a writer's commit well under a millisecond "+
		"(a disk that flushes faster, cores the writers do not share) and both halves of the relay's part cut: the "+
		"wait for a stamp (a NOTIFY per "+
		"commit costs writers far more, scenario 3's notify mode, so the way there is a cheaper poll run more "+
		"often; measured from /proc over 3,000 calls each, on the machine of an earlier run, an empty stamp costs "+
		"its backend 0.23-0.40 ms of CPU, more as the table grows, and a look with HasPending about 0.09 ms), and "+
		"the stamp and push, a chain of process wake-ups (the stamping backend, the relay, the stream's "+
		"goroutine, the client) that each cost tenths of a millisecond on this machine.",
		format(commit50, "ms"), format(commit99, "ms"), format(anchor50, "ms"), left,
		format(floor50, "ms"), format(floor99, "ms"), floor, format(relay50, "ms"),
		format(toStamp50, "ms"), format(fromStamp50, "ms"), pinned)
}

// pgNotifyRTT measures n sequential LISTEN/NOTIFY round trips: on one
// connection, a transaction that inserts a row into a plain table and
// NOTIFYs; received on another. The table and the channel are this
// process's (bench_anchor_<pid>): two runs on one database stay apart. The insert makes the commit wait for its
// WAL flush, as a writer's does; a transaction that only NOTIFYs does not.
func (b *bench) pgNotifyRTT(ctx context.Context, n int) (fromDone, fromSent []time.Duration, err error) {
	name := fmt.Sprintf("bench_anchor_%d", os.Getpid())
	if _, err := b.pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+name+" (n int NOT NULL)"); err != nil {
		return nil, nil, err
	}
	defer func() { _, _ = b.pool.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+name) }()
	lc, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, nil, err
	}
	defer lc.Close(context.Background())
	nc, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, nil, err
	}
	defer nc.Close(context.Background())
	if _, err := lc.Exec(ctx, "LISTEN "+name); err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recv := make(chan time.Time, 1)
	go func() {
		for {
			if _, err := lc.WaitForNotification(lctx); err != nil {
				close(recv)
				return
			}
			recv <- time.Now()
		}
	}()
	for i := range n {
		tx, err := nc.Begin(ctx)
		if err != nil {
			return nil, nil, err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+name+" VALUES ($1)", i); err != nil {
			return nil, nil, err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", name, fmt.Sprint(i)); err != nil {
			return nil, nil, err
		}
		at := time.Now()
		if err := tx.Commit(ctx); err != nil {
			return nil, nil, err
		}
		done := time.Now()
		select {
		case t, ok := <-recv:
			if !ok {
				return nil, nil, errors.New("listener failed")
			}
			fromDone = append(fromDone, t.Sub(done))
			fromSent = append(fromSent, t.Sub(at))
		case <-time.After(5 * time.Second):
			return nil, nil, errors.New("notification not received in 5 s")
		}
	}
	cancel()
	for range recv {
	}
	return fromDone, fromSent, nil
}

// relayWithStreams starts an adaptive relay on a fresh schema and connects
// one stream for each of 1,000 recipients (200 in smoke runs).
func (b *bench) relayWithStreams(ctx context.Context) (*relayProc, *outbox.Outbox, []string, *fleet, error) {
	return b.relayWithStreamsIn(ctx, "adaptive")
}

// relayWithStreamsIn is relayWithStreams with the relay in wake mode mode,
// and extra in its environment.
func (b *bench) relayWithStreamsIn(ctx context.Context, mode string, extra ...string) (*relayProc, *outbox.Outbox, []string, *fleet, error) {
	p, err := b.startRelay(ctx, "", mode, extra...)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ob, err := outbox.New(outbox.Config{Schema: p.schema})
	if err != nil {
		p.stop()
		return nil, nil, nil, nil, err
	}
	users := userNames("u", b.pick(1000, 200))
	f, err := connectFleet(ctx, p.addr, users, 100)
	if err != nil {
		p.stop()
		return nil, nil, nil, nil, err
	}
	return p, ob, users, f, nil
}

// ---------------------------------------------------------------- 2

func (b *bench) throughput(ctx context.Context) error {
	const s = "2. Throughput"
	// The relay's connections are named, so that its backends' CPU is told
	// from the writers' and the pinned pass can put them on its core.
	p, ob, users, f, err := b.relayWithStreamsIn(ctx, "adaptive", "DATABASE_URL="+withAppName(b.dbURL, bulkRelayApp))
	if err != nil {
		return err
	}
	defer p.stop()
	defer f.close()

	d := b.dur(5*time.Second, 500*time.Millisecond)
	bulk := fmt.Sprintf("4 writers × SendMany(%s)", thousands(float64(len(users))))
	kinds := []struct {
		label   string
		writers int
		op      func(*ledger) error
	}{
		{"16 writers × 1 row/tx", 16, func(l *ledger) error { return b.sendOne(ctx, ob, users[rand.IntN(len(users))], l) }},
		{bulk, 4, func(l *ledger) error { return b.sendMany(ctx, ob, users, l) }},
	}
	type result struct {
		commitRate, deliveredRate, drain, p99 float64
		cpu                                   [cpuGroups]float64 // µs per row committed
	}
	run := func(writers int, op func(*ledger) error, d time.Duration) (result, error) {
		var r result
		before, err := b.sampleCPU(ctx, bulkRelayApp, p.Pid())
		if err != nil {
			return r, err
		}
		l := newLedger()
		start := time.Now()
		if _, err := closedLoop(ctx, d, writers, func() error { return op(l) }); err != nil {
			return r, err
		}
		stop := time.Now()
		committed := l.len()
		ds := b.deliver(s, f, l, 60*time.Second)
		after, err := b.sampleCPU(ctx, bulkRelayApp, p.Pid())
		if err != nil {
			return r, err
		}
		last := lastReceived(ds)
		done, _ := latencies(ds)
		r.commitRate = float64(committed) / stop.Sub(start).Seconds()
		r.deliveredRate = float64(len(ds)) / last.Sub(start.Add(firstLag(ds))).Seconds()
		r.drain, r.p99 = ms(last.Sub(stop)), pct(done, 99)
		for g, us := range after.since(before) {
			r.cpu[g] = us / float64(committed)
		}
		return r, nil
	}
	// The bulk senders' two targets, and the CPU split their limit cites.
	var keepUp, bulkLag *figure
	var cpu [cpuGroups]*figure
	for _, k := range kinds {
		if _, err := run(k.writers, k.op, b.dur(300*time.Millisecond, 100*time.Millisecond)); err != nil {
			return err
		}
		commit := anchorFig("/s")
		delivered := b.fig(s, k.label+": relay delivered rate (anchor: writers' commit rate)", "/s")
		delivered.anchor = commit
		commitRow := b.fig(s, k.label+": writers' max commit rate", "/s")
		lag := b.fig(s, k.label+": p99 commit-to-event lag", "ms")
		drain := b.fig(s, k.label+": last event after writers stopped", "ms")
		bulkKind := k.writers == 4
		if bulkKind {
			// The relay keeps up with bulk senders (issue 15): it delivers
			// as fast as they commit, and lags them by little. The ratio is
			// shown to two decimals, so 0.995 is 1.00.
			keepUp = b.fig(s, k.label+": relay delivered rate / writers' commit rate", "x")
			keepUp.target, keepUp.ok = "≥ 1.00", atLeast(0.995)
			lag.target, lag.ok = "< 250 ms", func(v float64) bool { return v < 250 }
			bulkLag = lag
			for g := range cpu {
				cpu[g] = b.fig(s, k.label+": CPU per row committed, "+cpuGroupNames[g], "µs")
			}
		}
		for range b.runs {
			r, err := run(k.writers, k.op, d)
			if err != nil {
				return err
			}
			commit.add(r.commitRate)
			commitRow.add(r.commitRate)
			if bulkKind {
				keepUp.add(r.deliveredRate / r.commitRate)
				for g, c := range cpu {
					c.add(r.cpu[g])
				}
			}
			delivered.add(r.deliveredRate)
			lag.add(r.p99)
			drain.add(r.drain)
			fmt.Fprintf(os.Stderr, "   %s: commit %.0f/s delivered %.0f/s drain %.0f ms p99 %.1f ms; CPU µs/row %.1f\n",
				k.label, r.commitRate, r.deliveredRate, r.drain, r.p99, r.cpu)
		}
	}

	// The relay's own pace, with no writer competing for the CPU: a
	// backlog committed while this process holds every stamp back.
	batches := b.pick(50, 5)
	backlog := b.fig(s, fmt.Sprintf("backlog of %s rows (SendMany(%s) × %d), no writer running: relay delivered rate",
		thousands(float64(batches*len(users))), thousands(float64(len(users))), batches), "/s")
	for range b.runs {
		rate, err := b.drainBacklog(ctx, s, p.schema, ob, users, f, batches)
		if err != nil {
			return fmt.Errorf("backlog: %w", err)
		}
		backlog.add(rate)
		fmt.Fprintf(os.Stderr, "   backlog: delivered %.0f/s\n", rate)
	}

	// The bulk senders again, with the relay on a core the writers do not
	// share: what keeping up takes.
	pin, unpin, err := b.pinnedPass(ctx, bulkRelayApp, p.Pid(), 4)
	if err != nil {
		return err
	}
	defer unpin()
	if pin == nil {
		keepUp.limit = bulkLimit(cpu, nil, nil)
		bulkLag.limit = keepUp.limit
		return nil
	}
	label := bulk + ", relay on its own core"
	commitRow := b.fig(s, label+": writers' max commit rate", "/s")
	pinnedKeepUp := b.fig(s, label+": relay delivered rate / writers' commit rate", "x")
	pinnedLag := b.fig(s, label+": p99 commit-to-event lag", "ms")
	for range b.runs {
		if err := pin.pin(ctx); err != nil {
			return err
		}
		r, err := run(4, kinds[1].op, d)
		if err != nil {
			return err
		}
		commitRow.add(r.commitRate)
		pinnedKeepUp.add(r.deliveredRate / r.commitRate)
		pinnedLag.add(r.p99)
		fmt.Fprintf(os.Stderr, "   %s: commit %.0f/s delivered %.0f/s drain %.0f ms p99 %.1f ms\n",
			label, r.commitRate, r.deliveredRate, r.drain, r.p99)
	}
	keepUp.limit = bulkLimit(cpu, pinnedKeepUp, pinnedLag)
	bulkLag.limit = keepUp.limit
	return nil
}

// bulkRelayApp is the application_name of scenario 2's relay connections.
const bulkRelayApp = "bench-relay-bulk"

// The processes whose CPU scenario 2 splits (sampleCPU).
const (
	cpuWriterBackends = iota
	cpuRelayBackends
	cpuRelay
	cpuSelf
	cpuGroups
)

var cpuGroupNames = [cpuGroups]string{
	"writers' backends",
	"relay's backends",
	"relay process",
	"this process (writers' client side, the streams' reader)",
}

// cpuSample is the CPU time of each process, by pid.
type cpuSample map[int]procCPU

type procCPU struct {
	group int   // cpuWriterBackends, ...
	ticks int64 // user + system
}

// sampleCPU reads the CPU time of the database's client backends (the
// relays', named app, and everyone else's: the writers', and this
// process's own reads), of the relay processes and of this one.
func (b *bench) sampleCPU(ctx context.Context, app string, relayPids ...int) (cpuSample, error) {
	rows, err := b.pool.Query(ctx, `SELECT pid, application_name = $1 FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'`, app)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	s := cpuSample{}
	for rows.Next() {
		var pid int
		var relay bool
		if err := rows.Scan(&pid, &relay); err != nil {
			return nil, err
		}
		g := cpuWriterBackends
		if relay {
			g = cpuRelayBackends
		}
		s[pid] = procCPU{g, cpuTicks(pid)}
	}
	for _, pid := range relayPids {
		s[pid] = procCPU{cpuRelay, cpuTicks(pid)}
	}
	s[os.Getpid()] = procCPU{cpuSelf, cpuTicks(os.Getpid())}
	return s, rows.Err()
}

// since is each group's CPU time from start to s, in µs. A process that
// began since counts whole; one that ended since, not at all.
func (s cpuSample) since(start cpuSample) [cpuGroups]float64 {
	var d [cpuGroups]float64
	for pid, p := range s {
		d[p.group] += float64(p.ticks-start[pid].ticks) * float64(tick/time.Microsecond)
	}
	return d
}

// drainBacklog commits batches × SendMany(users) while it holds the stamp
// lock (a transaction that locks stamp_lock as every stamp does, see
// migration 00011), so the relay stamps none of them, then lets go and
// returns the rate the relay delivered them at, from the release to the
// last one received.
func (b *bench) drainBacklog(ctx context.Context, s, schema string, ob *outbox.Outbox, users []string, f *fleet, batches int) (float64, error) {
	lock, err := b.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = lock.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := lock.Exec(ctx, "LOCK TABLE "+pgx.Identifier{schema, "stamp_lock"}.Sanitize()+" IN SHARE UPDATE EXCLUSIVE MODE"); err != nil {
		return 0, err
	}
	l := newLedger()
	for range batches {
		if err := b.sendMany(ctx, ob, users, l); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if err := lock.Commit(ctx); err != nil {
		return 0, err
	}
	ds := b.deliver(s, f, l, 60*time.Second)
	if len(ds) == 0 {
		return 0, errors.New("nothing delivered")
	}
	return float64(len(ds)) / lastReceived(ds).Sub(start).Seconds(), nil
}

// firstLag is the lag (commit return to receipt) of the first of ds
// received: the pipeline's own latency, before anything queued. Scenario 2
// counts the delivered rate from the writers' start plus it, so that a
// relay whose lag does not grow delivers at the rate the writers commit,
// and one that falls behind by the time its lag grew.
func firstLag(ds []delivery) time.Duration {
	var first delivery
	for _, x := range ds {
		if first.recv.IsZero() || x.recv.Before(first.recv) {
			first = x
		}
	}
	return first.recv.Sub(first.doneAt)
}

// lastReceived is when the last of ds was received.
func lastReceived(ds []delivery) time.Time {
	var last time.Time
	for _, x := range ds {
		if x.recv.After(last) {
			last = x.recv
		}
	}
	return last
}

// bulkLimit is what keeps the relay behind the bulk senders, from the
// run's CPU split and, when it ran, the pass with the relay on its own
// core.
func bulkLimit(cpu [cpuGroups]*figure, pinnedKeepUp, pinnedLag *figure) string {
	us := func(g int) string { return format(cpu[g].median(), "µs") }
	t := fmt.Sprintf("Per row, the relay's side costs the machine more CPU than the writers' own backends: in these runs %s "+
		"in the relay's backends (one stamping backend at a time: stamps are serialized, as seqs follow commit order) "+
		"and %s in the relay process (mostly pushing: a write per event and stream, which on loopback also does the "+
		"receiver's TCP work), against %s in the writers' backends; the load generator, which reads the 1,000 streams, "+
		"spent %s more (the CPU rows). On 2 cores that all of them share, the CPU goes by runnable thread, and the "+
		"writers' four busy backends outdraw the relay's pipeline (one stamping backend, then the push), so the writers "+
		"commit faster than the relay delivers, and its lag grows. Nothing else holds the pipeline back: sampled on "+
		"2026-12-02 (pg_stat_activity every 2 ms, strace), the stamping backend waited on no lock, and for about a "+
		"third of its time it waited for the relay process to take the last stamp's rows.",
		us(cpuRelayBackends), us(cpuRelay), us(cpuWriterBackends), us(cpuSelf))
	if pinnedKeepUp != nil && len(pinnedKeepUp.vals) > 0 {
		t += fmt.Sprintf(" With the relay on a core of its own and the writers on the other (one core each; the \"relay on "+
			"its own core\" rows) it delivered %s of the writers' rate, p99 lag %s: it keeps up, or nearly, once it has "+
			"about as much CPU as the writers.", format(pinnedKeepUp.median(), "x"), format(pinnedLag.median(), "ms"))
	}
	return t + " Nothing cheaper closed the gap, each tried with scenario 2 alone, in alternating runs against the code " +
		"as it stands (2026-12-02): relay_log without its recipient index (a third of a stamp's own cost) 0.85 and " +
		"0.82 against 0.81 and 0.79 (the delivered rate then counted from the writers' start); a stream's queued " +
		"events gathered into one write, no change (each stamp gives each stream one event); GOGC=400, and a push " +
		"queue of 8 stamps instead of 2, no change outside the spread. " +
		"Keeping up with bulk writers at their full speed takes a relay with about as much CPU as the writers' " +
		"backends: cores of its own, or a machine of its own."
}

// ---------------------------------------------------------------- 3

func (b *bench) cost(ctx context.Context) error {
	const s = "3. Cost to the app's tx"
	d := b.dur(2*time.Second, 300*time.Millisecond)
	writers := []int{1, 4, 16}
	for _, mode := range []string{"adaptive", "notify", "poll"} {
		if err := b.costMode(ctx, s, mode, false, writers, d); err != nil {
			return fmt.Errorf("%s mode: %w", mode, err)
		}
	}
	// What the writers keep when the relay does not compete for their CPU.
	if err := b.costMode(ctx, s, "adaptive", true, writers, d); err != nil {
		return fmt.Errorf("adaptive mode, relay on its own core: %w", err)
	}
	return nil
}

// pinnedPass prepares a "relay on its own core" pass for the relay
// process relayPid, whose connections are named app. Where the split cannot
// be made it says why and returns a nil pin. Otherwise it first has the
// pool open conns connections (one the pool opened after a pin would run
// unpinned); unpin gives every process pinned since its CPUs back.
func (b *bench) pinnedPass(ctx context.Context, app string, relayPid, conns int) (pin *pinning, unpin func(), err error) {
	pin, err = b.newPinning(ctx, app, relayPid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "   relay on its own core: skipped: %v\n", err)
		return nil, func() {}, nil
	}
	if err := openConns(ctx, b.pool, conns); err != nil {
		return nil, func() {}, err
	}
	return pin, func() {
		if err := pin.unpin(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintf(os.Stderr, "   unpin: %v\n", err)
		}
	}, nil
}

// openConns has pool open n connections (it keeps them, idle).
func openConns(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}

// pinnedRelayApp is the application_name of the relay's connections in
// scenario 3's pinned pass.
const pinnedRelayApp = "bench-relay-pinned"

// costMode measures scenario 3 in one wake mode; pinned puts the relay on
// a core of its own and the writers on another (see pinning).
func (b *bench) costMode(ctx context.Context, s, mode string, pinned bool, writers []int, d time.Duration) error {
	var extra []string
	if pinned {
		extra = append(extra, "DATABASE_URL="+withAppName(b.dbURL, pinnedRelayApp))
	}
	p, err := b.startRelay(ctx, "", mode, extra...)
	if err != nil {
		return err
	}
	defer p.stop()
	var pin *pinning
	if pinned {
		// Each writer count opens its connections before its first pin.
		var unpin func()
		if pin, unpin, err = b.pinnedPass(ctx, pinnedRelayApp, p.Pid(), 0); err != nil {
			return err
		}
		defer unpin()
		if pin == nil {
			return nil
		}
	}
	if _, err := b.pool.Exec(ctx, fmt.Sprintf(
		"CREATE TABLE %[1]s.bare (LIKE %[1]s.notifications INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)", p.schema)); err != nil {
		return err
	}
	const insert = `INSERT INTO %s (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text`
	tables := map[string]string{
		"notif": fmt.Sprintf(insert, p.schema+".notifications"),
		"bare":  fmt.Sprintf(insert, p.schema+".bare"),
	}
	var inserted atomic.Int64
	loop := func(table string, w int, d time.Duration) (float64, []time.Duration, error) {
		q := tables[table]
		start := time.Now()
		lat, err := closedLoop(ctx, d, w, func() error {
			tx, err := b.pool.Begin(ctx)
			if err != nil {
				return err
			}
			var id string
			err = tx.QueryRow(ctx, q, "", "User", fmt.Sprintf("u%d", rand.IntN(1000)), "bench.cost",
				`{"n": 1}`, `{"n": 1}`, []string{"database", "sse"}).Scan(&id)
			if err != nil {
				_ = tx.Rollback(ctx)
				return err
			}
			return tx.Commit(ctx)
		})
		if table == "notif" {
			inserted.Add(int64(len(lat)))
		}
		return float64(len(lat)) / time.Since(start).Seconds(), lat, err
	}
	for _, t := range []string{"notif", "bare"} { // warm-up
		if _, _, err := loop(t, 4, b.dur(500*time.Millisecond, 100*time.Millisecond)); err != nil {
			return err
		}
	}
	for run := range b.runs {
		for _, w := range writers {
			label := fmt.Sprintf("%s, %d writer", mode, w)
			if pinned {
				label = fmt.Sprintf("%s, relay on its own core, %d writer", mode, w)
			}
			if w > 1 {
				label += "s"
			}
			rows := b.fig(s, label+": notification rows/s (anchor: bare)", "/s")
			ratio := b.fig(s, label+": ratio to bare", "x")
			lat := b.fig(s, label+": tx latency p50 (anchor: bare)", "ms")
			if rows.anchor == nil {
				rows.anchor, lat.anchor = anchorFig("/s"), anchorFig("ms")
			}
			if mode == "adaptive" && !pinned {
				ratio.target, ratio.ok = "≥ 0.90", atLeast(0.9)
				ratio.limit = costLimit
			}
			if pin != nil {
				// Every writer's connection open before the first pin: one
				// the pool opened later would run unpinned.
				if err := openConns(ctx, b.pool, w); err != nil {
					return err
				}
			}
			// Four alternating slices per table and run, so drift in the
			// (virtual) disk's fsync speed hits both alike.
			res := map[string]float64{}
			lats := map[string][]time.Duration{}
			for slice := range 4 {
				order := []string{"notif", "bare"}
				if (run+slice)%2 == 1 {
					order = []string{"bare", "notif"}
				}
				for _, t := range order {
					if pin != nil {
						if err := pin.pin(ctx); err != nil {
							return err
						}
					}
					r, l, err := loop(t, w, d/4)
					if err != nil {
						return err
					}
					res[t] += r / 4
					lats[t] = append(lats[t], l...)
				}
			}
			rows.add(res["notif"])
			rows.anchor.add(res["bare"])
			ratio.add(res["notif"] / res["bare"])
			lat.add(pct(lats["notif"], 50))
			lat.anchor.add(pct(lats["bare"], 50))
			fmt.Fprintf(os.Stderr, "   %s: notif %.0f/s bare %.0f/s ratio %.2f\n", label, res["notif"], res["bare"], res["notif"]/res["bare"])
		}
	}
	// Nothing lost: every inserted notification gets stamped.
	deadline := time.Now().Add(120 * time.Second)
	for {
		var pending, stamped int64
		// Rows here are only inserted, so each gets exactly one log entry.
		err := b.pool.QueryRow(ctx, fmt.Sprintf(
			"SELECT (SELECT count(*) FROM %[1]s.relay_pending), (SELECT count(*) FROM %[1]s.relay_log)", p.schema)).Scan(&pending, &stamped)
		if err != nil {
			return err
		}
		if pending == 0 && stamped == inserted.Load() {
			break
		}
		if time.Now().After(deadline) {
			b.problem(s, fmt.Sprintf("%s mode: %d inserted, %d stamped, %d still pending after 120 s", mode, inserted.Load(), stamped, pending))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w := p.warnings(); w != "" {
		fmt.Fprintf(os.Stderr, "   relay (%s) logged: %s\n", mode, w)
	}
	return nil
}

const costLimit = "The relay's database work competes with the writers for the same 2 cores. While rows keep coming " +
	"it stamps every BELLHOP_BUSY_POLL (1 ms), each stamp a transaction of its own: on the machine of this report's " +
	"run, a stamp that finds nothing costs its backend 0.23-0.40 ms of CPU (from /proc over 3,000 calls; the lock " +
	"0.05 ms of it, the durability setting 0.03 ms, the rest mostly starting and ending the stamp statement's plan) " +
	"and a look with HasPending 0.09 ms, so polling alone takes a quarter of a core or more at 1,000 polls a " +
	"second, whatever the writers' rate. Before the stamp kept one cached plan (2026-12-01), PostgreSQL also " +
	"planned it afresh, 1 ms each, for up to every poll. pg_stat_statements (a throwaway cluster, scenario 1's 1,000/s): the relay's " +
	"statements execute in about 100 µs per notification (the stamp 112 µs per call at 1.45 rows a stamp, " +
	"HasPending 23 µs, the lock 9 µs, the durability setting 6 µs) against 160 µs for the writer's own INSERT; the " +
	"rest of its cost is per statement and per transaction (protocol, snapshots, commits). Settings that trade for " +
	"it: BELLHOP_BUSY_POLL (longer batches more rows per stamp, each millisecond adds half a millisecond to the " +
	"median latency) and BELLHOP_DURABLE_STAMPS=true (stamps join the writers' WAL flushes; about a millisecond " +
	"more latency); measured with pgbench at 4 writers on 2026-11-27: 0.64 at 1 ms, 0.79-0.92 at 10 ms, 0.85 with both. " +
	"With the relay on a core of its own (the pinned rows) the writers keep more, not all: each stamp that finds rows " +
	"is a write transaction the writers feel inside PostgreSQL; pinned and at 10 ms they kept 0.93 or more at 1, 4 " +
	"and 16 writers (see \"What the misses have in common\")."

// ---------------------------------------------------------------- 4

func (b *bench) connections(ctx context.Context) error {
	const s = "4. Connections"
	n := b.pick(10000, 500)
	label := thousands(float64(n))
	perConn := b.fig(s, "relay RSS per idle stream at "+label+" streams", "KiB")
	perConn.target, perConn.ok = "≤ 16 KiB", atMost(16)
	perConn.limit = connLimit
	before := b.fig(s, "relay RSS with no stream", "MiB")
	after := b.fig(s, "relay RSS with "+label+" streams", "MiB")
	connect := b.fig(s, "connect "+label+" streams (200 at a time)", "s")
	last := b.fig(s, "SendMany to "+label+": last stream received", "ms")
	last.target, last.ok = "≤ 1 s", atMost(1000)
	last.limit = "The 10,000 rows are stamped in ten serialized transactions of 1,000 (the worker's BatchSize), each appending " +
		"1,000 narrow relay_log entries (the notification rows are only read) and committing without waiting for its WAL " +
		"flush, and the hub tails 1,000 rows per query after each; the median stream waits for about half of them. Writing " +
		"the frames is the cheap part (see the throughput note)."
	median := b.fig(s, "SendMany to "+label+": median stream received", "ms")
	commit := b.fig(s, "SendMany to "+label+": the writer's COMMIT took", "ms")
	for range b.runs {
		r, err := b.idleFanOut(ctx, s, "c", n, b.dur(2*time.Second, 500*time.Millisecond), 30*time.Second,
			func(addr string, users []string) (*fleet, error) { return connectFleet(ctx, addr, users, 200) })
		if err != nil {
			return err
		}
		connect.add(r.connect.Seconds())
		before.add(float64(r.rss0) / 1024)
		after.add(float64(r.rss1) / 1024)
		perConn.add(float64(r.rss1-r.rss0) / float64(n))
		last.add(pct(r.lat, 100))
		median.add(pct(r.lat, 50))
		commit.add(ms(r.commit))
	}
	return nil
}

// idleRun is what one run of scenario 4 or idle measured.
type idleRun struct {
	rss0, rss1 int64 // the relay's RSS in KiB, before the streams and with them
	connect    time.Duration
	// lat: from the SendMany's COMMIT returning to each stream's event;
	// commit: how long that COMMIT took.
	lat    []time.Duration
	commit time.Duration
}

// idleFanOut runs a relay, opens a stream for each of n recipients
// ("prefix"-numbered) with connect, lets the relay settle, then sends one
// SendMany to all of them and waits up to within for every event.
func (b *bench) idleFanOut(ctx context.Context, s, prefix string, n int, settle, within time.Duration,
	connect func(addr string, users []string) (*fleet, error)) (idleRun, error) {
	var r idleRun
	p, err := b.startRelay(ctx, "", "adaptive")
	if err != nil {
		return r, err
	}
	defer p.stop()
	time.Sleep(500 * time.Millisecond)
	if r.rss0, err = p.rssKiB(); err != nil {
		return r, err
	}
	users := userNames(prefix, n)
	t := time.Now()
	f, err := connect(p.addr, users)
	if err != nil {
		return r, err
	}
	defer f.close()
	r.connect = time.Since(t)
	time.Sleep(settle)
	if r.rss1, err = p.rssKiB(); err != nil {
		return r, err
	}
	ob, err := outbox.New(outbox.Config{Schema: p.schema})
	if err != nil {
		return r, err
	}
	l := newLedger()
	if err := b.sendMany(ctx, ob, users, l); err != nil {
		return r, err
	}
	for _, d := range b.deliver(s, f, l, within) {
		r.lat = append(r.lat, d.recv.Sub(d.doneAt))
		r.commit = d.doneAt.Sub(d.commitAt)
	}
	fmt.Fprintf(os.Stderr, "   %d streams: RSS %d → %d KiB (%.1f KiB/stream), fan-out last %.0f ms\n",
		n, r.rss0, r.rss1, float64(r.rss1-r.rss0)/float64(n), pct(r.lat, 100))
	return r, nil
}

const connLimit = "An idle stream is a hijacked socket, two goroutines (the stream's, and a reader that notices the " +
	"client leaving), a 32-slot subscriber channel and a heartbeat timer, plus the Go heap's headroom (GOGC=100)."

// ---------------------------------------------------------------- 5

func (b *bench) unread(ctx context.Context) error {
	const s = "5. Unread count"
	total := b.pick(1_000_000, 30_000)
	levels := []int{10, 1000, b.pick(100_000, 10_000)}
	schema, err := b.migrateSchema(ctx)
	if err != nil {
		return err
	}
	t := time.Now()
	n0, n1, n2 := levels[0], levels[0]+levels[1], levels[0]+levels[1]+levels[2]
	// xid 0 is in every snapshot: the rows count as relayed long ago.
	load := fmt.Sprintf(`INSERT INTO %[1]s.notifications (notifiable_id, type, data, channels, read_at, xid)
SELECT CASE WHEN g <= %[2]d THEN 'unread%[5]d' WHEN g <= %[3]d THEN 'unread%[6]d' WHEN g <= %[4]d THEN 'unread%[7]d'
            ELSE 'filler' || (g %% 10000)::text END,
       'bench.load', '{"n": 1}', '{database}',
       CASE WHEN g > %[4]d AND g %% 2 = 0 THEN now() END, '0'
FROM generate_series(1, %[8]d) AS g`, schema, n0, n1, n2, levels[0], levels[1], levels[2], total)
	if _, err := b.pool.Exec(ctx, load); err != nil {
		dropSchema(b.pool, schema)
		return fmt.Errorf("bulk load: %w", err)
	}
	if _, err := b.pool.Exec(ctx, fmt.Sprintf("VACUUM ANALYZE %s.notifications", schema)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "   loaded %d rows and vacuumed in %.1fs\n", total, time.Since(t).Seconds())
	p, err := b.startRelay(ctx, schema, "adaptive")
	if err != nil {
		dropSchema(b.pool, schema)
		return err
	}
	defer p.stop()

	// The route's own query, as the relay runs it.
	in, err := inbox.New(b.pool, inbox.Config{Schema: schema})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}, Timeout: 10 * time.Second}
	reqs := b.pick(1000, 100)
	var targeted, targetedCPU *figure // the figure with a target, for its limit, and the relay's CPU beside it
	for range b.runs {
		for _, lv := range levels {
			user := fmt.Sprintf("unread%d", lv)
			name := thousands(float64(lv)) + " unread"
			p99 := b.fig(s, name+": HTTP p99 (anchor: the query alone)", "ms")
			p50 := b.fig(s, name+": HTTP p50 (anchor: the query alone)", "ms")
			if p99.anchor == nil {
				p99.anchor, p50.anchor = anchorFig("ms"), anchorFig("ms")
			}
			cpu := b.fig(s, name+": relay process CPU per request", "µs")
			if lv == 1000 {
				p99.target, p99.ok = "≤ 2 ms", atMost(2)
				targeted, targetedCPU = p99, cpu
			}
			want := min(lv, 1000)
			tok := token(user)
			var httpLat, sqlLat []time.Duration
			ticks := cpuTicks(p.Pid())
			for range reqs {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+"/notifications/unread/count", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				t := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				httpLat = append(httpLat, time.Since(t))
				if err != nil {
					return err
				}
				var c inbox.Count
				if resp.StatusCode != 200 || json.Unmarshal(body, &c) != nil || c.Count != int64(want) || c.Capped != (lv >= 1000) {
					b.problem(s, fmt.Sprintf("%s: got %d %s, want count %d", user, resp.StatusCode, body, want))
					break
				}
				t = time.Now()
				direct, err := in.UnreadCount(ctx, bellhoptype.User(user))
				if err != nil {
					return err
				}
				sqlLat = append(sqlLat, time.Since(t))
				if direct.Count != int64(want) {
					b.problem(s, fmt.Sprintf("%s: the query alone counted %d, want %d", user, direct.Count, want))
					break
				}
			}
			cpu.add(float64(cpuTicks(p.Pid())-ticks) * float64(tick/time.Microsecond) / float64(len(httpLat)))
			p99.add(pct(httpLat, 99))
			p50.add(pct(httpLat, 50))
			p99.anchor.add(pct(sqlLat, 99))
			p50.anchor.add(pct(sqlLat, 50))
			fmt.Fprintf(os.Stderr, "   %s: HTTP p50 %.2f p99 %.2f ms; SQL p50 %.2f p99 %.2f ms\n", name,
				pct(httpLat, 50), pct(httpLat, 99), pct(sqlLat, 50), pct(sqlLat, 99))
		}
	}
	if targeted != nil {
		targeted.limit = unreadLimit(targeted.median(), targeted.anchor.median(), targetedCPU.median())
	}
	return nil
}

// unreadLimit says what bounds the unread count's p99, with the medians of
// the runs: the HTTP p99, the p99 of the same query from this process and
// the relay's CPU per request.
func unreadLimit(http99, query99, cpu float64) string {
	return fmt.Sprintf("The route's own query, run from this process between the HTTP calls, had a p99 of %s in these "+
		"runs, the HTTP request %s. The rest is the relay's side and the machine. The relay process spent %s of CPU per "+
		"request (the \"relay process CPU per request\" rows, its background work included). A CPU profile of the "+
		"relay during scenario 5 alone (8 s, 2026-12-02 06:24 UTC) found it on a quarter of one core; of that CPU, "+
		"23 %% was system calls (the request's socket and the query's), 19 %% Go's scheduler looking for work and "+
		"parking threads between requests, 15 %% checking the JWT (its parse, the JSON of its claims, the signature) and 14 %% the "+
		"count through pgx: nothing long. The tail is the two wake-ups of the relay's that the query alone does "+
		"not have (on the request, and on the query's answer), each on 2 cores shared with PostgreSQL and the load "+
		"generator. It moves with the machine: on 2026-12-02 scenario 5 alone met it at 00:51 UTC "+
		"(1.44 ms) and missed it at 06:24 (2.61-4.89 ms per run, the query alone 1.32-3.31 ms). Not measured with "+
		"the relay on a core of its own.",
		format(query99, "ms"), format(http99, "ms"), format(cpu, "µs"))
}

// ---------------------------------------------------------------- 6

func (b *bench) resume(ctx context.Context) error {
	const s = "6. Resume"
	p, err := b.startRelay(ctx, "", "adaptive")
	if err != nil {
		return err
	}
	defer p.stop()
	ob, err := outbox.New(outbox.Config{Schema: p.schema})
	if err != nil {
		return err
	}
	const behind = 1000
	caught := b.fig(s, "1,000 events behind: reconnect until caught up", "ms")
	caught.target, caught.ok = "≤ 100 ms", atMost(100)
	caught.limit = "Replay reads 500 rows per query and writes and flushes each event separately."
	first := b.fig(s, "1,000 events behind: reconnect until first event", "ms")
	for run := range b.runs + 1 { // the first run warms up
		user := fmt.Sprintf("resume%d", run)
		f := &fleet{addr: p.addr}
		c, err := f.dial(ctx, user, -1)
		if err != nil {
			return err
		}
		f.clients = []*sseClient{c}
		l := newLedger()
		if err := b.sendOne(ctx, ob, user, l); err != nil {
			return err
		}
		b.deliver(s, f, l, 10*time.Second)
		c.mu.Lock()
		lastID := c.lastSeq
		c.mu.Unlock()
		c.close()

		// 1,000 more while it is away, in one transaction.
		l = newLedger()
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(`INSERT INTO %s.notifications (notifiable_id, type, data, sse)
SELECT $1, 'bench.resume', jsonb_build_object('n', g), jsonb_build_object('n', g) FROM generate_series(1, %d) AS g
RETURNING id::text`, p.schema, behind), user)
		if err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		at := time.Now()
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		to := make([]string, len(ids))
		for i := range to {
			to[i] = user
		}
		l.addMany(ids, to, at, time.Now())
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			var pending int
			if err := b.pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s.relay_pending WHERE notifiable_id = $1", p.schema), user).Scan(&pending); err != nil {
				return err
			}
			if pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("rows not stamped after 30 s")
			}
		}
		start := time.Now()
		c, err = f.dial(ctx, user, lastID)
		if err != nil {
			return err
		}
		f.clients = []*sseClient{c}
		ds := b.deliver(s, f, l, 30*time.Second)
		c.close()
		if len(ds) == 0 {
			continue
		}
		recv := make([]time.Time, len(ds))
		for i, d := range ds {
			recv[i] = d.recv
		}
		slices.SortFunc(recv, func(a, b time.Time) int { return a.Compare(b) })
		if run == 0 {
			continue
		}
		caught.add(ms(recv[len(recv)-1].Sub(start)))
		first.add(ms(recv[0].Sub(start)))
		fmt.Fprintf(os.Stderr, "   resume %d behind: first %.2f ms, caught up %.2f ms\n", len(ds), ms(recv[0].Sub(start)), ms(recv[len(recv)-1].Sub(start)))
	}
	return nil
}

// ---------------------------------------------------------------- 7

func (b *bench) openTransaction(ctx context.Context) error {
	const s = "7. Open transaction"
	held := b.pick(100000, 20000)
	p, ob, users, f, err := b.relayWithStreams(ctx)
	if err != nil {
		return err
	}
	defer p.stop()
	defer f.close()
	fmt.Fprintf(os.Stderr, "   %d streams connected\n", len(users))

	const rate = 100
	d := b.dur(5*time.Second, 500*time.Millisecond)
	run := func(d time.Duration) ([]time.Duration, error) {
		l := newLedger()
		err := paced(ctx, rate, d, 8, func() error {
			return b.sendOne(ctx, ob, users[rand.IntN(len(users))], l)
		})
		if err != nil {
			return nil, err
		}
		done, _ := latencies(b.deliver(s, f, l, 30*time.Second))
		return done, nil
	}
	if _, err := run(b.dur(500*time.Millisecond, 200*time.Millisecond)); err != nil { // warm-up
		return err
	}
	name := fmt.Sprintf("100/s while a transaction holds %s uncommitted rows", thousands(float64(held)))
	p50 := b.fig(s, name+": p50, from COMMIT return (anchor: none held)", "ms")
	p99 := b.fig(s, name+": p99, from COMMIT return (anchor: none held)", "ms")
	p50.anchor, p99.anchor = anchorFig("ms"), anchorFig("ms")
	for range b.runs {
		alone, err := run(d)
		if err != nil {
			return err
		}
		p50.anchor.add(pct(alone, 50))
		p99.anchor.add(pct(alone, 99))

		tx, err := b.pool.Begin(ctx)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.notifications (notifiable_id, type)
SELECT 'holder', 'bench.open' FROM generate_series(1, %d)`, p.schema, held))
		if err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		beside, err := run(d)
		_ = tx.Rollback(ctx)
		if err != nil {
			return err
		}
		p50.add(pct(beside, 50))
		p99.add(pct(beside, 99))
		fmt.Fprintf(os.Stderr, "   alone p50 %.2f ms p99 %.2f ms; beside %d uncommitted rows p50 %.2f ms p99 %.2f ms\n",
			pct(alone, 50), pct(alone, 99), held, pct(beside, 50), pct(beside, 99))
	}
	return nil
}
