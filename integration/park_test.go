package integration

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// stamps reads a relay's bellhop_stamps_total for one cause, rows and
// empty together.
func stamps(t *testing.T, r *testRelay, cause string) float64 {
	t.Helper()
	page := metrics(t, r.URL)
	return metricValue(page, `bellhop_stamps_total{cause="`+cause+`",result="rows"}`) +
		metricValue(page, `bellhop_stamps_total{cause="`+cause+`",result="empty"}`)
}

// armed waits until the relay's drain went idle: the wake flag up.
func armed(t *testing.T, b *testBundle) {
	t.Helper()
	require.Eventually(t, func() bool {
		flag, err := wakeFlag(context.Background(), b.db)
		return err == nil && flag == 1
	}, 5*time.Second, 5*time.Millisecond, "the drain never raised the wake flag")
}

// flagUp asserts that the wake flag is up: writers NOTIFY.
func flagUp(t *testing.T, b *testBundle) {
	t.Helper()
	flag, err := wakeFlag(context.Background(), b.db)
	require.NoError(t, err)
	require.Equal(t, 1, flag, "the wake flag went down")
}

// idleRelay starts a relay, opens alice's stream, lets one row through and
// waits until the drain went idle (the wake flag up): from there the job is
// parked or, with parking off, has ended.
func idleRelay(t *testing.T, mutate ...func(*relay.Config)) (context.Context, *testBundle, *testRelay, *stream) {
	t.Helper()
	ctx, b := setup(t)
	r := b.startRelay(t, mutate...)
	s := openStream(t, r.URL, alice, -1)
	require.Equal(t, b.send(t, alice, "first"), s.next(t, 5*time.Second).Data.ID)
	armed(t, b)
	return ctx, b, r, s
}

// fastLook makes a parked job look every 200 ms (the sweep interval).
func fastLook(c *relay.Config) { c.Worker.SweepInterval = 200 * time.Millisecond }

// parked waits for a parked job's next look: the wake flag goes up before
// arm's last look for rows, which may still find one, but a look comes only
// from a parked job.
func parked(t *testing.T, r *testRelay) {
	t.Helper()
	looks := stamps(t, r, "look")
	require.Eventually(t, func() bool { return stamps(t, r, "look") > looks }, 5*time.Second, 5*time.Millisecond,
		"the relay job did not park")
}

// whileParked runs try while the relay job is parked, up to three times:
// a job runs at most 5 s (maxJobRun), and on a loaded machine one may end
// during try; its successor drains, polling, before it parks again. try
// reports whether the job stayed parked throughout.
func whileParked(t *testing.T, r *testRelay, try func() bool) {
	t.Helper()
	for i := range 3 {
		parked(t, r)
		polls := stamps(t, r, "poll")
		start := time.Now()
		if try() {
			return
		}
		require.Greater(t, stamps(t, r, "poll"), polls, "the try failed with no new relay job")
		// What the next look for a cause needs: how long a failed try
		// took, and what the relay stamped by then.
		t.Logf("try %d: a new relay job after %v; stamps so far: look %v, poll %v, notified %v", i+1,
			time.Since(start).Round(time.Millisecond), stamps(t, r, "look"), stamps(t, r, "poll"), stamps(t, r, "notified"))
	}
	t.Fatal("the relay job left park during each of three tries")
}

// In adaptive mode, a relay that went idle stays parked: commits further
// apart than its Linger are stamped as their NOTIFYs come, one stamp each,
// without the drain's polling between them, and the wake flag stays up.
func TestAdaptiveParksBetweenCommits(t *testing.T) {
	t.Parallel()
	_, b, r, s := idleRelay(t, fastLook)
	whileParked(t, r, func() bool {
		polls, notified := stamps(t, r, "poll"), stamps(t, r, "notified")
		const n = 8
		for i := range n {
			time.Sleep(30 * time.Millisecond) // further apart than Linger (20 ms)
			id := b.send(t, alice, "spaced")
			require.Equal(t, id, s.next(t, 5*time.Second).Data.ID, "commit %d", i)
		}
		if stamps(t, r, "poll") != polls {
			return false
		}
		// A stamp is counted once it returns; its events may come first.
		require.Eventually(t, func() bool { return stamps(t, r, "notified")-notified >= n }, time.Second, time.Millisecond,
			"a stamp per NOTIFY")
		flagUp(t, b)
		return true
	})
}

// Rows that come evenly, closer than the linger but far below the park
// rate (10 ms apart: 100 a second), never leave the drain a gap of its
// linger: it parks all the same, on their rate.
func TestAdaptiveParksWhenRowsComeEvenly(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	s := openStream(t, r.URL, alice, -1)
	notified := stamps(t, r, "notified")
	for i := range 40 {
		time.Sleep(10 * time.Millisecond)
		id := b.send(t, alice, "even")
		require.Equal(t, id, s.next(t, 5*time.Second).Data.ID, "commit %d", i)
	}
	require.Greater(t, stamps(t, r, "notified"), notified+10, "the drain did not park")
}

