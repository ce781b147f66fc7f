package worker

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
)

// buffers runs query under EXPLAIN (ANALYZE, BUFFERS) in a transaction it
// rolls back, after the stamp's Lock statement if lock (as the stamp runs),
// and returns the shared buffers its plan's reading touched (a
// data-modifying CTE's writes are not counted in it).
func buffers(t *testing.T, r *Worker, db *pgtest.DB, lock bool, query string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // only measured
	if lock {
		_, err = tx.Exec(ctx, r.q.lock)
		require.NoError(t, err)
	}
	var out []byte
	require.NoError(t, tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+query, args...).Scan(&out))
	var plan []struct {
		Plan struct {
			Hit  int64 `json:"Shared Hit Blocks"`
			Read int64 `json:"Shared Read Blocks"`
		}
	}
	require.NoError(t, json.Unmarshal(out, &plan))
	return plan[0].Plan.Hit + plan[0].Plan.Read
}

// While another transaction holds 100,000 uncommitted rows, the probe for
// pending rows and the stamp's batch selection touch a few buffers, not one
// per uncommitted row: whether that transaction began after the cursor's
// snapshot (the xid range) or was running at it (its xip list).
func TestProbesSkipLargeOpenTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	r, err := New(db.Pool, Config{Schema: db.Schema})
	require.NoError(t, err)
	send := func() {
		_, err := db.Pool.Exec(ctx, "INSERT INTO "+db.Table("notifications")+" (notifiable_id, type) VALUES ('other', 'small')")
		require.NoError(t, err)
	}
	drain := func() {
		for {
			n, _, err := r.stamp(ctx)
			require.NoError(t, err)
			if n == 0 {
				return
			}
		}
	}
	send()
	drain()

	big, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer big.Rollback(ctx) //nolint:errcheck // never committed
	_, err = big.Exec(ctx, "INSERT INTO "+db.Table("notifications")+
		" (notifiable_id, type) SELECT 'big', 'bulk' FROM generate_series(1, 100000)")
	require.NoError(t, err)

	const most = 300
	// Nothing else pending.
	probe := buffers(t, r, db, false, r.q.hasPending)
	require.Less(t, probe, int64(most), "HasPending, nothing else pending")
	var pending bool
	require.NoError(t, db.Pool.QueryRow(ctx, r.q.hasPending).Scan(&pending))
	require.False(t, pending)
	check := func(where string) {
		t.Helper()
		probe := buffers(t, r, db, false, r.q.hasPending)
		t.Logf("%s: HasPending touched %d buffers", where, probe)
		require.Less(t, probe, int64(most), "HasPending, %s", where)
		stamp := buffers(t, r, db, true, r.q.stamp, r.cfg.BatchSize, r.relayedChannel, int64(0), []string{})
		t.Logf("%s: Stamp touched %d buffers", where, stamp)
		require.Less(t, stamp, int64(most), "Stamp, %s", where)
	}
	// Began after the cursor's snapshot.
	send()
	check("open transaction after the cursor")
	drain()
	// The cursor has moved past it: running at its snapshot.
	send()
	check("open transaction in the cursor's xip")
	n, _, err := r.stamp(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the other writer's row, and not one of the open transaction's")
	require.NoError(t, db.Pool.QueryRow(ctx, r.q.hasPending).Scan(&pending))
	require.False(t, pending)

	require.NoError(t, big.Commit(ctx))
	drain()
	var logged int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+db.Table("relay_log")).Scan(&logged))
	require.Equal(t, 100003, logged, "every row once the transaction commits")
}

// The sweep's check for due expiries reads the expiry index's first entry,
// however many rows each of its conditions alone would match: here half
// the rows deleted after their expiry came, half live with an expiry still
// to come, so none due. The planner took EXISTS over such a table for an
// early match and read all of it. (Rows that expired by the sweep would
// leave their old versions in the index until a vacuum, which a
// concurrent test's snapshot may hold off.)
func TestExpireDueReadsTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	r, err := New(db.Pool, Config{Schema: db.Schema})
	require.NoError(t, err)
	insert := func(expires, deleted string, n int) {
		_, err := db.Pool.Exec(ctx, "INSERT INTO "+db.Table("notifications")+
			" (notifiable_id, type, expires_at, deleted_at) SELECT 'r', 'old', "+expires+", "+deleted+
			" FROM generate_series(1, $1)", n)
		require.NoError(t, err)
	}
	due := func() bool {
		var ok bool
		require.NoError(t, db.Pool.QueryRow(ctx, r.q.expireDue).Scan(&ok))
		return ok
	}
	insert("now() - interval '1 day'", "now()", 20000)
	insert("now() + interval '1 day'", "NULL", 20000)
	_, err = db.Pool.Exec(ctx, "ANALYZE "+db.Table("notifications"))
	require.NoError(t, err)

	require.False(t, due())
	read := buffers(t, r, db, false, r.q.expireDue)
	t.Logf("ExpireDue touched %d buffers", read)
	require.Less(t, read, int64(50), "ExpireDue read more than the index's first pages")
	insert("now() - interval '1 second'", "NULL", 1)
	require.True(t, due(), "a row due")
	require.NoError(t, r.expire(ctx))
	require.False(t, due(), "expired")
}
