package integration

// Event ids across a change of database server, and stamps that must be
// durable: each test runs on a local cluster of its own, which it restarts.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// ownRelay runs a relay in this process, as startRelay does, but the test
// stops it when it likes (a relay process that goes away); stop is also
// registered for the test's end.
func (b *testBundle) ownRelay(t *testing.T, mutate ...func(*relay.Config)) (url string, stop func()) {
	t.Helper()
	cfg := b.relayConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	ctx := context.Background()
	r, err := relay.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	srv := httptest.NewServer(r.Handler())
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.CloseClientConnections()
			_ = r.Stop(context.Background())
			srv.Close()
		})
	}
	t.Cleanup(stop)
	checkRelay(t, srv.URL)
	waitReady(t, srv.URL)
	return srv.URL, stop
}

// logged waits until the relay logged each of ids.
func (b *testBundle) logged(t *testing.T, pool *pgxpool.Pool, ids ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(context.Background(), "SELECT count(DISTINCT id) FROM "+b.db.Table("relay_log")+
			" WHERE id::text = ANY ($1)", ids).Scan(&n)
		return err == nil && n == len(ids)
	}, 10*time.Second, 10*time.Millisecond, "the relay never logged %v", ids)
}

// A promoted standby that lacks the last stamps, on a clock behind the old
// primary's, with the relays restarted (floor 0): the seqs it hands out
// must stay above every id a client got from the old primary, or a client
// resuming from such an id skips the events stamped below it.
//
// Simulated on one cluster: the "old primary" stamps with a head three
// seconds ahead of the clock (its clock ran ahead); the client holds the
// last of those ids. Then the log, the head and the cursor go back to before
// those stamps and their rows go (the tail the standby never received), the
// server restarts (a new server) and a fresh relay takes over. Events
// stamped right after the restart, below the client's id on the clock
// alone, and one stamped once the clock has passed that id must all reach
// the client that resumes from its id.
func TestNewServerNeverReusesEventIDs(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	db := pgtest.NewOn(t, srv.URL)
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(t, err)
	b := &testBundle{db: db, ob: ob}
	ctx := context.Background()
	state := db.Table("relay_state")

	url, stop := b.ownRelay(t)
	s := openStream(t, url, alice, -1)
	b.send(t, alice, "replicated")
	s.next(t, 5*time.Second)

	// What the standby has: everything up to here.
	_, err = db.Pool.Exec(ctx, "CREATE TABLE "+db.Table("standby_state")+" AS SELECT * FROM "+state)
	require.NoError(t, err)
	// The old primary's clock runs three seconds ahead.
	_, err = db.Pool.Exec(ctx, "UPDATE "+state+
		" SET last_seq = floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 3000000")
	require.NoError(t, err)
	lost := []string{b.send(t, alice, "lost.1"), b.send(t, alice, "lost.2")}
	s.next(t, 5*time.Second)
	held := s.next(t, 5*time.Second).ID
	s.Close()
	stop()

	// Failover: the tail is gone, the relays restart on another server.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	for _, q := range []string{
		"DELETE FROM bellhop.relay_log WHERE seq > (SELECT last_seq FROM bellhop.standby_state)",
		"DELETE FROM bellhop.notifications WHERE id::text = ANY ($1)",
		`UPDATE bellhop.relay_state AS s
		 SET last_seq = o.last_seq, seen = o.seen, next = o.next, next_xid = o.next_xid, next_id = o.next_id
		 FROM bellhop.standby_state AS o`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, lost)
		}
		_, err := tx.Exec(ctx, strings.ReplaceAll(q, "bellhop.", db.Schema+"."), args...)
		require.NoError(t, err, q)
	}
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, srv.Restart("fast"))
	db.Pool.Reset()
	url, _ = b.ownRelay(t)

	var want []string
	for i := range 3 {
		want = append(want, b.send(t, alice, fmt.Sprintf("after.%d", i)))
	}
	b.logged(t, db.Pool, want...)
	// The client comes back later, once the clock has passed its id and a
	// later event has pushed the head past it too.
	require.Eventually(t, func() bool {
		var past bool
		err := db.Pool.QueryRow(ctx, "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint > $1", held).Scan(&past)
		return err == nil && past
	}, 10*time.Second, 50*time.Millisecond)
	want = append(want, b.send(t, alice, "after.clock"))
	b.logged(t, db.Pool, want...)

	resumed := openStream(t, url, alice, held)
	var got []string
	for range want {
		ev := resumed.next(t, 5*time.Second)
		require.Greater(t, ev.ID, held, "an id after the client's")
		got = append(got, ev.Data.ID)
	}
	require.Equal(t, want, got, "every event after the client's id, in order")
}

// BELLHOP_DURABLE_STAMPS=true, and a head ahead of the clock, mean a stamp
// waits for its WAL flush even when the server or the relay's role defaults
// to synchronous_commit = off. The relay's role here does; the WAL writer
// flushes only every ten seconds; the server crashes (immediate stop) right
// after the event arrives. The stamp, and the id the client got, must still
// be there after recovery.
func TestDurableStampsSurviveACrash(t *testing.T) {
	t.Parallel()
	t.Run("durable stamps", func(t *testing.T) {
		t.Parallel()
		durableStampCrash(t, func(*pgtest.DB) {}, func(c *relay.Config) { c.Worker.DurableStamps = true })
	})
	t.Run("head ahead of the clock", func(t *testing.T) {
		t.Parallel()
		durableStampCrash(t, func(db *pgtest.DB) {
			_, err := db.Pool.Exec(context.Background(), "UPDATE "+db.Table("relay_state")+
				" SET last_seq = floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 3600000000")
			require.NoError(t, err)
		})
	})
}

func durableStampCrash(t *testing.T, prepare func(*pgtest.DB), mutate ...func(*relay.Config)) {
	srv := pgtest.NewServer(t)
	db := pgtest.NewOn(t, srv.URL)
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(t, err)
	b := &testBundle{db: db, ob: ob}
	ctx := context.Background()
	for _, q := range []string{
		"ALTER SYSTEM SET wal_writer_delay = '10s'",
		"SELECT pg_reload_conf()",
		"CREATE ROLE bellhop_async LOGIN SUPERUSER",
		"ALTER ROLE bellhop_async SET synchronous_commit = off",
	} {
		_, err := db.Pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	prepare(db)
	require.True(t, strings.HasPrefix(db.URL, "postgres://postgres@"), db.URL)
	asyncURL := strings.Replace(db.URL, "postgres://postgres@", "postgres://bellhop_async@", 1)
	url, stop := b.ownRelay(t, append(mutate, func(c *relay.Config) {
		c.DatabaseURL = asyncURL
		// The sweep's jobs would write more WAL in the meantime.
		c.Worker.SweepInterval = time.Minute
	})...)

	s := openStream(t, url, alice, -1)
	// The writer's own commit (postgres, synchronous) is flushed.
	id := b.send(t, alice, "durable")
	ev := s.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID)
	require.NoError(t, srv.Restart("immediate"))
	s.Close()
	stop()

	db.Pool.Reset()
	var logged []int64
	rows, err := db.Pool.Query(ctx, "SELECT seq FROM "+db.Table("relay_log")+" WHERE id = $1", id)
	require.NoError(t, err)
	for rows.Next() {
		var seq int64
		require.NoError(t, rows.Scan(&seq))
		logged = append(logged, seq)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int64{ev.ID}, logged, "the stamp the client saw survived the crash")
}
