package integration

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
)

// Any role that may connect can NOTIFY on the relayed channel. A forged
// payload that names a batch ("head before mac hashes", here with a MAC
// made without the schema's key) and follows the hubs' cursor must not
// move it: before migration 00011 a replica with no stream for the named
// recipient jumped its cursor to the forged head and dropped every event
// below it, and the stamping process raised every later seq past it.
func TestForgedRelayedNotifySkipsNothing(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	stamper := b.startRelay(t)
	replica := b.startReplica(t)
	bob := outbox.User("bob")
	onStamper := openStream(t, stamper.URL, bob, -1)
	onReplica := openStream(t, replica.URL, bob, -1)
	first := b.send(t, bob, "before")
	require.Equal(t, first, onStamper.next(t, 5*time.Second).Data.ID)
	require.Equal(t, first, onReplica.next(t, 5*time.Second).Data.ID)

	var head int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT last_seq FROM "+b.db.Table("relay_state")).Scan(&head))
	const forgedHead = int64(9_000_000_000_000_000_000)
	heard := b.listenRelayed(t, ctx)
	payload := fmt.Sprintf("%d %d %s 00000000", forgedHead, head, "0123456789abcdef0123456789abcdef")
	_, err := b.db.Pool.Exec(ctx, "SELECT pg_notify($1, $2)", b.db.Schema+"_relayed", payload)
	require.NoError(t, err)
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := heard.Conn().WaitForNotification(waitCtx)
	require.NoError(t, err)
	require.Equal(t, payload, n.Payload)
	time.Sleep(200 * time.Millisecond) // the relays' listeners heard it too

	second := b.send(t, bob, "after")
	ev := onReplica.next(t, 5*time.Second)
	require.Equal(t, second, ev.Data.ID, "the replica's cursor did not move to the forged head")
	require.Less(t, ev.ID, forgedHead)
	ev = onStamper.next(t, 5*time.Second)
	require.Equal(t, second, ev.Data.ID)
	require.Less(t, ev.ID, forgedHead, "the stamps' floor did not move to the forged head")
	var last int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT last_seq FROM "+b.db.Table("relay_state")).Scan(&last))
	require.Less(t, last, forgedHead)
}

// A writer cannot change a row without an event, and cannot read the key
// that signs the relayed NOTIFY: bellhop.quiet (mark-all-read's marker
// row) is honoured only for a role that may write op itself, and a change
// of channels or critical is logged like any other.
func TestWriterChangesAreNeverQuiet(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	app := loginAs(t, b.db, b.db.Schema+"_quiet_app", b.db.WriterRole())
	s := openStream(t, r.URL, alice, -1)
	id := b.send(t, alice, "first")
	require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)

	table := b.db.Table("notifications")
	err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('bellhop.quiet', 'on', true)"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE "+table+` SET data = '{"amount": 999}' WHERE id = $1`, id)
		return err
	})
	require.NoError(t, err)
	ev := s.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID, "a writer's quiet update is pushed")
	require.Equal(t, "updated", ev.Data.Op)

	// Both decide what the inbox counts: critical past a recipient's
	// muting, channels whether the row is in the inbox at all.
	_, err = app.Exec(ctx, "UPDATE "+table+" SET critical = true WHERE id = $1", id)
	require.NoError(t, err)
	ev = s.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID, "a change of critical is pushed")
	require.Equal(t, "updated", ev.Data.Op)
	_, err = app.Exec(ctx, "UPDATE "+table+" SET channels = '{sse}' WHERE id = $1", id)
	require.NoError(t, err)
	ev = s.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID, "a change of channels is pushed")
	require.Equal(t, "updated", ev.Data.Op)
	require.EqualValues(t, 0, b.unread(t, r.URL, alice), "and the count it changed follows the event")

	_, err = app.Exec(ctx, "SELECT notify_key FROM "+b.db.Table("relay_state"))
	requirePermissionDenied(t, err, "read the relayed NOTIFY's key")

	// The relay's own quiet writes stay quiet: mark all read is one event.
	b.send(t, alice, "second")
	s.next(t, 5*time.Second)
	res := api(t, "POST", r.URL+"/notifications/read-all", &alice, nil)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "read_all", s.next(t, 5*time.Second).Data.Op)
	s.quiet(t, 300*time.Millisecond)
}

