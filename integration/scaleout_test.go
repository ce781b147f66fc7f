package integration

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// startReplica runs a relay that does not stamp (no worker: not ready by
// /readyz, which wants one, but its hub and streams work).
func (b *testBundle) startReplica(t *testing.T, mutate ...func(*relay.Config)) *testRelay {
	t.Helper()
	ctx := context.Background()
	cfg := b.relayConfig()
	cfg.NoWorker = true
	for _, m := range mutate {
		m(&cfg)
	}
	r, err := relay.New(ctx, cfg, nil)
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	hs := httptest.NewServer(r.Handler())
	t.Cleanup(hs.Close)
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return &testRelay{Relay: r, URL: hs.URL}
}

// reads is a replica's count of relay log reads by kind, and of the stamped
// batches it passed over without one.
func reads(t *testing.T, r *testRelay) (tail, recipients, skipped float64) {
	t.Helper()
	page := scrape(t, r.URL)
	return metricValue(page, `bellhop_hub_log_reads_total{read="tail"}`),
		metricValue(page, `bellhop_hub_log_reads_total{read="recipients"}`),
		metricValue(page, "bellhop_hub_wakes_skipped_total")
}

// A replica that does not stamp learns of each batch from the relayed
// NOTIFY, which names the batch's recipients: with no stream for them it
// reads nothing (only its one-second backstop reads the log); with a
// stream for one it reads that recipient's entries only, and they arrive
// exactly once, in order.
func TestScaleOutReplicaReadsOnlyItsRecipients(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	b.startRelay(t) // stamps
	replica := b.startReplica(t)
	bob := outbox.User("bob")
	s := openStream(t, replica.URL, bob, -1)

	tail0, rec0, skip0 := reads(t, replica)
	start := time.Now()
	for i := range 30 {
		b.send(t, outbox.User(fmt.Sprintf("alice-%d", i)), "elsewhere")
	}
	// Awaited before bob's row is sent: a relay slow to wake (a loaded
	// machine) would otherwise stamp all 31 rows in one batch, bob's
	// among them.
	require.Eventually(t, func() bool {
		_, _, skip := reads(t, replica)
		return skip > skip0
	}, 5*time.Second, 10*time.Millisecond, "batches for other recipients pass without a read")
	want := b.send(t, bob, "here")
	require.Equal(t, want, s.next(t, 5*time.Second).Data.ID)
	tail, rec, _ := reads(t, replica)
	elapsed := time.Since(start)
	require.LessOrEqual(t, tail-tail0, elapsed.Seconds()+1, "tail reads: the backstop's only")
	require.Greater(t, rec-rec0, 0.0, "bob's entries are read by recipient")
	require.LessOrEqual(t, rec-rec0, 1.0, "and only bob's batch is read")

	// Interleaved: bob's events, each once and in order.
	var ids []string
	for i := range 40 {
		b.send(t, outbox.User(fmt.Sprintf("carol-%d", i)), "elsewhere")
		ids = append(ids, b.send(t, bob, "here"))
	}
	s.inOrder(t, ids)
	s.quiet(t, 300*time.Millisecond)
}

// A batch with more recipients than the NOTIFY can name wakes a full read:
// the replica's streams still get their events exactly once, in order.
func TestScaleOutNotifyTooLargeFallsBack(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	b.startRelay(t)
	replica := b.startReplica(t)
	bob := outbox.User("bob")
	s := openStream(t, replica.URL, bob, -1)
	tail0, _, _ := reads(t, replica)

	// 900 recipients in one transaction, one stamp batch; bob's rows among them.
	rows, err := b.db.Pool.Query(ctx, "INSERT INTO "+b.db.Table("notifications")+
		" (notifiable_type, notifiable_id, type, sse) SELECT 'User', CASE WHEN i % 100 = 0 THEN 'bob' ELSE 'u' || i END,"+
		" 'bulk', jsonb_build_object('i', i) FROM generate_series(1, 900) i ORDER BY i RETURNING id::text, notifiable_id")
	require.NoError(t, err)
	var ids []string
	for rows.Next() {
		var id, to string
		require.NoError(t, rows.Scan(&id, &to))
		if to == "bob" {
			ids = append(ids, id)
		}
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, 9)
	got := map[string]bool{}
	var last int64
	for range ids {
		ev := s.next(t, 5*time.Second)
		require.False(t, got[ev.Data.ID], "once")
		got[ev.Data.ID] = true
		require.Greater(t, ev.ID, last)
		last = ev.ID
	}
	for _, id := range ids {
		require.True(t, got[id])
	}
	s.quiet(t, 300*time.Millisecond)
	tail, _, _ := reads(t, replica)
	require.Greater(t, tail-tail0, 0.0)
}

