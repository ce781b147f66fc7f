package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// A backlog that arrived in one bulk insert, before statistics caught up,
// is logged in index order, not by sorting the whole backlog every batch;
// a round longer than a batch goes on where the last batch stopped.
func TestStampWalksThePendingIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	r, err := New(db.Pool, Config{Schema: db.Schema})
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "INSERT INTO "+db.Table("notifications")+
		" (notifiable_id, type) SELECT (i % 100)::text, 'bulk' FROM generate_series(1, 20000) i")
	require.NoError(t, err)

	// The plan the stamp runs on: the generic one (see Lock), which a
	// prepared statement shows under the lock's settings.
	var plan []string
	b := &pgx.Batch{}
	b.Queue(r.q.lock)
	b.Queue("PREPARE stamp_plan (int, text, bigint, text[]) AS " + r.q.stamp)
	b.Queue("EXPLAIN EXECUTE stamp_plan (1000, 'unused', 0, '{}')").Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			plan = append(plan, line)
		}
		return rows.Err()
	})
	require.NoError(t, db.Pool.SendBatch(ctx, b).Close())
	_, err = db.Pool.Exec(ctx, "DEALLOCATE stamp_plan")
	require.NoError(t, err)
	text := strings.Join(plan, "\n")
	require.Contains(t, text, "notifications_xid_idx", text)
	require.NotContains(t, text, "Seq Scan on notifications", text)
	require.NotContains(t, text, "Bitmap", text)

	n, _, err := r.stamp(ctx)
	require.NoError(t, err)
	require.Equal(t, r.cfg.BatchSize, n)
	var first, last int64
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT min(seq), max(seq) FROM "+db.Table("relay_log")).Scan(&first, &last))
	require.EqualValues(t, r.cfg.BatchSize-1, last-first, "one batch takes consecutive seqs")

	// The rest of the round, then the round's end: every row once, no gap.
	for {
		n, _, err := r.stamp(ctx)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	var entries, rows, distinct, seqs int
	var head int64
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id), count(DISTINCT seq), max(seq) FROM "+
		db.Table("relay_log")).Scan(&entries, &distinct, &seqs, &last))
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+db.Table("notifications")).Scan(&rows))
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT last_seq FROM "+db.Table("relay_state")).Scan(&head))
	require.Equal(t, 20000, rows)
	require.Equal(t, rows, entries)
	require.Equal(t, rows, distinct)
	require.Equal(t, rows, seqs)
	require.Equal(t, head, last)
	var pending int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+db.Table("relay_pending")).Scan(&pending))
	require.Zero(t, pending)
	var inRound bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT next IS NOT NULL FROM "+db.Table("relay_state")).Scan(&inRound))
	require.False(t, inRound, "the round ended")
}

// A stamp runs every millisecond while rows come, so it keeps one cached
// generic plan instead of being planned again each time (see Lock), and
// that plan stamps what a fresh one would.
func TestStampKeepsItsPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	// One connection: the prepared statement's counts are its session's.
	cfg := db.Pool.Config()
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	r, err := New(pool, Config{Schema: db.Schema})
	require.NoError(t, err)

	const stamps = 12
	logged := 0
	for i := range stamps {
		// Stamps that find rows and stamps that find none, on one plan.
		if i%3 == 0 {
			_, err := pool.Exec(ctx, "INSERT INTO "+db.Table("notifications")+
				" (notifiable_id, type) SELECT 'u' || g, 'plan' FROM generate_series(1, $1) AS g", i+1)
			require.NoError(t, err)
		}
		n, _, err := r.stamp(ctx)
		require.NoError(t, err)
		logged += n
	}
	require.Equal(t, 1+4+7+10, logged)

	var generic, custom int64
	require.NoError(t, pool.QueryRow(ctx,
		"SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", r.q.stamp).
		Scan(&generic, &custom))
	require.Zero(t, custom, "no stamp was planned for its parameters")
	require.EqualValues(t, stamps, generic)
}

