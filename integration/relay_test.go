package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

var (
	alice      = outbox.User("alice")
	bob        = outbox.User("bob")
	aliceOther = outbox.Recipient{Tenant: "other", Type: "User", ID: "alice"}
)

func TestCommitIsPushedRollbackIsNot(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	sa := openStream(t, r.URL, alice, -1)
	sb := openStream(t, r.URL, bob, -1)
	so := openStream(t, r.URL, aliceOther, -1)

	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = b.ob.Send(ctx, tx, alice, outbox.Message{Kind: "rolled.back"})
	require.NoError(t, err)
	sa.quiet(t, 300*time.Millisecond) // still open: nothing
	require.NoError(t, tx.Rollback(ctx))

	id := b.send(t, alice, "invoice.paid")
	ev := sa.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID)
	require.Equal(t, "created", ev.Data.Op)
	require.Equal(t, "invoice.paid", ev.Data.Type)
	require.JSONEq(t, `{"k":"invoice.paid"}`, string(ev.Data.SSE))

	// Long enough for the relay's sweep to have run at least once more.
	sa.quiet(t, 1500*time.Millisecond)
	sb.quiet(t, 10*time.Millisecond)
	so.quiet(t, 10*time.Millisecond)
}

func TestResumeFromLastEventID(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	s := openStream(t, r.URL, alice, -1)
	b.send(t, alice, "first")
	last := s.next(t, 5*time.Second).ID
	s.Close()

	var want []string
	for i := range 3 {
		want = append(want, b.send(t, alice, fmt.Sprintf("missed.%d", i)))
		b.send(t, bob, "not.alices")
	}
	// Wait until the relay has stamped them, so they are history, not live.
	require.Eventually(t, func() bool {
		var n int
		_ = b.db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+b.db.Table("relay_pending")).Scan(&n)
		return n == 0
	}, 5*time.Second, 10*time.Millisecond)

	for _, viaQuery := range []bool{false, true} {
		var s2 *stream
		if viaQuery {
			s2 = openStreamQuery(t, r.URL, alice, last)
		} else {
			s2 = openStream(t, r.URL, alice, last)
		}
		prev := last
		for i := range 3 {
			ev := s2.next(t, 5*time.Second)
			require.Equal(t, want[i], ev.Data.ID)
			require.Greater(t, ev.ID, prev)
			prev = ev.ID
		}
		s2.quiet(t, 300*time.Millisecond)
	}
}

// openStreamQuery opens a stream resuming with ?last_event_id= instead of
// the header.
func openStreamQuery(t *testing.T, base string, to outbox.Recipient, lastID int64) *stream {
	t.Helper()
	return openStream(t, fmt.Sprintf("%s/notifications/stream?last_event_id=%d", base, lastID), to, -1)
}

func TestOutOfOrderCommitsAreDelivered(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	s := openStream(t, r.URL, alice, -1)

	early, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	earlyID, err := b.ob.Send(ctx, early, alice, outbox.Message{Kind: "inserted.first"})
	require.NoError(t, err)

	lateID := b.send(t, alice, "committed.first")
	first := s.next(t, 5*time.Second)
	require.Equal(t, lateID, first.Data.ID)

	require.NoError(t, early.Commit(ctx))
	second := s.next(t, 5*time.Second)
	require.Equal(t, earlyID, second.Data.ID)
	require.Greater(t, second.ID, first.ID)
}

func TestTwoRelaysShareTheWork(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	shareTheWork(t, b, b.startRelay(t), b.startRelay(t))
}

// shareTheWork has four writers send 200 rows while r1 and r2 run: each
// relay's stream gets all of them, once and in order, and the log has one
// entry per row, the head its highest seq.
func shareTheWork(t *testing.T, b *testBundle, r1, r2 *testRelay) {
	t.Helper()
	ctx := context.Background()
	s1 := openStream(t, r1.URL, alice, -1)
	s2 := openStream(t, r2.URL, alice, -1)

	const n = 200
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				_, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: fmt.Sprintf("w%d.%d", w, i)})
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	for _, s := range []*stream{s1, s2} {
		seen := map[string]bool{}
		prev := int64(0)
		for range n {
			ev := s.next(t, 10*time.Second)
			require.False(t, seen[ev.Data.ID], "event repeated")
			seen[ev.Data.ID] = true
			require.Greater(t, ev.ID, prev)
			prev = ev.ID
		}
		s.quiet(t, 200*time.Millisecond)
	}
	// Stamping was serialized: one log entry per row, no seq twice, and the
	// head is the highest seq.
	var count, rows, maxSeq, head int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(DISTINCT seq), count(DISTINCT id), max(seq), (SELECT last_seq FROM "+
		b.db.Table("relay_state")+") FROM "+b.db.Table("relay_log")).Scan(&count, &rows, &maxSeq, &head))
	require.EqualValues(t, n, count)
	require.EqualValues(t, n, rows)
	require.Equal(t, head, maxSeq)
}

func TestKilledListenersLoseNothing(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	s := openStream(t, r.URL, alice, -1)

	var want []string
	for round := range 3 {
		// Found by their LISTEN, their last statement once connected.
		var pids []uint32
		require.Eventually(t, func() bool {
			pids = b.listenerPIDs(t)
			return pids[0] != 0 && pids[1] != 0
		}, 10*time.Second, 10*time.Millisecond, "listeners not connected")
		for _, pid := range pids {
			_, err := b.db.Pool.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid))
			require.NoError(t, err)
		}
		// Committed while the listeners are down.
		for i := range 5 {
			want = append(want, b.send(t, alice, fmt.Sprintf("gap.%d.%d", round, i)))
		}
		require.Eventually(t, func() bool {
			p := b.listenerPIDs(t)
			return p[0] != 0 && p[1] != 0 && p[0] != pids[0] && p[1] != pids[1]
		}, 10*time.Second, 10*time.Millisecond, "listeners did not reconnect")
	}
	for i, id := range want {
		ev := s.next(t, 10*time.Second)
		require.Equal(t, id, ev.Data.ID, "event %d", i)
	}
}