// Replicas drain under one lease: a relay job that finds another replica
// holding it leaves its rows to that one. A holder that hangs with its
// connection open (here: the test holds the lease) stalls nothing for
// long: a sweep that finds rows pending and the head unmoved since the
// last sweep drains without the lease.
func TestDrainLeaseHolderThatHangsStallsNothing(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	conn, err := b.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", 0x6c656173, b.db.Schema)
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock_all()") }()

	r := b.startRelay(t, func(c *relay.Config) { c.Worker.SweepInterval = 200 * time.Millisecond })
	bob := outbox.User("bob")
	s := openStream(t, r.URL, bob, -1)
	for range 3 {
		id := b.send(t, bob, "while the lease is held")
		require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)
	}
	require.Positive(t, metricValue(scrape(t, r.URL), "bellhop_drain_lease_taken_total"),
		"relay jobs found the lease taken and left the rows to its holder")
}

// A relay that stamps pushes what it stamped without reading it back: the
// relayed NOTIFY of its own stamp (sent while a replica listens), which may
// come before the stamp's events reach its hub, is put off until the stamp
// has ended, and dropped then. (It used to cost about 0.6 log reads per
// event at 1,000/s.)
func TestStampingRelayReadsNothingBack(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	b.startReplica(t)
	bob := outbox.User("bob")
	s := openStream(t, r.URL, bob, -1)
	require.Eventually(t, func() bool {
		b.send(t, bob, "warm-up")
		s.next(t, 5*time.Second)
		return metricValue(scrape(t, r.URL), "bellhop_relayed_listeners") == 1
	}, 10*time.Second, 50*time.Millisecond, "the stamps are announced (the replica listens)")
	tail0, rec0, _ := reads(t, r)
	start := time.Now()
	var ids []string
	for i := range 100 {
		ids = append(ids, b.send(t, bob, fmt.Sprint("n", i)))
	}
	s.inOrder(t, ids)
	tail, rec, _ := reads(t, r)
	require.Zero(t, rec-rec0, "recipient reads")
	require.LessOrEqual(t, tail-tail0, time.Since(start).Seconds()+1, "tail reads: the backstop's only")
}

// A relay alone announces its stamps to no one: its own hub pushes them,
// and a NOTIFY would only wake its LISTEN connection for news it has. A
// connection that LISTENs on the relayed channel without registering (as
// a replica's hub does, see sqlq.ListenerLock) hears nothing; once a
// replica listens, the stamps are announced again, and when it has gone,
// no longer.
func TestScaleOutLoneRelayAnnouncesNothing(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	stamper := b.startRelay(t)
	bob := outbox.User("bob")
	s := openStream(t, stamper.URL, bob, -1)

	conn := b.listenRelayed(t, ctx)
	// heard reports whether a stamp's NOTIFY came within d (not a hub's
	// hello as it connects, relay's joinedNote); drain takes those that
	// came so far.
	heard := func(d time.Duration) bool {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		for {
			n, err := conn.Conn().WaitForNotification(wctx)
			if err != nil {
				return false
			}
			if n.Payload != "listening" {
				return true
			}
		}
	}
	drain := func() {
		for heard(300 * time.Millisecond) {
		}
	}
	listeners := func(r *testRelay) float64 {
		return metricValue(scrape(t, r.URL), "bellhop_relayed_listeners")
	}

	// Stamps announce until the first look has answered, after a stamp.
	require.Equal(t, b.send(t, bob, "first"), s.next(t, 5*time.Second).Data.ID)
	drain()
	var ids []string
	for range 5 {
		ids = append(ids, b.send(t, bob, "alone"))
	}
	s.inOrder(t, ids)
	require.False(t, heard(300*time.Millisecond), "a lone relay's stamps were announced")
	require.Zero(t, listeners(stamper))

	// A replica: announced again, and its streams get their events.
	replica := b.startReplica(t)
	carol := outbox.User("carol")
	rs := openStream(t, replica.URL, carol, -1)
	require.Eventually(t, func() bool {
		id := b.send(t, carol, "replica")
		require.Equal(t, id, rs.next(t, 5*time.Second).Data.ID)
		return heard(200 * time.Millisecond)
	}, 10*time.Second, time.Millisecond, "stamps are announced while a replica listens")
	require.Eventually(t, func() bool {
		b.send(t, bob, "counted")
		s.next(t, 5*time.Second)
		return listeners(stamper) == 1
	}, 10*time.Second, 50*time.Millisecond)

	// The replica gone (its LISTEN connection with it): unannounced again
	// once a look (every 250 ms while stamping) finds no one.
	require.NoError(t, replica.Stop(ctx))
	require.Eventually(t, func() bool {
		b.send(t, bob, "after")
		s.next(t, 5*time.Second)
		return listeners(stamper) == 0
	}, 10*time.Second, 50*time.Millisecond)
	drain()
	ids = ids[:0]
	for range 5 {
		ids = append(ids, b.send(t, bob, "alone again"))
	}
	s.inOrder(t, ids)
	require.False(t, heard(300*time.Millisecond), "stamps were announced after the replica left")
}

// listenRelayed is a connection of the test's own that LISTENs on the
// relayed channel without registering as a listener (sqlq.ListenerLock).
func (b *testBundle) listenRelayed(t *testing.T, ctx context.Context) *pgxpool.Conn {
	t.Helper()
	conn, err := b.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	t.Cleanup(conn.Release)
	_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.db.Schema + "_relayed"}.Sanitize())
	require.NoError(t, err)
	return conn
}
