package pgtest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

// Tests that take schemas never hold more slots at once than the server
// has room for, however many run in parallel; a subtest uses its parent's.
func TestSlotsBoundConcurrentTests(t *testing.T) {
	URL(t)
	require.GreaterOrEqual(t, nSlots, 1)
	// As on a small server, whatever this one's max_connections.
	defer func(n int) { nSlots = n }(nSlots)
	nSlots = 2
	var running, peak atomic.Int32
	t.Run("group", func(t *testing.T) {
		for range 8 {
			t.Run("schema", func(t *testing.T) {
				t.Parallel()
				db := New(t)
				n := running.Add(1)
				defer running.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				var one int
				require.NoError(t, db.Pool.QueryRow(t.Context(), "SELECT 1").Scan(&one))
				time.Sleep(100 * time.Millisecond)
			})
		}
	})
	require.LessOrEqual(t, int(peak.Load()), nSlots, "tests holding a slot at once")
	t.Logf("%d slots; at most %d tests held one at once", nSlots, peak.Load())

	t.Run("nested", func(t *testing.T) {
		New(t)
		t.Run("inner", func(t *testing.T) { New(t) }) // would wait forever with one slot
	})
}

// A transaction midway through work on a schema's tables, as a killed
// relay's backend can be, may deadlock with DROP SCHEMA CASCADE, and
// PostgreSQL cancels the drop (it waited first): DropSchema tries again
// once the other has ended.
func TestDropSchemaOutlivesADeadlock(t *testing.T) {
	db := New(t)
	ctx := t.Context()
	schema := pgx.Identifier{db.Schema + "_dl"}
	_, err := db.Pool.Exec(ctx, "CREATE SCHEMA "+schema.Sanitize()+"; CREATE TABLE "+
		pgx.Identifier{db.Schema + "_dl", "a"}.Sanitize()+" (x int)")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema.Sanitize()+" CASCADE")
	})
	deadlocks := func() (n int64) {
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").Scan(&n))
		return n
	}
	before := deadlocks()

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{db.Schema + "_dl", "a"}.Sanitize()+" IN ACCESS SHARE MODE")
	require.NoError(t, err)
	dropped := make(chan error, 1)
	go func() { dropped <- DropSchema(ctx, db.Pool, db.Schema+"_dl") }()
	// The drop holds the schema's lock and waits for a's.
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'DROP SCHEMA%')`).Scan(&waiting))
		return waiting
	}, 10*time.Second, 10*time.Millisecond)
	// Creating a table in the schema waits for the drop's lock: a cycle,
	// which the drop, waiting longer, finds and is cancelled by.
	_, err = tx.Exec(ctx, "CREATE TABLE "+pgx.Identifier{db.Schema + "_dl", "b"}.Sanitize()+" (x int)")
	require.NoError(t, err, "the drop, not this transaction, was cancelled")
	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, <-dropped)
	require.Greater(t, deadlocks(), before, "a deadlock was detected")
	var exists bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", db.Schema+"_dl").Scan(&exists))
	require.False(t, exists)
}