func TestProgressPushesEveryUpdate(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	s := openStream(t, r.URL, alice, -1)

	var rowID string
	for pct := 0; pct <= 100; pct += 25 {
		id, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{
			Kind: "export.progress", Key: "export-1",
			Data: map[string]int{"progress": pct}, SSE: map[string]int{"progress": pct},
		})
		require.NoError(t, err)
		ev := s.next(t, 5*time.Second)
		require.Equal(t, id, ev.Data.ID)
		require.JSONEq(t, fmt.Sprintf(`{"progress":%d}`, pct), string(ev.Data.SSE))
		if pct == 0 {
			rowID = id
			require.Equal(t, "created", ev.Data.Op)
		} else {
			require.Equal(t, rowID, id)
			require.Equal(t, "updated", ev.Data.Op)
		}
		require.Equal(t, "export-1", *ev.Data.DatabaseKey)
	}
	require.EqualValues(t, 1, b.unread(t, r.URL, alice))
}

func TestCountFollowsEvents(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	s := openStream(t, r.URL, alice, -1)
	for i := 1; i <= 10; i++ {
		b.send(t, alice, "n")
		s.next(t, 5*time.Second)
		require.EqualValues(t, i, b.unread(t, r.URL, alice), "after event %d", i)
	}
}

func TestReaderChangesArePushed(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	tab1 := openStream(t, r.URL, alice, -1)
	tab2 := openStream(t, r.URL, alice, -1)
	ids := []string{b.send(t, alice, "a"), b.send(t, alice, "b")}
	for _, tab := range []*stream{tab1, tab2} {
		tab.next(t, 5*time.Second)
		tab.next(t, 5*time.Second)
	}

	var n relay.Event
	res := api(t, http.MethodPost, r.URL+"/notifications/"+ids[0]+"/read", &alice, &n)
	require.Equal(t, http.StatusOK, res.StatusCode)
	for _, tab := range []*stream{tab1, tab2} {
		ev := tab.next(t, 5*time.Second)
		require.Equal(t, "read", ev.Data.Op)
		require.Equal(t, ids[0], ev.Data.ID)
		require.NotNil(t, ev.Data.ReadAt)
	}
	res = api(t, http.MethodPost, r.URL+"/notifications/"+ids[0]+"/unread", &alice, &n)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "unread", tab1.next(t, 5*time.Second).Data.Op)

	var all struct{ Updated int }
	res = api(t, http.MethodPost, r.URL+"/notifications/read-all", &alice, &all)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, 2, all.Updated)
	require.Equal(t, "read_all", tab1.next(t, 5*time.Second).Data.Op)
	tab1.quiet(t, 300*time.Millisecond) // one event, not one per row
	require.EqualValues(t, 0, b.unread(t, r.URL, alice))

	res = api(t, http.MethodDelete, r.URL+"/notifications/"+ids[1], &alice, nil)
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	ev := tab1.next(t, 5*time.Second)
	require.Equal(t, "deleted", ev.Data.Op)
	require.Equal(t, ids[1], ev.Data.ID)

	var page struct {
		Notifications []struct{ ID string }
		NextCursor    *string `json:"next_cursor"`
	}
	res = api(t, http.MethodGet, r.URL+"/notifications?limit=10", &alice, &page)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Len(t, page.Notifications, 1)
	require.Equal(t, ids[0], page.Notifications[0].ID)
	require.Nil(t, page.NextCursor)
}

func TestSlowReaderIsDropped(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) {
		c.StreamBuffer = 8
		c.WriteTimeout = 2 * time.Second
	})
	// Unchecked: validating its 20 MB of events (under -race, on a busy
	// machine) made this reader slow enough for the relay to cut it too.
	healthy := openStreamWith(t, unchecked, r.URL, alice, -1)

	// A client that never reads: its socket buffers fill, then its stream's
	// buffer, and the hub drops it.
	// A raw connection that sends its request and never reads a byte; its
	// receive buffer is tiny, so the relay's writes block soon.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(r.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET /notifications/stream HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\n\r\n", token(t, alice))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(metrics(t, r.URL), "bellhop_streams_connected 2")
	}, 5*time.Second, 10*time.Millisecond)

	// 20 MB: far more than the socket buffers hold.
	const n = 5000
	payload := strings.Repeat("x", 4000)
	_, err = b.db.Pool.Exec(ctx, "INSERT INTO "+b.db.Table("notifications")+
		" (notifiable_id, type, sse) SELECT 'alice', 'bulk', jsonb_build_object('pad', $1::text, 'i', i) FROM generate_series(1, $2) i", payload, n)
	require.NoError(t, err)

	for range n {
		healthy.next(t, 10*time.Second)
	}
	require.Eventually(t, func() bool {
		return strings.Contains(metrics(t, r.URL), "bellhop_slow_consumers_dropped_total 1")
	}, 15*time.Second, 20*time.Millisecond, "the slow reader was not cut: %s", metrics(t, r.URL))
}

func metrics(t *testing.T, base string) string {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

func TestPollMode(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) { c.Worker.WakeMode = "poll" })
	s := openStream(t, r.URL, alice, -1)
	var flag int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT last_value FROM "+b.db.Table("relay_wake")).Scan(&flag))
	require.Zero(t, flag, "poll mode keeps writers from NOTIFYing")
	id := b.send(t, alice, "polled")
	require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)
}