// stampTx runs one stamp by hand in a transaction, with floor, and reports
// the seqs it handed out and whether it would commit without waiting for
// its WAL flush.
func stampTx(t *testing.T, r *Worker, db *pgtest.DB, floor int64) (seqs []int64, async bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // committed below
	_, err = tx.Exec(ctx, r.q.lock)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, r.q.stamp, r.cfg.BatchSize, r.relayedChannel, floor, []string{})
	require.NoError(t, err)
	rows.Close()
	require.NoError(t, rows.Err())
	var mode string
	require.NoError(t, tx.QueryRow(ctx, r.q.durability, r.cfg.DurableStamps).Scan(&mode))
	require.NoError(t, tx.Commit(ctx))
	rows, err = db.Pool.Query(ctx, "SELECT seq FROM "+db.Table("relay_log")+" ORDER BY seq")
	require.NoError(t, err)
	seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return seqs, mode == "off"
}

// sendRows commits n notifications of type typ to recipient u, in one
// statement.
func sendRows(t *testing.T, db *pgtest.DB, typ string, n int) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), "INSERT INTO "+db.Table("notifications")+
		" (notifiable_id, type) SELECT 'u', $1 FROM generate_series(1, $2)", typ, n)
	require.NoError(t, err)
}

// Seqs stay at or below the database clock, in microseconds, while the
// relay keeps up; only then does a stamp skip its WAL flush. A stamp never
// hands out a seq at or below the process's floor, the highest it pushed:
// after a crash took stamps back, no client's id is handed out again.
func TestStampSeqsFollowTheClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	r, err := New(db.Pool, Config{Schema: db.Schema})
	require.NoError(t, err)
	send := func(n int) { sendRows(t, db, "clock", n) }
	clockUS := func() int64 {
		var us int64
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint").Scan(&us))
		return us
	}

	send(3)
	before := clockUS()
	seqs, async := stampTx(t, r, db, 0)
	require.Len(t, seqs, 3)
	require.True(t, async, "a head behind the clock needs no flush of its own")
	require.Equal(t, []int64{seqs[0], seqs[0] + 1, seqs[0] + 2}, seqs)
	require.LessOrEqual(t, before-3, seqs[0], "seqs come from the clock when the head is behind it")
	require.LessOrEqual(t, seqs[2], clockUS())

	// A head ahead of the clock (a burst past a million a second, or a clock
	// that stepped back): the next seqs follow the head, and the stamp waits
	// for its flush.
	ahead := clockUS() + 3_600_000_000
	_, err = db.Pool.Exec(ctx, "UPDATE "+db.Table("relay_state")+" SET last_seq = $1", ahead)
	require.NoError(t, err)
	send(1)
	seqs, async = stampTx(t, r, db, 0)
	require.Equal(t, ahead+1, seqs[len(seqs)-1])
	require.False(t, async)

	// A floor above the head wins.
	send(1)
	seqs, _ = stampTx(t, r, db, ahead+1000)
	require.Equal(t, ahead+1001, seqs[len(seqs)-1])
}

// On another server than the one that moved the head last (a promoted
// standby, or any restart), the first stamp that logs rows jumps ten
// minutes of microseconds past the clock and records the server; the
// stamps after it follow the head again, waiting for their flush while it
// is ahead of the clock. An empty poll still writes nothing.
func TestStampJumpsOnANewServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	r, err := New(db.Pool, Config{Schema: db.Schema})
	require.NoError(t, err)
	const margin = 600_000_000
	clockUS := func() int64 {
		var us int64
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint").Scan(&us))
		return us
	}
	send := func() {
		_, err := db.Pool.Exec(ctx, "INSERT INTO "+db.Table("notifications")+" (notifiable_id, type) VALUES ('u', 'n')")
		require.NoError(t, err)
	}

	send()
	before := clockUS()
	seqs, _ := stampTx(t, r, db, 0)
	require.Len(t, seqs, 1)
	require.Less(t, seqs[0], before+margin, "the server the schema was migrated on is not new")

	_, err = db.Pool.Exec(ctx, "UPDATE "+db.Table("relay_state")+" SET server_started = now() - interval '1 day'")
	require.NoError(t, err)
	seqs, _ = stampTx(t, r, db, 0)
	require.Len(t, seqs, 1, "an empty poll")
	var head int64
	var recorded bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT last_seq, server_started = pg_postmaster_start_time() FROM "+
		db.Table("relay_state")).Scan(&head, &recorded))
	require.Equal(t, seqs[0], head, "an empty poll moves nothing")
	require.False(t, recorded)

	send()
	before = clockUS()
	seqs, async := stampTx(t, r, db, 0)
	require.Len(t, seqs, 2)
	jumped := seqs[1]
	require.GreaterOrEqual(t, jumped, before+margin)
	require.LessOrEqual(t, jumped, clockUS()+margin+1)
	require.False(t, async, "ahead of the clock, a stamp waits for its flush")

	send()
	seqs, async = stampTx(t, r, db, 0)
	require.Equal(t, jumped+1, seqs[2], "once: then the head goes on")
	require.False(t, async)
}

