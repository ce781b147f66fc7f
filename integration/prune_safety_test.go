package integration

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// pruneNow runs one prune job in the relay (through River, as the periodic
// job does) and returns its River job id.
func (b *testBundle) pruneNow(t *testing.T) int64 {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(b.db.Pool), &river.Config{Schema: b.db.Schema})
	require.NoError(t, err)
	res, err := client.Insert(context.Background(), pruneArgs{}, nil)
	require.NoError(t, err)
	return res.Job.ID
}

// waitJob waits until River completed the job.
func (b *testBundle) waitJob(t *testing.T, id int64) {
	t.Helper()
	var state string
	require.Eventually(t, func() bool {
		err := b.db.Pool.QueryRow(context.Background(), "SELECT state FROM "+b.db.Table("river_job")+" WHERE id = $1", id).Scan(&state)
		return err == nil && state == "completed"
	}, 10*time.Second, 10*time.Millisecond, "prune job %d: state %q", id, state)
}

func (b *testBundle) waitLogged(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		var pending int
		err := b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+b.db.Table("relay_pending")).Scan(&pending)
		return err == nil && pending == 0
	}, 5*time.Second, 5*time.Millisecond)
}

// A row the prune job chose while it was prunable, but that an app's
// transaction holds: the DELETE waits for the lock, and when the app
// commits, the row it revived (or changed) must stay, with its new data,
// and its change must be pushed. The DELETE used to recheck only the join
// on id after the wait and delete the row anyway.
func TestPruneSparesARowChangedWhileItWaits(t *testing.T) {
	t.Parallel()
	const progress80 = `{"progress": 80}`
	cases := []struct {
		name string
		// age makes the row prunable (committed; the relay logs it).
		age string
		// app is the app's change, in a transaction held across the prune.
		app func(tx pgx.Tx, table, id string) error
		// op is the event the change pushes; kept is true of the row after.
		op, kept string
	}{{
		name: "the README's upsert revives a deleted progress row",
		age:  "UPDATE %s SET deleted_at = now() - interval '2 hours' WHERE id = $1",
		app: func(tx pgx.Tx, table, _ string) error {
			_, err := tx.Exec(context.Background(), "INSERT INTO "+table+
				" (tenant_id, notifiable_type, notifiable_id, type, data, sse, database_key)"+
				" VALUES ($1, $2, $3, 'export.progress', $4, $4, 'export:7')"+
				" ON CONFLICT (tenant_id, notifiable_type, notifiable_id, database_key)"+
				"     WHERE database_key IS NOT NULL"+
				" DO UPDATE SET data = EXCLUDED.data, sse = EXCLUDED.sse,"+
				"               read_at = NULL, deleted_at = NULL, updated_at = now()",
				alice.Tenant, alice.Type, alice.ID, progress80)
			return err
		},
		op:   "updated",
		kept: "deleted_at IS NULL AND data = '" + progress80 + "'",
	}, {
		name: "an unread of a row read past the retention",
		age:  "UPDATE %s SET read_at = now() - interval '2 hours' WHERE id = $1",
		app: func(tx pgx.Tx, table, id string) error {
			_, err := tx.Exec(context.Background(), "UPDATE "+table+" SET read_at = NULL WHERE id = $1", id)
			return err
		},
		op:   "unread",
		kept: "read_at IS NULL",
	}, {
		// Still deleted, but its new version is not logged yet: not
		// prunable until the relay has pushed it.
		name: "an update of a deleted row",
		age:  "UPDATE %s SET deleted_at = now() - interval '2 hours' WHERE id = $1",
		app: func(tx pgx.Tx, table, id string) error {
			_, err := tx.Exec(context.Background(), "UPDATE "+table+" SET data = $2, sse = $2 WHERE id = $1", id, progress80)
			return err
		},
		op:   "updated",
		kept: "deleted_at IS NOT NULL AND data = '" + progress80 + "'",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, b := setup(t)
			// No periodic prune during the test: each round is the test's.
			r := b.startRelay(t, func(c *relay.Config) {
				c.Worker.PruneInterval = time.Hour
				c.Worker.Retention = time.Hour
				c.Worker.ReplayWindow = time.Hour
			})
			tbl := b.db.Table("notifications")
			s := openStream(t, r.URL, alice, -1)
			id, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{
				Kind: "export.progress", Key: "export:7",
				Data: map[string]int{"progress": 40}, SSE: map[string]int{"progress": 40}})
			require.NoError(t, err)
			require.Equal(t, "created", s.next(t, 5*time.Second).Data.Op)
			// A bystander the same round must prune.
			bystander := b.send(t, bob, "old")
			_, err = b.db.Pool.Exec(ctx, "UPDATE "+tbl+" SET deleted_at = now() - interval '2 hours' WHERE id = $1", bystander)
			require.NoError(t, err)
			_, err = b.db.Pool.Exec(ctx, fmt.Sprintf(c.age, tbl), id)
			require.NoError(t, err)
			s.next(t, 5*time.Second)
			b.waitLogged(t)

			tx, err := b.db.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			var pid int
			require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
			require.NoError(t, c.app(tx, tbl, id))

			job := b.pruneNow(t)
			require.Eventually(t, func() bool {
				var waiting bool
				err := b.db.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity"+
					" WHERE wait_event_type = 'Lock' AND $1 = ANY (pg_blocking_pids(pid)) AND query LIKE '%doomed%')",
					pid).Scan(&waiting)
				return err == nil && waiting
			}, 10*time.Second, 5*time.Millisecond, "the prune never waited for the app's row lock")
			require.NoError(t, tx.Commit(ctx))
			b.waitJob(t, job)

			var kept, bystanderLeft bool
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+tbl+" WHERE id = $1 AND "+c.kept+"),"+
				" EXISTS (SELECT 1 FROM "+tbl+" WHERE id = $2)", id, bystander).Scan(&kept, &bystanderLeft))
			require.True(t, kept, "the prune deleted a row the app had just changed")
			require.False(t, bystanderLeft, "the round pruned what it should")
			ev := s.next(t, 5*time.Second)
			require.Equal(t, id, ev.Data.ID)
			require.Equal(t, c.op, ev.Data.Op)
			if c.op == "updated" {
				require.JSONEq(t, progress80, string(ev.Data.SSE))
			}
			var logged int
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("relay_events")+
				" WHERE id = $1 AND current", id).Scan(&logged))
			require.Equal(t, 1, logged, "the change is logged, for a resume")
		})
	}
}

