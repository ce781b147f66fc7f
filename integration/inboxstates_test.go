package integration

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	"github.com/bellhophq/bellhop/worker"
)

type countAnswer struct {
	Count, Unseen int64
	Capped        bool
	UnseenCapped  bool `json:"unseen_capped"`
}

func counts(t *testing.T, base string, to outbox.Recipient) countAnswer {
	t.Helper()
	var c countAnswer
	res := api(t, http.MethodGet, base+"/notifications/unread/count", &to, &c)
	require.Equal(t, http.StatusOK, res.StatusCode)
	return c
}

type listed struct {
	ID         string     `json:"id"`
	ReadAt     *time.Time `json:"read_at"`
	SeenAt     *time.Time `json:"seen_at"`
	ArchivedAt *time.Time `json:"archived_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

func listIDs(t *testing.T, base, query string, to outbox.Recipient) []string {
	t.Helper()
	var page struct{ Notifications []listed }
	res := api(t, http.MethodGet, base+"/notifications"+query, &to, &page)
	require.Equal(t, http.StatusOK, res.StatusCode)
	ids := []string{}
	for _, n := range page.Notifications {
		ids = append(ids, n.ID)
	}
	return ids
}

// Seen is not read: marking seen clears the unseen count and leaves every
// notification unread, every tab of the recipient gets one seen event
// (and other recipients nothing), and a new notification is unseen again.
// up_to marks only what the reader can have been shown by that event.
func TestMarkSeen(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	tab1 := openStream(t, r.URL, alice, -1)
	tab2 := openStream(t, r.URL, alice, -1)
	sb := openStream(t, r.URL, bob, -1)

	b.send(t, alice, "one")
	b.send(t, alice, "two")
	b.send(t, bob, "bobs")
	tab1.next(t, 5*time.Second)
	tab1.next(t, 5*time.Second)
	tab2.next(t, 5*time.Second)
	tab2.next(t, 5*time.Second)
	sb.next(t, 5*time.Second)
	require.Equal(t, countAnswer{Count: 2, Unseen: 2}, counts(t, r.URL, alice))

	var out struct{ Updated int64 }
	res := api(t, http.MethodPost, r.URL+"/notifications/seen", &alice, &out)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.EqualValues(t, 2, out.Updated)
	for _, tab := range []*stream{tab1, tab2} {
		ev := tab.next(t, 5*time.Second)
		require.Equal(t, "seen", ev.Data.Op)
		require.Empty(t, ev.Data.ID, "the marker is not a notification")
		require.Equal(t, "null", string(ev.Data.SSE), "up to now: no until")
		tab.quiet(t, 300*time.Millisecond) // one event, not one per row
	}
	require.Equal(t, countAnswer{Count: 2, Unseen: 0}, counts(t, r.URL, alice), "seen, still unread")
	require.Equal(t, countAnswer{Count: 1, Unseen: 1}, counts(t, r.URL, bob), "bob's untouched")
	sb.quiet(t, 10*time.Millisecond)

	// Nothing left unseen: nothing changes, nothing is pushed.
	res = api(t, http.MethodPost, r.URL+"/notifications/seen", &alice, &out)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.EqualValues(t, 0, out.Updated)
	tab1.quiet(t, 300*time.Millisecond)

	// up_to: a notification pushed after the reader's last event stays
	// unseen; one pushed before it, and read meanwhile, is seen.
	b.send(t, alice, "three")
	upTo := tab1.next(t, 5*time.Second).ID
	later := b.send(t, alice, "four")
	require.Equal(t, later, tab1.next(t, 5*time.Second).Data.ID)
	res = api(t, http.MethodPost, r.URL+"/notifications/seen?up_to="+strconv.FormatInt(upTo, 10), &alice, &out)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.EqualValues(t, 1, out.Updated)
	ev := tab1.next(t, 5*time.Second)
	require.Equal(t, "seen", ev.Data.Op)
	require.JSONEq(t, `{"until": `+strconv.FormatInt(upTo, 10)+`}`, string(ev.Data.SSE))
	require.Equal(t, countAnswer{Count: 4, Unseen: 1}, counts(t, r.URL, alice))
	var page struct{ Notifications []listed }
	api(t, http.MethodGet, r.URL+"/notifications", &alice, &page)
	for _, n := range page.Notifications {
		require.Equal(t, n.ID == later, n.SeenAt == nil, "%s seen_at %v", n.ID, n.SeenAt)
	}

	for _, bad := range []string{"?up_to=0", "?up_to=-3", "?up_to=x", "?until=1"} {
		var e struct{ Error string }
		res := api(t, http.MethodPost, r.URL+"/notifications/seen"+bad, &alice, &e)
		require.Equal(t, http.StatusBadRequest, res.StatusCode, bad)
		require.NotEmpty(t, e.Error)
	}
}

// A progress update is news again: the row is unseen (and unarchived).
func TestProgressUpdateIsUnseenAgain(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	msg := outbox.Message{Kind: "export", Key: "export:1", Data: map[string]int{"progress": 10}}
	id, err := b.ob.Send(ctx, b.db.Pool, alice, msg)
	require.NoError(t, err)
	api(t, http.MethodPost, r.URL+"/notifications/seen", &alice, nil)
	require.Equal(t, http.StatusOK, api(t, http.MethodPost, r.URL+"/notifications/"+id+"/archive", &alice, nil).StatusCode)
	require.Equal(t, countAnswer{}, counts(t, r.URL, alice))

	msg.Data = map[string]int{"progress": 50}
	_, err = b.ob.Send(ctx, b.db.Pool, alice, msg)
	require.NoError(t, err)
	require.Equal(t, countAnswer{Count: 1, Unseen: 1}, counts(t, r.URL, alice))
	require.Equal(t, []string{id}, listIDs(t, r.URL, "", alice))
}

// Archive moves a notification out of the inbox (not listed by default,
// not counted) into the archive (archived=only), both pushed to every
// tab; unarchive brings it back. Archiving twice changes nothing.
func TestArchive(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	tab := openStream(t, r.URL, alice, -1)
	keep := b.send(t, alice, "keep")
	id := b.send(t, alice, "archive.me")
	tab.next(t, 5*time.Second)
	tab.next(t, 5*time.Second)

	var n listed
	res := api(t, http.MethodPost, r.URL+"/notifications/"+id+"/archive", &alice, &n)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, id, n.ID)
	require.NotNil(t, n.ArchivedAt)
	require.Nil(t, n.ReadAt, "archiving does not read")
	ev := tab.next(t, 5*time.Second)
	require.Equal(t, "archived", ev.Data.Op)
	require.Equal(t, id, ev.Data.ID)

	require.Equal(t, []string{keep}, listIDs(t, r.URL, "", alice))
	require.Equal(t, []string{keep}, listIDs(t, r.URL, "?archived=false", alice))
	require.Equal(t, []string{id}, listIDs(t, r.URL, "?archived=only", alice))
	require.Equal(t, []string{id, keep}, listIDs(t, r.URL, "?archived=true", alice))
	require.Equal(t, countAnswer{Count: 1, Unseen: 1}, counts(t, r.URL, alice))

	// Again: a no-op, pushed to nobody.
	res = api(t, http.MethodPost, r.URL+"/notifications/"+id+"/archive", &alice, &n)
	require.Equal(t, http.StatusOK, res.StatusCode)
	tab.quiet(t, 300*time.Millisecond)

	// An archived notification can still be read, and unarchived.
	require.Equal(t, http.StatusOK, api(t, http.MethodPost, r.URL+"/notifications/"+id+"/read", &alice, nil).StatusCode)
	require.Equal(t, "read", tab.next(t, 5*time.Second).Data.Op)
	res = api(t, http.MethodPost, r.URL+"/notifications/"+id+"/unarchive", &alice, &n)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Nil(t, n.ArchivedAt)
	ev = tab.next(t, 5*time.Second)
	require.Equal(t, "unarchived", ev.Data.Op)
	require.Equal(t, id, ev.Data.ID)
	require.Equal(t, []string{id, keep}, listIDs(t, r.URL, "", alice))

	var e struct{ Error string }
	res = api(t, http.MethodGet, r.URL+"/notifications?archived=maybe", &alice, &e)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Equal(t, "bad_archived", e.Error)
	res = api(t, http.MethodPost, r.URL+"/notifications/not-a-uuid/archive", &alice, &e)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Equal(t, "bad_id", e.Error)
	res = api(t, http.MethodPost, r.URL+"/notifications/"+id+"/archive", &bob, &e)
	require.Equal(t, http.StatusNotFound, res.StatusCode, "not bob's")
	res = api(t, http.MethodPost, r.URL+"/notifications/"+id+"/unarchive", nil, &e)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

// An expiring notification is listed and counted until its time, then
// neither, and every open tab gets an expired event; one that never
// expires stays. Read, archive and the rest answer 404 for it.
func TestExpiry(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) { c.Worker.SweepInterval = 200 * time.Millisecond })
	tab := openStream(t, r.URL, alice, -1)
	stays := b.send(t, alice, "stays")
	at := time.Now().Add(1500 * time.Millisecond)
	id, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "flash.sale", Expires: at})
	require.NoError(t, err)
	tab.next(t, 5*time.Second)
	tab.next(t, 5*time.Second)
	require.Equal(t, countAnswer{Count: 2, Unseen: 2}, counts(t, r.URL, alice))
	var page struct{ Notifications []listed }
	api(t, http.MethodGet, r.URL+"/notifications", &alice, &page)
	require.Len(t, page.Notifications, 2)
	require.NotNil(t, page.Notifications[0].ExpiresAt)
	require.WithinDuration(t, at, *page.Notifications[0].ExpiresAt, time.Millisecond)

	ev := tab.next(t, 5*time.Second)
	require.Equal(t, "expired", ev.Data.Op)
	require.Equal(t, id, ev.Data.ID)
	require.False(t, ev.At.Before(at), "not before its time")
	// The sweep runs every 200 ms; River starts it late on a loaded
	// machine (2.2 s once in CI, with every integration test running).
	require.Less(t, ev.At.Sub(at), 5*time.Second, "within the sweep interval and a stamp")
	require.Equal(t, []string{stays}, listIDs(t, r.URL, "?archived=true", alice))
	require.Equal(t, countAnswer{Count: 1, Unseen: 1}, counts(t, r.URL, alice))
	for _, path := range []string{"/read", "/unread", "/archive", "/unarchive"} {
		res := api(t, http.MethodPost, r.URL+"/notifications/"+id+path, &alice, nil)
		require.Equal(t, http.StatusNotFound, res.StatusCode, path)
	}
	tab.quiet(t, 600*time.Millisecond) // pushed once, not at every sweep

	// In the past already: never listed, and pushed as expired too.
	past, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "too.late", Expires: time.Now().Add(-time.Minute)})
	require.NoError(t, err)
	require.Equal(t, []string{stays}, listIDs(t, r.URL, "", alice))
	seen := map[string]string{}
	for len(seen) < 1 || seen[past] != "expired" {
		ev := tab.next(t, 5*time.Second)
		seen[ev.Data.ID] = ev.Data.Op
	}

	_, err = b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "x", Expires: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.ErrorIs(t, err, outbox.ErrInvalid)
	require.ErrorContains(t, err, "expires_at")
}

// The prune job keeps archived rows like read rows (for the retention,
// counted from archiving) and removes expired rows, like deleted ones,
// once the replay window has passed.
func TestPruneArchivedAndExpired(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) {
		c.Worker = worker.Config{WakeMode: worker.WakeAdaptive, SweepInterval: 200 * time.Millisecond,
			ReplayWindow: time.Hour, Retention: 48 * time.Hour, PruneInterval: 200 * time.Millisecond}
	})
	tab := openStream(t, r.URL, alice, -1)
	table := b.db.Table("notifications")
	oldArchived := b.send(t, alice, "old.archived")
	newArchived := b.send(t, alice, "new.archived")
	oldExpired, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "old.expired", Expires: time.Now().Add(-2 * time.Hour)})
	require.NoError(t, err)
	newExpired, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "new.expired", Expires: time.Now().Add(-time.Minute)})
	require.NoError(t, err)
	deleted := b.send(t, alice, "deleted")
	for _, id := range []string{oldArchived, newArchived} {
		require.Equal(t, http.StatusOK, api(t, http.MethodPost, r.URL+"/notifications/"+id+"/archive", &alice, nil).StatusCode)
	}
	require.Equal(t, http.StatusNoContent, api(t, http.MethodDelete, r.URL+"/notifications/"+deleted, &alice, nil).StatusCode)
	// Archived past the replay window, and the retention: quietly, so the
	// row stays logged.
	backdate := func(set, id string) {
		_, err := b.db.Pool.Exec(ctx, "BEGIN; SET LOCAL bellhop.quiet = 'on'; UPDATE "+table+" SET "+set+" WHERE id = '"+id+"'; COMMIT")
		require.NoError(t, err)
	}
	// Let every change be logged first (the prune job takes logged rows only).
	ops := map[string]bool{}
	for len(ops) < 3 {
		ev := tab.next(t, 5*time.Second)
		if ev.Data.Op == "expired" || ev.Data.Op == "deleted" {
			ops[ev.Data.ID] = true
		}
	}
	backdate("archived_at = now() - interval '72 hours'", oldArchived)
	backdate("archived_at = now() - interval '2 hours', deleted_at = NULL", newArchived)
	backdate("deleted_at = now() - interval '2 hours'", deleted)

	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id IN ($1, $2, $3)", oldArchived, oldExpired, deleted).Scan(&n))
		return n == 0
	}, 10*time.Second, 50*time.Millisecond, "old archived, old expired and deleted rows are pruned")
	var left []string
	rows, err := b.db.Pool.Query(ctx, "SELECT id::text FROM "+table+" WHERE id IN ($1, $2) ORDER BY type", newArchived, newExpired)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		left = append(left, id)
	}
	require.NoError(t, rows.Err())
	require.ElementsMatch(t, []string{newArchived, newExpired}, left, "archived past the window but not the retention, expired within the window: kept")
}
