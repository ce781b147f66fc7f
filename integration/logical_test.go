package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/internal/syncbuf"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	"github.com/bellhophq/bellhop/worker"
)

// The logical-wake tests do not run in parallel: each starts a cluster of
// its own, and they run first, apart from the timing-sensitive parallel
// tests they would slow on a small machine.

// logicalRelay starts a cluster of the test's own with the wal_level given
// and a relay inLogicalMode on it. When follows, it returns once the
// relay's stream follows the commits.
func logicalRelay(t *testing.T, walLevel string, follows bool, logs *syncbuf.Buffer) (*testBundle, *testRelay) {
	t.Helper()
	db := pgtest.NewOn(t, pgtest.NewServer(t, "wal_level="+walLevel).URL)
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(t, err)
	b := &testBundle{db: db, ob: ob}
	if logs != nil {
		b.logs = logs
	}
	r := b.startRelay(t, inLogicalMode)
	if follows {
		// The stream signals once as it starts (what committed before it
		// must be looked for).
		require.Eventually(t, func() bool { return decodedCommits(t, r) >= 1 },
			30*time.Second, 20*time.Millisecond, "the stream never started")
	}
	return b, r
}

// inLogicalMode configures a relay to follow commits by logical decoding,
// with no sweep to find what the stream misses.
func inLogicalMode(c *relay.Config) {
	c.Worker.WakeMode = worker.WakeLogical
	c.Worker.SweepInterval = time.Hour
}

func decodedCommits(t *testing.T, r *testRelay) float64 {
	return metricValue(metrics(t, r.URL), "bellhop_decoded_commits_total")
}

func wakeFlag(ctx context.Context, db *pgtest.DB) (int, error) {
	var flag int
	err := db.Pool.QueryRow(ctx, "SELECT last_value FROM "+db.Table("relay_wake")).Scan(&flag)
	return flag, err
}

// With BELLHOP_WAKE_MODE=logical on a server with wal_level = logical, the
// relay learns of each commit from the WAL: the writers send no NOTIFY (the
// wake flag stays down, idle or not), every commit is decoded, and each
// committed row is pushed while a rolled back one is not, even with the
// commits further apart than a drain lingers and no sweep to find them.
func TestLogicalWakeFollowsCommits(t *testing.T) {
	ctx := context.Background()
	b, r := logicalRelay(t, "logical", true, nil)

	conn, err := pgx.Connect(ctx, b.db.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.db.Schema + "_pending"}.Sanitize())
	require.NoError(t, err)

	s := openStream(t, r.URL, alice, -1)
	before := decodedCommits(t, r)
	const n = 5
	for i := range n {
		// Further apart than the drain's Linger (20 ms): each commit finds
		// the relay idle, and only its decoding wakes it.
		time.Sleep(60 * time.Millisecond)
		id := b.send(t, alice, "logical")
		require.Equal(t, id, s.next(t, 5*time.Second).Data.ID, "commit %d", i)

		tx, err := b.db.Pool.Begin(ctx)
		require.NoError(t, err)
		_, err = b.ob.Send(ctx, tx, alice, outbox.Message{Kind: "rolled-back"})
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))
	}
	s.quiet(t, 200*time.Millisecond)
	require.GreaterOrEqual(t, decodedCommits(t, r)-before, float64(n), "each commit was decoded")

	flag, err := wakeFlag(ctx, b.db)
	require.NoError(t, err)
	require.Zero(t, flag, "the wake flag stays down: writers do not NOTIFY")
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = conn.WaitForNotification(wctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a writer sent the pending NOTIFY")
}

// A stream that dies (its walsender terminated, as in a failover or a
// server restart) loses nothing: the relay runs as adaptive until a new
// stream follows the commits, and then lowers the wake flag again.
func TestLogicalWakeSurvivesAKilledStream(t *testing.T) {
	ctx := context.Background()
	b, r := logicalRelay(t, "logical", true, nil)
	s := openStream(t, r.URL, alice, -1)

	var killed bool
	require.NoError(t, b.db.Pool.QueryRow(ctx,
		"SELECT pg_terminate_backend(pid) FROM pg_stat_replication").Scan(&killed))
	require.True(t, killed)
	// Meanwhile, commits arrive as in adaptive mode.
	for range 3 {
		id := b.send(t, alice, "meanwhile")
		require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)
	}
	// The stream comes back (it signals as it starts) and takes over.
	before := decodedCommits(t, r)
	require.Eventually(t, func() bool { return decodedCommits(t, r) > before },
		30*time.Second, 20*time.Millisecond, "the stream did not come back")
	require.Eventually(t, func() bool {
		flag, err := wakeFlag(ctx, b.db)
		return err == nil && flag == 0
	}, 10*time.Second, 20*time.Millisecond, "following commits again, the relay lowers the wake flag")
	time.Sleep(60 * time.Millisecond)
	id := b.send(t, alice, "followed")
	require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)
}

// Two relays in logical mode, both with workers: each follows the commits,
// one drains at a time (the drain lease), and every row reaches both
// relays' streams once and in order.
func TestLogicalWakeTwoRelays(t *testing.T) {
	ctx := context.Background()
	b, r1 := logicalRelay(t, "logical", true, nil)
	r2 := b.startRelay(t, inLogicalMode)
	require.Eventually(t, func() bool { return decodedCommits(t, r2) >= 1 },
		30*time.Second, 20*time.Millisecond, "the second relay's stream never started")
	shareTheWork(t, b, r1, r2)
	flag, err := wakeFlag(ctx, b.db)
	require.NoError(t, err)
	require.Zero(t, flag, "neither relay raised the wake flag")
}

// Where the stream cannot start (here: wal_level below logical), logical
// mode says why and how to fix it, and runs as adaptive meanwhile: the
// relay goes idle with the wake flag up, and commits still arrive.
func TestLogicalWakeFallsBackToAdaptive(t *testing.T) {
	ctx := context.Background()
	var logs syncbuf.Buffer
	b, r := logicalRelay(t, "replica", false, &logs)

	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "set wal_level = logical") },
		10*time.Second, 20*time.Millisecond, "no warning naming the fix; logs: %s", logs.String())
	require.Eventually(t, func() bool {
		flag, err := wakeFlag(ctx, b.db)
		return err == nil && flag == 1
	}, 10*time.Second, 20*time.Millisecond, "idle without its stream, the relay raises the wake flag (adaptive)")

	s := openStream(t, r.URL, alice, -1)
	for range 3 {
		id := b.send(t, alice, "adaptive")
		require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)
		time.Sleep(60 * time.Millisecond)
	}
	require.Zero(t, decodedCommits(t, r))
}