// A client gets refetch only when an event of its own recipient may have
// been pruned: one backdated read row pruned for bob, or alice's entry aged
// out of the log, used to raise one horizon for everyone.
func TestPruneHorizonIsPerRecipient(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) {
		c.Worker.PruneInterval = time.Hour
		c.Worker.Retention = time.Hour
		c.Worker.ReplayWindow = time.Hour
	})
	carol := outbox.User("carol")
	sa := openStream(t, r.URL, alice, -1)
	sb := openStream(t, r.URL, bob, -1)
	b.send(t, alice, "a1")
	a1 := sa.next(t, 5*time.Second).ID
	readOld := b.send(t, bob, "b1")
	sb.next(t, 5*time.Second)
	_, err := b.db.Pool.Exec(ctx, "UPDATE "+b.db.Table("notifications")+" SET read_at = now() - interval '2 hours' WHERE id = $1", readOld)
	require.NoError(t, err)
	bobsPruned := sb.next(t, 5*time.Second).ID // its read, logged just now
	a2 := b.send(t, alice, "a2")
	sa.next(t, 5*time.Second)
	b.waitLogged(t)
	b.waitJob(t, b.pruneNow(t))
	var left int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("notifications")+" WHERE id = $1", readOld).Scan(&left))
	require.Zero(t, left, "bob's old read row is pruned")

	first := func(to outbox.Recipient, from int64) event {
		t.Helper()
		s := openStream(t, r.URL, to, from)
		defer s.Close()
		select {
		case ev := <-s.Events:
			return ev
		case <-time.After(300 * time.Millisecond):
		}
		// Nothing to replay: the next live event comes first.
		id := b.send(t, to, "live")
		ev := s.next(t, 5*time.Second)
		if ev.Data.Op != "refetch" {
			require.Equal(t, id, ev.Data.ID)
		}
		return ev
	}

	// Alice, from before bob's pruned entry: replayed, not refetched.
	ev := first(alice, a1)
	require.Equal(t, "created", ev.Data.Op, "bob's prune made alice refetch")
	require.Equal(t, a2, ev.Data.ID)
	// Bob, from before it: refetch; from it on: replayed as usual.
	require.Equal(t, "refetch", first(bob, a1).Data.Op)
	require.Equal(t, "created", first(bob, bobsPruned).Data.Op)

	// Alice's first entry ages out of the log: alice, from before it, must
	// refetch; carol, who never had an event, need not.
	_, err = b.db.Pool.Exec(ctx, "UPDATE "+b.db.Table("relay_log")+" SET logged_at = now() - interval '2 hours' WHERE seq = $1", a1)
	require.NoError(t, err)
	b.waitJob(t, b.pruneNow(t))
	var aged int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("relay_log")+" WHERE seq = $1", a1).Scan(&aged))
	require.Zero(t, aged, "the entry aged out")
	require.Equal(t, "refetch", first(alice, a1-1).Data.Op)
	require.Equal(t, "created", first(carol, a1-1).Data.Op, "alice's aged entry made carol refetch")

	// An id the relay never handed out (another database) still refetches.
	var head int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT last_seq FROM "+b.db.Table("relay_state")).Scan(&head))
	require.Equal(t, "refetch", first(carol, head+1<<40).Data.Op)
}