// escalate_after is at most 366 days: a writer's '300000 years' overflowed
// the stamp's bigint and stopped every stamp, for every tenant. A row
// written before the check (here: with it dropped) must not stop them
// either.
func TestEscalateAfterIsBounded(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	app := loginAs(t, b.db, b.db.Schema+"_escalate_app", b.db.WriterRole())
	s := openStream(t, r.URL, alice, -1)
	send := pgx.Identifier{b.db.Schema, "send"}.Sanitize()
	_, err := app.Exec(ctx, "SELECT "+send+"('alice', 'x', escalate_after => '300000 years')")
	require.ErrorContains(t, err, "notifications_escalate_after_max_366_days")
	// 432 years long, and under '366 days' to PostgreSQL's interval
	// comparison, which counts a year as 360 days.
	_, err = app.Exec(ctx, "SELECT "+send+"('alice', 'x', escalate_after => '30000 years -10799700 days')")
	require.ErrorContains(t, err, "notifications_escalate_after_max_366_days")
	_, err = app.Exec(ctx, "SELECT "+send+"('alice', 'x', escalate_after => '366 days')")
	require.NoError(t, err, "366 days are allowed")
	require.Equal(t, "x", s.next(t, 5*time.Second).Data.Type)

	_, err = b.db.Pool.Exec(ctx, "ALTER TABLE "+b.db.Table("notifications")+" DROP CONSTRAINT notifications_escalate_after_max_366_days")
	require.NoError(t, err)
	_, err = app.Exec(ctx, "SELECT "+send+"('alice', 'old.row', escalate_after => '300000 years')")
	require.NoError(t, err)
	id := b.send(t, alice, "after")
	require.Equal(t, "old.row", s.next(t, 5*time.Second).Data.Type)
	require.Equal(t, id, s.next(t, 5*time.Second).Data.ID, "the stamps go on")
}

// Any role may take any advisory lock: stamps used to serialize on one, and
// a role that held it held every stamp back. They lock a table now, which
// only the relay's role may lock: the old key held, or an attempt at the
// table, stops nothing.
func TestOtherRolesCannotHoldStampsBack(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	app := loginAs(t, b.db, b.db.Schema+"_lock_app", b.db.WriterRole())
	s := openStream(t, r.URL, alice, -1)

	conn, err := app.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SELECT pg_advisory_lock(1919249529, hashtext($1))", b.db.Schema) // the old stamp lock
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock_all()") }()
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LOCK TABLE "+b.db.Table("stamp_lock")+" IN SHARE UPDATE EXCLUSIVE MODE")
	requirePermissionDenied(t, err, "lock stamp_lock")
	require.NoError(t, tx.Rollback(ctx)) // the pool has two connections
	// A statement's tables are locked when it is parsed and its privileges
	// checked when it runs: a PREPARE holds the locks of statements the
	// role may not run, until its transaction ends. None of them conflicts
	// with the stamps' lock.
	held, err := app.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = held.Rollback(context.Background()) }()
	for _, q := range []string{"DELETE FROM %s", "SELECT * FROM %s FOR UPDATE", "SELECT * FROM %s"} {
		_, err = held.Exec(ctx, "PREPARE p"+strconv.Itoa(len(q))+" AS "+fmt.Sprintf(q, b.db.Table("stamp_lock")))
		require.NoError(t, err, q)
	}
	var locks int
	require.NoError(t, held.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND pid = pg_backend_pid()",
		b.db.Table("stamp_lock")).Scan(&locks))
	require.Positive(t, locks, "the prepared statements hold their locks")

	id := b.send(t, alice, "not.held.back")
	require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)
}
