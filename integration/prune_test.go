package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/relay"
)

func TestPruneAndRefetch(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) {
		c.Worker.PruneInterval = 100 * time.Millisecond
		c.Worker.Retention = time.Hour
		c.Worker.ReplayWindow = time.Hour
	})
	s := openStream(t, r.URL, alice, -1)
	keep := b.send(t, alice, "kept.unread")
	readOld := b.send(t, alice, "read.long.ago")
	readNew := b.send(t, alice, "read.recently")
	deletedOld := b.send(t, alice, "deleted.long.ago")
	for range 4 {
		s.next(t, 5*time.Second)
	}
	first := int64(0)

	res := api(t, http.MethodPost, r.URL+"/notifications/"+readNew+"/read", &alice, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	s.next(t, 5*time.Second)
	// Age rows past the retention and the replay window, behind the API's back.
	tbl := b.db.Table("notifications")
	_, err := b.db.Pool.Exec(ctx, "UPDATE "+tbl+" SET read_at = now() - interval '2 hours' WHERE id = $1", readOld)
	require.NoError(t, err)
	_, err = b.db.Pool.Exec(ctx, "UPDATE "+tbl+" SET deleted_at = now() - interval '2 hours' WHERE id = $1", deletedOld)
	require.NoError(t, err)
	// A mark-all-read marker (live-only) past the window.
	res = api(t, http.MethodPost, r.URL+"/notifications/read-all", &alice, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	s.next(t, 5*time.Second) // read (readOld)
	s.next(t, 5*time.Second) // deleted (deletedOld)
	require.Equal(t, "read_all", s.next(t, 5*time.Second).Data.Op)
	require.Eventually(t, func() bool {
		var pending int
		_ = b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("relay_pending")).Scan(&pending)
		return pending == 0
	}, 5*time.Second, 10*time.Millisecond)
	_, err = b.db.Pool.Exec(ctx, "UPDATE "+tbl+" SET updated_at = now() - interval '2 hours' WHERE type = 'bellhop.read_all'")
	require.NoError(t, err)
	// That update touched updated_at, so the row is pending again; let the
	// relay stamp it, then age it once more, quietly.
	require.Eventually(t, func() bool {
		var pending int
		_ = b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("relay_pending")).Scan(&pending)
		return pending == 0
	}, 5*time.Second, 10*time.Millisecond)
	_, err = b.db.Pool.Exec(ctx, "BEGIN; SELECT set_config('bellhop.quiet', 'on', true); UPDATE "+tbl+
		" SET updated_at = now() - interval '2 hours' WHERE type = 'bellhop.read_all'; COMMIT")
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		var left []string
		rows, err := b.db.Pool.Query(ctx, "SELECT id::text FROM "+tbl+" ORDER BY created_at")
		if err != nil {
			return false
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			left = append(left, id)
		}
		return len(left) == 2 && left[0] == keep && left[1] == readNew
	}, 10*time.Second, 50*time.Millisecond, "prune kept the wrong rows")

	var pruned, head int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT (SELECT seq FROM "+b.db.Table("relay_horizon")+
		" WHERE notifiable_id = 'alice'), last_seq FROM "+b.db.Table("relay_state")).Scan(&pruned, &head))
	require.Positive(t, pruned, "alice's prune horizon")

	// Resuming from before alice's prune horizon, or from beyond the head
	// (another database), cannot be replayed: one refetch event, then live events.
	for _, from := range []int64{first, head + 1<<40} {
		rs := openStream(t, r.URL, alice, from)
		ev := rs.next(t, 5*time.Second)
		require.Equal(t, "refetch", ev.Data.Op)
		require.GreaterOrEqual(t, ev.ID, head)
		id := b.send(t, alice, "after.refetch")
		require.Equal(t, id, rs.next(t, 5*time.Second).Data.ID)
		s.next(t, 5*time.Second)
	}
}
