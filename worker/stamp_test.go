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
// is stamped in index order, not by sorting the whole backlog every batch.
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
	require.Contains(t, text, "notifications_pending_idx", text)
	require.NotContains(t, text, "Sort Key: notifications.updated_at", text)

	n, err := r.stamp(ctx)
	require.NoError(t, err)
	require.Equal(t, r.cfg.BatchSize, n)
	var first, last int64
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT min(relay_seq), max(relay_seq) FROM "+db.Table("notifications")).Scan(&first, &last))
	require.EqualValues(t, 1, first)
	require.EqualValues(t, r.cfg.BatchSize, last)
}
