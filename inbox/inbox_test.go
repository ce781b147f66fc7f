package inbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type testBundle struct {
	db *pgtest.DB
	ob *outbox.Outbox
	in *inbox.Inbox
}

func setup(t *testing.T) (context.Context, *testBundle) {
	t.Helper()
	db := pgtest.New(t)
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(t, err)
	in, err := inbox.New(db.Pool, inbox.Config{Schema: db.Schema, CountCap: 50})
	require.NoError(t, err)
	return context.Background(), &testBundle{db: db, ob: ob, in: in}
}

func (b *testBundle) send(t *testing.T, to outbox.Recipient, kind string) string {
	t.Helper()
	id, err := b.ob.Send(context.Background(), b.db.Pool, to, outbox.Message{Kind: kind, Data: map[string]string{"k": kind}})
	require.NoError(t, err)
	return id
}

func (b *testBundle) pending(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+b.db.Table("relay_pending")).Scan(&n))
	return n
}

// stampAll plays the relay: it moves the cursor past every committed row.
func (b *testBundle) stampAll(t *testing.T) {
	t.Helper()
	_, err := b.db.Pool.Exec(context.Background(), "UPDATE "+b.db.Table("relay_state")+" SET seen = pg_current_snapshot(), next = NULL")
	require.NoError(t, err)
}

func TestUnreadCount(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	for range 3 {
		b.send(t, alice, "a")
	}
	b.send(t, outbox.User("bob"), "a")
	b.send(t, outbox.Recipient{Tenant: "other", Type: "User", ID: "alice"}, "a")
	b.send(t, outbox.Recipient{Type: "Team", ID: "alice"}, "a")
	_, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "live", Channels: []outbox.Channel{outbox.SSE}})
	require.NoError(t, err)

	c, err := b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, inbox.Count{Count: 3, Unseen: 3}, c, "only alice's, only the database channel")

	for range 60 {
		b.send(t, outbox.User("busy"), "a")
	}
	c, err = b.in.UnreadCount(ctx, outbox.User("busy"))
	require.NoError(t, err)
	require.Equal(t, inbox.Count{Count: 50, Capped: true, Unseen: 50, UnseenCapped: true}, c)
}

func TestListOrderAndPagination(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	var want []string
	for i := range 25 {
		want = append([]string{b.send(t, alice, fmt.Sprintf("t%d", i%3))}, want...)
	}
	b.send(t, outbox.User("bob"), "t0")

	var got []string
	cursor := ""
	for page := 0; ; page++ {
		p, err := b.in.List(ctx, alice, inbox.ListOptions{Limit: 10, Cursor: cursor})
		require.NoError(t, err)
		for _, n := range p.Notifications {
			got = append(got, n.ID)
		}
		// New rows arriving mid-pagination land before the first page and
		// never shift the pages still to come.
		b.send(t, alice, "t0")
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
		require.Less(t, page, 5)
	}
	require.Equal(t, want, got, "newest first, nothing lost or repeated")

	p, err := b.in.List(ctx, alice, inbox.ListOptions{Limit: 100, Types: []string{"t1", "t2"}})
	require.NoError(t, err)
	require.Len(t, p.Notifications, 16)
	for _, n := range p.Notifications {
		require.Contains(t, []string{"t1", "t2"}, n.Type)
	}

	_, err = b.in.MarkRead(ctx, alice, want[0])
	require.NoError(t, err)
	p, err = b.in.List(ctx, alice, inbox.ListOptions{Limit: 100, UnreadOnly: true})
	require.NoError(t, err)
	require.Len(t, p.Notifications, 25+3-1, "three pages, each followed by a send, less the one read")
	for _, n := range p.Notifications {
		require.Nil(t, n.ReadAt)
		require.NotEqual(t, want[0], n.ID)
	}

	for _, bad := range []string{"nope", "bm9wZQ", "MTIzLm5vdC1hLXV1aWQ"} {
		_, err = b.in.List(ctx, alice, inbox.ListOptions{Cursor: bad})
		require.ErrorIs(t, err, inbox.ErrBadCursor, bad)
	}
	for _, bad := range []int{-1, inbox.MaxLimit + 1} {
		_, err = b.in.List(ctx, alice, inbox.ListOptions{Limit: bad})
		require.ErrorIs(t, err, inbox.ErrBadLimit)
	}
}

func TestMarkReadUnreadDelete(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	id := b.send(t, alice, "a")
	b.stampAll(t)

	n, err := b.in.MarkRead(ctx, alice, id)
	require.NoError(t, err)
	require.NotNil(t, n.ReadAt)
	require.Equal(t, 1, b.pending(t), "a read is pushed")
	b.stampAll(t)

	_, err = b.in.MarkRead(ctx, alice, id)
	require.NoError(t, err)
	require.Equal(t, 0, b.pending(t), "reading a read row again pushes nothing")

	n, err = b.in.MarkUnread(ctx, alice, id)
	require.NoError(t, err)
	require.Nil(t, n.ReadAt)
	c, err := b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.EqualValues(t, 1, c.Count)

	require.NoError(t, b.in.Delete(ctx, alice, id))
	c, err = b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.EqualValues(t, 0, c.Count)
	p, err := b.in.List(ctx, alice, inbox.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, p.Notifications)
	require.ErrorIs(t, b.in.Delete(ctx, alice, id), inbox.ErrNotFound)
	_, err = b.in.MarkRead(ctx, alice, id)
	require.ErrorIs(t, err, inbox.ErrNotFound)

	var op string
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT op FROM "+b.db.Table("notifications")+" WHERE id = $1", id).Scan(&op))
	require.Equal(t, "deleted", op)

	_, err = b.in.MarkRead(ctx, alice, "not-a-uuid")
	require.ErrorIs(t, err, inbox.ErrBadID)
	require.ErrorIs(t, b.in.Delete(ctx, alice, "'; DROP TABLE x; --"), inbox.ErrBadID)
}