// Commits that come fast send a parked job back to polling, and each is
// pushed once, in order.
func TestParkedJobPollsWhenCommitsComeFast(t *testing.T) {
	t.Parallel()
	ctx, b, r, s := idleRelay(t)

	// 200 transactions in one pipeline, committing without waiting for
	// their flush: far more than the park rate within Linger.
	polls := stamps(t, r, "poll")
	conn, err := b.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET synchronous_commit = off")
	require.NoError(t, err)
	batch := &pgx.Batch{}
	ids := make([]string, 200)
	for i := range ids {
		batch.Queue("BEGIN")
		batch.Queue("INSERT INTO " + b.db.Table("notifications") + " (notifiable_id, type) VALUES ('alice', 'burst') RETURNING id::text").
			QueryRow(func(row pgx.Row) error { return row.Scan(&ids[i]) })
		batch.Queue("COMMIT")
	}
	require.NoError(t, conn.SendBatch(ctx, batch).Close())
	s.inOrder(t, ids)
	require.Eventually(t, func() bool { return stamps(t, r, "poll") > polls }, time.Second, time.Millisecond,
		"the drain did not poll again")
}

// With two replicas, the one that does not hold the drain lease leaves
// the wake flag alone when a NOTIFY comes: the holder may be parked,
// waiting for the next. (If it lowered the flag, the next commits would
// send no NOTIFY and wait for a sweep, here far off.)
func TestParkedReplicaKeepsGettingNotifies(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	slowSweep := func(c *relay.Config) { c.Worker.SweepInterval = time.Minute }
	r1 := b.startRelay(t, slowSweep)
	r2 := b.startRelay(t, slowSweep)
	s1 := openStream(t, r1.URL, alice, -1)
	s2 := openStream(t, r2.URL, alice, -1)
	id := b.send(t, alice, "first")
	require.Equal(t, id, s1.next(t, 5*time.Second).Data.ID)
	require.Equal(t, id, s2.next(t, 5*time.Second).Data.ID)
	armed(t, b)

	for i := range 8 {
		time.Sleep(30 * time.Millisecond)
		id := b.send(t, alice, "spaced")
		require.Equal(t, id, s1.next(t, 3*time.Second).Data.ID, "commit %d", i)
		require.Equal(t, id, s2.next(t, 3*time.Second).Data.ID, "commit %d", i)
	}
	// Up again, if a drain that caught a row around arm lowered it.
	armed(t, b)
}

// With parking off (BELLHOP_PARK_RATE=0), an idle relay job ends as it
// raises the wake flag, and each later commit starts a drain that polls.
func TestParkingOff(t *testing.T) {
	t.Parallel()
	_, b, r, s := idleRelay(t, func(c *relay.Config) { c.Worker.ParkRate = -1 })
	polls := stamps(t, r, "poll")
	for i := range 3 {
		time.Sleep(30 * time.Millisecond)
		require.Equal(t, b.send(t, alice, "spaced"), s.next(t, 5*time.Second).Data.ID, "commit %d", i)
	}
	require.Zero(t, stamps(t, r, "notified"), "a job parked")
	require.Greater(t, stamps(t, r, "poll"), polls)
}

// A commit that sends no NOTIFY while the relay is parked (a 2PC writer's,
// with bellhop.no_wake on; or one whose NOTIFY the listener lost) is found
// by the parked job's own look, every sweep interval: the sweep leaves a
// draining job alone.
func TestParkedJobLooksForSilentCommits(t *testing.T) {
	t.Parallel()
	ctx, b, r, s := idleRelay(t, fastLook)
	lookRows := func() float64 {
		return metricValue(metrics(t, r.URL), `bellhop_stamps_total{cause="look",result="rows"}`)
	}
	whileParked(t, r, func() bool {
		looks, polls := lookRows(), stamps(t, r, "poll")
		tx, err := b.db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, "SET LOCAL bellhop.no_wake = on")
		require.NoError(t, err)
		id, err := b.ob.Send(ctx, tx, alice, outbox.Message{Kind: "silent"})
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		committed := time.Now()
		require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)
		came := time.Since(committed)
		// The stamp that took the row is counted once it returns, and its
		// events are pushed apart from it, so the count may come a moment
		// after them: a look's, or, if the job ended meanwhile, its
		// successor's poll (whileParked tries again). On a loaded machine
		// that moment can be long.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if lookRows() > looks {
				return true
			}
			if stamps(t, r, "poll") > polls {
				t.Logf("the silent row's event came %v after its commit, and a poll counted first", came.Round(time.Millisecond))
				return false
			}
			if time.Now().After(deadline) {
				t.Fatalf("no look and no poll stamped the row; notified stamps: %v", stamps(t, r, "notified"))
			}
		}
	})
}

// A sweep with nothing to expire sends no NOTIFY. Its UPDATE would fire the
// statement-level wake trigger though it touched no row, and so wake a
// parked job for an empty stamp every sweep interval (in the test above, a
// stamp before the look it waits for, often enough under load to fail it).
func TestIdleSweepsWakeNoOne(t *testing.T) {
	t.Parallel()
	ctx, b, r, _ := idleRelay(t, fastLook)
	sweeps := func() int {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("river_job")+
			" WHERE kind = 'bellhop_relay' AND args->>'sweep' = 'true' AND state = 'completed'").Scan(&n))
		return n
	}
	parked(t, r)
	notified, swept := stamps(t, r, "notified"), sweeps()
	require.Eventually(t, func() bool { return sweeps() >= swept+3 }, 10*time.Second, 10*time.Millisecond,
		"no three sweeps")
	require.Equal(t, notified, stamps(t, r, "notified"), "a sweep woke the parked job")
	flagUp(t, b)
}
