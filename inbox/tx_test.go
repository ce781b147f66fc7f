package inbox_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/outbox"
)

// The inbox runs on whatever pgx gives: a pool, a connection, a transaction.
func TestNewAcceptsPoolConnAndTx(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	id := b.send(t, alice, "a")

	conn, err := pgx.Connect(ctx, b.db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })

	for name, db := range map[string]inbox.DB{"pool": b.db.Pool, "conn": conn, "tx": tx} {
		in, err := inbox.New(db, inbox.Config{Schema: b.db.Schema})
		require.NoError(t, err, name)
		c, err := in.UnreadCount(ctx, alice)
		require.NoError(t, err, name)
		require.EqualValues(t, 1, c.Count, name)
	}
	require.NoError(t, tx.Rollback(ctx))

	// MarkAllRead opens its own transaction on a connection too.
	in, err := inbox.New(conn, inbox.Config{Schema: b.db.Schema})
	require.NoError(t, err)
	n, err := in.MarkAllRead(ctx, alice)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	got, err := in.MarkUnread(ctx, alice, id)
	require.NoError(t, err)
	require.Nil(t, got.ReadAt)
}

// Every change made through WithTx commits or rolls back with the
// application's transaction, and is pushed only if it commits.
func TestWithTxFollowsTheApplicationsTransaction(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	first := b.send(t, alice, "a")
	second := b.send(t, alice, "b")
	b.stampAll(t)

	change := func(in *inbox.Inbox) {
		_, err := in.MarkRead(ctx, alice, first)
		require.NoError(t, err)
		n, err := in.MarkAllRead(ctx, alice)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.NoError(t, in.Delete(ctx, alice, second))
		c, err := in.UnreadCount(ctx, alice)
		require.NoError(t, err)
		require.Zero(t, c.Count, "the transaction sees its own changes")
	}

	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	change(b.in.WithTx(tx))
	c, err := b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.EqualValues(t, 2, c.Count, "nothing is visible outside before commit")
	require.NoError(t, tx.Rollback(ctx))

	c, err = b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.EqualValues(t, 2, c.Count, "a rollback changes nothing")
	require.Zero(t, b.pending(t), "a rollback pushes nothing")

	require.NoError(t, pgx.BeginFunc(ctx, b.db.Pool, func(tx pgx.Tx) error {
		change(b.in.WithTx(tx))
		return nil
	}))
	c, err = b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.Zero(t, c.Count)
	page, err := b.in.List(ctx, alice, inbox.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Notifications, 1, "the deleted one is gone")
	require.Equal(t, 3, b.pending(t), "read, read_all and deleted are pushed")
}

// MarkAllRead silences the row trigger for its own statement. In the
// application's transaction it must not stay silenced: a change made later
// in the same transaction is pushed like any other, even when there was
// nothing to mark.
func TestMarkAllReadInTxLeavesLaterChangesPushed(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	id := b.send(t, alice, "a")
	_, err := b.in.MarkRead(ctx, alice, id)
	require.NoError(t, err)
	b.stampAll(t)

	require.NoError(t, pgx.BeginFunc(ctx, b.db.Pool, func(tx pgx.Tx) error {
		in := b.in.WithTx(tx)
		n, err := in.MarkAllRead(ctx, alice)
		require.NoError(t, err)
		require.Zero(t, n, "nothing unread to mark")
		_, err = in.MarkUnread(ctx, alice, id)
		return err
	}))
	require.Equal(t, 1, b.pending(t), "the mark-unread after a no-op mark-all-read is pushed")
}