func TestOtherRecipientsIDsAreRefused(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	id := b.send(t, alice, "a")
	others := []outbox.Recipient{
		outbox.User("bob"),
		{Tenant: "evil", Type: "User", ID: "alice"},
		{Type: "Team", ID: "alice"},
	}
	for _, other := range others {
		_, err := b.in.MarkRead(ctx, other, id)
		require.ErrorIs(t, err, inbox.ErrNotFound, other)
		_, err = b.in.MarkUnread(ctx, other, id)
		require.ErrorIs(t, err, inbox.ErrNotFound, other)
		_, err = b.in.Archive(ctx, other, id)
		require.ErrorIs(t, err, inbox.ErrNotFound, other)
		_, err = b.in.Unarchive(ctx, other, id)
		require.ErrorIs(t, err, inbox.ErrNotFound, other)
		require.ErrorIs(t, b.in.Delete(ctx, other, id), inbox.ErrNotFound, other)
		n, err := b.in.MarkAllRead(ctx, other)
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = b.in.MarkSeen(ctx, other, inbox.SeenOptions{})
		require.NoError(t, err)
		require.Zero(t, n)
		p, err := b.in.List(ctx, other, inbox.ListOptions{Archived: inbox.ArchivedInclude})
		require.NoError(t, err)
		require.Empty(t, p.Notifications)
		p, err = b.in.List(ctx, other, inbox.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Notifications)
	}
	c, err := b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.EqualValues(t, 1, c.Count, "alice's row is untouched")
	require.EqualValues(t, 1, c.Unseen, "alice's row is untouched")
	p, err := b.in.List(ctx, alice, inbox.ListOptions{})
	require.NoError(t, err)
	require.Len(t, p.Notifications, 1, "and not archived")
}

// MarkSeen is one event (a marker row) and leaves the rows as they are for
// the relay, as MarkAllRead; in the application's transaction it rolls
// back with it.
func TestMarkSeenIsOneEvent(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	for range 3 {
		b.send(t, alice, "a")
	}
	b.stampAll(t)

	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	n, err := b.in.WithTx(tx).MarkSeen(ctx, alice, inbox.SeenOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.NoError(t, tx.Rollback(ctx))
	c, err := b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.EqualValues(t, 3, c.Unseen, "rolled back")
	require.Zero(t, b.pending(t))

	n, err = b.in.MarkSeen(ctx, alice, inbox.SeenOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	c, err = b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, inbox.Count{Count: 3}, c)
	var ops []string
	rows, err := b.db.Pool.Query(ctx, "SELECT op FROM "+b.db.Table("relay_pending"))
	require.NoError(t, err)
	for rows.Next() {
		var op string
		require.NoError(t, rows.Scan(&op))
		ops = append(ops, op)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"seen"}, ops)
	p, err := b.in.List(ctx, alice, inbox.ListOptions{})
	require.NoError(t, err)
	require.Len(t, p.Notifications, 3, "the seen marker is not in the inbox")

	_, err = b.in.MarkSeen(ctx, alice, inbox.SeenOptions{UpTo: -1})
	require.ErrorIs(t, err, inbox.ErrBadEventID)
	_, err = b.in.List(ctx, alice, inbox.ListOptions{Archived: "sometimes"})
	require.ErrorIs(t, err, inbox.ErrBadArchived)
}

func TestMarkAllReadIsOneEvent(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	for range 5 {
		b.send(t, alice, "a")
	}
	bob := b.send(t, outbox.User("bob"), "a")
	b.stampAll(t)

	n, err := b.in.MarkAllRead(ctx, alice)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	c, err := b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.Zero(t, c.Count)

	var pending []string
	rows, err := b.db.Pool.Query(ctx, "SELECT op FROM "+b.db.Table("relay_pending"))
	require.NoError(t, err)
	for rows.Next() {
		var op string
		require.NoError(t, rows.Scan(&op))
		pending = append(pending, op)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"read_all"}, pending)

	p, err := b.in.List(ctx, alice, inbox.ListOptions{})
	require.NoError(t, err)
	require.Len(t, p.Notifications, 5, "the read_all marker is not in the inbox")

	_, err = b.in.MarkRead(ctx, outbox.User("bob"), bob)
	require.NoError(t, err)
	require.Equal(t, 2, b.pending(t), "quiet mode ended with mark-all-read's transaction")

	n, err = b.in.MarkAllRead(ctx, alice)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 2, b.pending(t), "nothing to mark, nothing pushed")
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	alice := outbox.User("alice")
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				id := b.send(t, alice, "a")
				_, err := b.in.MarkRead(ctx, alice, id)
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	c, err := b.in.UnreadCount(ctx, alice)
	require.NoError(t, err)
	require.Zero(t, c.Count)
}