// A prune that deletes one of the recipient's entries after the stream
// checked the recipient's horizon, but before its replay read the log, must
// still end in refetch: the replay no longer sees the entry.
func TestPruneDuringResumeRefetches(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) {
		c.Worker.PruneInterval = time.Hour
		c.Worker.Retention = time.Hour
		c.Worker.ReplayWindow = time.Hour
	})
	set, err := sqlq.Load(os.DirFS("../worker"), b.db.Schema)
	require.NoError(t, err)
	prune := set.Get("Prune")
	require.NoError(t, set.Err())

	s := openStream(t, r.URL, alice, -1)
	b.send(t, alice, "a1")
	from := s.next(t, 5*time.Second).ID
	readOld := b.send(t, alice, "a2")
	s.next(t, 5*time.Second)
	_, err = b.db.Pool.Exec(ctx, "UPDATE "+b.db.Table("notifications")+" SET read_at = now() - interval '2 hours' WHERE id = $1", readOld)
	require.NoError(t, err)
	s.next(t, 5*time.Second)
	b.waitLogged(t)

	// Readers of the log wait while this transaction holds it; the resume
	// reads the horizon without it, then waits in its replay.
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	var pid int
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	_, err = tx.Exec(ctx, "LOCK TABLE "+b.db.Table("relay_log")+" IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	rs := openStream(t, r.URL, alice, from)
	require.Eventually(t, func() bool {
		var waiting bool
		err := b.db.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity"+
			" WHERE wait_event_type = 'Lock' AND $1 = ANY (pg_blocking_pids(pid)) AND query LIKE '%seq > $4%')",
			pid).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 5*time.Millisecond, "the resume never reached its replay")
	var pruned int64
	require.NoError(t, tx.QueryRow(ctx, prune, "1 hour", "1 hour", 5000).Scan(&pruned))
	require.EqualValues(t, 1, pruned, "alice's old read row")
	require.NoError(t, tx.Commit(ctx))

	select {
	case ev := <-rs.Events:
		require.Equal(t, "refetch", ev.Data.Op, "the pruned read event is gone and the client was not told")
	case <-time.After(2 * time.Second):
		t.Fatal("the resume replayed nothing and did not refetch: alice's read of a2 is lost")
	}
}
