package worker

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
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

	var plan []string
	b := &pgx.Batch{}
	b.Queue(r.q.planStamp)
	b.Queue("EXPLAIN "+r.q.stamp, r.cfg.BatchSize, "unused").Query(func(rows pgx.Rows) error {
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
	text := strings.Join(plan, "\n")
	require.Contains(t, text, "notifications_xid_idx", text)
	require.NotContains(t, text, "Seq Scan on notifications", text)
	require.NotContains(t, text, "Bitmap", text)

	n, err := r.stamp(ctx)
	require.NoError(t, err)
	require.Equal(t, r.cfg.BatchSize, n)
	var first, last int64
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT min(seq), max(seq) FROM "+db.Table("relay_log")).Scan(&first, &last))
	require.EqualValues(t, 1, first)
	require.EqualValues(t, r.cfg.BatchSize, last)

	// The rest of the round, then the round's end: every row once, no gap.
	for {
		n, err := r.stamp(ctx)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	var entries, rows, distinct int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id), max(seq) FROM "+db.Table("relay_log")).Scan(&entries, &distinct, &last))
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+db.Table("notifications")).Scan(&rows))
	require.Equal(t, 20000, rows)
	require.Equal(t, rows, entries)
	require.Equal(t, rows, distinct)
	require.EqualValues(t, rows, last)
	var pending int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+db.Table("relay_pending")).Scan(&pending))
	require.Zero(t, pending)
	var inRound bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT next IS NOT NULL FROM "+db.Table("relay_state")).Scan(&inRound))
	require.False(t, inRound, "the round ended")
}