// A role or server default of synchronous_commit = off does not make
// durable stamps, or stamps ahead of the clock, asynchronous; other
// durable settings are kept.
func TestDurabilityOverridesAsyncDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	mode := func(durable bool, ahead bool, session string) string {
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // read only
		r, err := New(db.Pool, Config{Schema: db.Schema, DurableStamps: durable})
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT set_config('synchronous_commit', $1, true)", session)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "UPDATE "+db.Table("relay_state")+" SET last_seq = CASE WHEN $1 THEN 9e18::bigint ELSE 0 END", ahead)
		require.NoError(t, err)
		var m string
		require.NoError(t, tx.QueryRow(ctx, r.q.durability, durable).Scan(&m))
		return m
	}
	require.Equal(t, "off", mode(false, false, "off"))
	require.Equal(t, "off", mode(false, false, "on"))
	require.Equal(t, "on", mode(false, true, "off"))
	require.Equal(t, "on", mode(true, false, "off"))
	require.Equal(t, "remote_apply", mode(true, false, "remote_apply"))
	require.Equal(t, "local", mode(false, true, "local"))
}

// Pruning drops log entries older than the replay window, whatever their
// rows, and raises their recipient's horizon, below which a resume must
// refetch; the rows themselves stay until their own rules say. A horizon
// that has not moved for a replay window is folded into the global floor.
func TestPruneAgesTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	r, err := New(db.Pool, Config{Schema: db.Schema, ReplayWindow: time.Hour, Retention: time.Hour})
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "INSERT INTO "+db.Table("notifications")+" (notifiable_id, type) SELECT 'u', 'p' FROM generate_series(1, 3)")
	require.NoError(t, err)
	n, _, err := r.stamp(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	rows, err := db.Pool.Query(ctx, "SELECT seq FROM "+db.Table("relay_log")+" ORDER BY seq")
	require.NoError(t, err)
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "UPDATE "+db.Table("relay_log")+" SET logged_at = now() - interval '2 hours' WHERE seq <= $1", seqs[1])
	require.NoError(t, err)

	require.NoError(t, (&pruneWorker{r: r}).Work(ctx, &river.Job[pruneArgs]{}))

	rows, err = db.Pool.Query(ctx, "SELECT seq FROM "+db.Table("relay_log"))
	require.NoError(t, err)
	left, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, seqs[2:], left)
	var pruned, horizon int64
	var notifications int
	horizons := "SELECT pruned_seq, coalesce((SELECT seq FROM " + db.Table("relay_horizon") +
		" WHERE (tenant_id, notifiable_type, notifiable_id) = ('', 'User', 'u')), 0), (SELECT count(*) FROM " +
		db.Table("notifications") + ") FROM " + db.Table("relay_state")
	require.NoError(t, db.Pool.QueryRow(ctx, horizons).Scan(&pruned, &horizon, &notifications))
	require.Equal(t, seqs[1], horizon, "the recipient's horizon")
	require.Zero(t, pruned, "nobody else's")
	require.Equal(t, 3, notifications)

	// Not yet a replay window old: kept.
	require.NoError(t, (&pruneWorker{r: r}).Work(ctx, &river.Job[pruneArgs]{}))
	require.NoError(t, db.Pool.QueryRow(ctx, horizons).Scan(&pruned, &horizon, &notifications))
	require.Equal(t, seqs[1], horizon)
	_, err = db.Pool.Exec(ctx, "UPDATE "+db.Table("relay_horizon")+" SET pruned_at = now() - interval '2 hours'")
	require.NoError(t, err)
	require.NoError(t, (&pruneWorker{r: r}).Work(ctx, &river.Job[pruneArgs]{}))
	require.NoError(t, db.Pool.QueryRow(ctx, horizons).Scan(&pruned, &horizon, &notifications))
	require.Zero(t, horizon, "folded")
	require.Equal(t, seqs[1], pruned, "into the floor")
}
