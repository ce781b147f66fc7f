package integration

// Fault drills: each runs a steady write load (a few hundred notifications a
// second across 20 recipients, with rolled-back transactions and rolled-back
// savepoints mixed in on purpose) against relay processes, with one open,
// reconnecting stream per recipient, while something breaks: listener
// connections, the relay process, PostgreSQL itself, replicas, a backlog, a
// graceful shutdown. At the end each drill checks, per stream, against the
// table: every committed notification of that recipient received exactly
// once, in increasing id order, and nothing from a transaction that did not
// commit.
//
// The short variants together take about two minutes. The long ones run
// with -drill.long or BELLHOP_DRILL_LONG=1:
//
//	go test -race -count=1 -run Drill ./integration/ -drill.long

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/internal/loadgen"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/outbox"
)

var drillLong = flag.Bool("drill.long", os.Getenv("BELLHOP_DRILL_LONG") != "",
	"run the fault drills' long variants (also BELLHOP_DRILL_LONG=1)")

// span is short in the default run, long with -drill.long.
func span(short, long time.Duration) time.Duration {
	if *drillLong {
		return long
	}
	return short
}

// pick is span for counts.
func pick(short, long int) int {
	if *drillLong {
		return long
	}
	return short
}

// TestDrillListenerKills terminates the relay's LISTEN connections with
// pg_terminate_backend over and over while writers commit.
func TestDrillListenerKills(t *testing.T) {
	ctx, b := setup(t)
	p := b.startRelays(t, 1)[0]
	d := newDrill(t, b, func() []string { return []string{p.URL} })
	d.start(t)

	// The hub's connection listens on the preferences channel too, before or
	// after the relayed one: its last query is either LISTEN.
	channels := []string{sqlq.Channel(b.db.Schema, "relayed"), sqlq.Channel(b.db.Schema, "preferences"), sqlq.Channel(b.db.Schema, "pending")}
	rounds, killed := 0, 0
	until := time.Now().Add(span(8*time.Second, 90*time.Second))
	for time.Now().Before(until) {
		time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
		pids := listenerPIDs(t, ctx, b.db.Pool, channels)
		if len(pids) == 0 {
			continue // between a kill and the reconnect
		}
		for _, pid := range pids {
			var ok bool
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok))
			if ok {
				killed++
			}
		}
		rounds++
	}
	d.finish(t)
	t.Logf("%d rounds, %d listener connections terminated", rounds, killed)
	require.GreaterOrEqual(t, rounds, 5, "the drill must actually have killed listeners")

	// Both listeners came back on their own, and said so.
	m := metrics(t, p.URL)
	for _, ch := range []string{"relayed", "pending"} {
		n := metricValue(m, `bellhop_listener_reconnects_total{channel="`+ch+`"}`)
		require.Positive(t, n, "the %s listener never reconnected:\n%s", ch, m)
	}
	require.Eventually(t, func() bool { return len(listenerPIDs(t, ctx, b.db.Pool, channels)) == 2 },
		10*time.Second, 20*time.Millisecond, "both listeners are connected again")
	// The hub's new connection registered as a listener again (stamps of
	// other replicas are announced to it: sqlq.ListenerLock).
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND classid = $1::int4::oid AND objid = hashtext($2)::oid
			  AND objsubid = 2 AND granted AND pid = ANY ($3)`,
			sqlq.ListenerLock, b.db.Schema, listenerPIDs(t, ctx, b.db.Pool, channels)).Scan(&n))
		return n == 1
	}, 10*time.Second, 20*time.Millisecond, "the hub's LISTEN connection holds the listener lock")
	d.verify(t)
}

// TestDrillRelaySIGKILL kills the relay with SIGKILL mid-load and restarts
// it on the same port; the streams reconnect and resume.
func TestDrillRelaySIGKILL(t *testing.T) {
	_, b := setup(t)
	p := b.startRelays(t, 1)[0]
	d := newDrill(t, b, func() []string { return []string{p.URL} })
	d.start(t)

	kills := pick(3, 20)
	for range kills {
		time.Sleep(time.Duration(1500+rand.IntN(1500)) * time.Millisecond)
		p.kill(t)
		time.Sleep(time.Duration(200+rand.IntN(600)) * time.Millisecond) // writes go on while it is down
		p.start(t)
	}
	time.Sleep(time.Second)
	d.finish(t)
	d.verify(t)
	d.requireReconnects(t, kills)
}

// TestDrillPostgresRestart restarts PostgreSQL (a dedicated local cluster:
// never the shared one) in fast and in immediate mode under load. The relay
// is not restarted: it must recover by itself, /readyz going 503 then 200.
// Writers' transactions that failed are never delivered.
//
// By default a stamp commits without waiting for its WAL flush, so an
// immediate (crash) restart may take back stamps whose events were pushed:
// their rows are logged again and arrive again, the same change under a later
// id. Nothing may be lost; with BELLHOP_DURABLE_STAMPS nothing may repeat
// either.
func TestDrillPostgresRestart(t *testing.T) {
	t.Run("default", func(t *testing.T) { drillPostgresRestart(t, true) })
	t.Run("durable stamps", func(t *testing.T) { drillPostgresRestart(t, false, "BELLHOP_DURABLE_STAMPS=true") })
}

func drillPostgresRestart(t *testing.T, repeats bool, env ...string) {
	srv := pgtest.NewServer(t)
	db := pgtest.NewOn(t, srv.URL)
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(t, err)
	b := &testBundle{db: db, ob: ob}
	p := b.startRelays(t, 1, env...)[0]
	d := newDrill(t, b, func() []string { return []string{p.URL} })
	d.repeats = repeats
	d.start(t)

	modes := []string{"fast", "immediate"}
	if *drillLong {
		modes = []string{"fast", "immediate", "fast", "immediate", "immediate", "fast"}
	}
	for _, mode := range modes {
		time.Sleep(span(2*time.Second, 10*time.Second))
		w := watchReady(p.URL)
		before := d.load.Snapshot()
		require.NoError(t, srv.Restart(mode), "restart PostgreSQL (%s)", mode)
		require.Eventually(t, func() bool { return w.last() == http.StatusOK && w.sawNotReady() },
			30*time.Second, 20*time.Millisecond, "after a %s restart /readyz must go 503, then 200 again; saw %v", mode, w.seen())
		w.stop()
		after := d.load.Snapshot()
		t.Logf("%s restart: /readyz %v; writers: %d transactions failed, %d commits uncertain",
			mode, w.seen(), after.FailedTx-before.FailedTx, after.UncertainTx-before.UncertainTx)
	}
	time.Sleep(span(2*time.Second, 10*time.Second))
	d.finish(t)
	s := d.load.Snapshot()
	require.Positive(t, s.FailedTx+s.UncertainTx, "the restarts must have failed some writers' transactions")
	d.verify(t)
}

// TestDrillReplicaChurn runs three relays; every few seconds one, at random,
// is SIGKILLed and restarted. Streams start spread across them and
// reconnect to whichever answers.
func TestDrillReplicaChurn(t *testing.T) {
	_, b := setup(t)
	procs := b.startRelays(t, 3)
	urls := []string{procs[0].URL, procs[1].URL, procs[2].URL}
	d := newDrill(t, b, func() []string { return urls })
	d.start(t)

	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	kills := pick(5, 30)
	var victims []int
	var order []int // a random order of the relays, so each dies at least once
	for range kills {
		time.Sleep(time.Duration(1500+rng.IntN(1500)) * time.Millisecond)
		if len(order) == 0 {
			order = rng.Perm(len(procs))
		}
		i := order[0]
		order = order[1:]
		victims = append(victims, i)
		procs[i].kill(t)
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		procs[i].start(t)
	}
	time.Sleep(time.Second)
	d.finish(t)
	t.Logf("seed %d: killed relays %v", seed, victims)
	d.verify(t)
	d.requireReconnects(t, 1)
}

// TestDrillResumeOnTrailingReplica resumes a stream on a replica whose hub
// has not yet read the newest stamped rows: the client saw them on another
// replica. The resume point must not move back, and what the client already
// has must not arrive again. The row is stamped by hand, without the
// relayed NOTIFY, so this replica learns of it only from its one-second
// backstop: the window is wide enough to connect in.
func TestDrillResumeOnTrailingReplica(t *testing.T) {
	ctx, b := setup(t)
	r := b.startRelay(t)
	first := b.send(t, alice, "seen.everywhere")
	s := openStream(t, r.URL, alice, 0)
	require.Equal(t, first, s.next(t, 5*time.Second).Data.ID)
	s.Close()

	var seq int64
	// A row another replica logged, which this one's hub has not read yet:
	// xid 0 is in every snapshot, so this relay never logs the row itself.
	require.NoError(t, b.db.Pool.QueryRow(ctx, "WITH h AS (UPDATE "+b.db.Table("relay_state")+
		" SET last_seq = last_seq + 1 RETURNING last_seq), n AS (INSERT INTO "+b.db.Table("notifications")+
		" (notifiable_id, type, sse, xid) VALUES ('alice', 'seen.elsewhere', '{}', '0') RETURNING id, xid, tenant_id, notifiable_type, notifiable_id)"+
		" INSERT INTO "+b.db.Table("relay_log")+" (seq, id, xid, tenant_id, notifiable_type, notifiable_id)"+
		" SELECT h.last_seq, n.id, n.xid, n.tenant_id, n.notifiable_type, n.notifiable_id FROM h, n RETURNING seq").Scan(&seq))

	c := newDrillClient(alice, token(t, alice), http.DefaultClient, func() []string { return []string{r.URL} }, 0, strconv.FormatInt(seq, 10))
	ctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond) // past the backstop
	defer cancel()
	c.Run(ctx)
	require.Equal(t, 1, c.Stats().Connects)
	require.Empty(t, c.Problems(), "the stream must not move the resume point back")
	require.Empty(t, c.Received(), "the client already had seq %d", seq)
	require.Equal(t, strconv.FormatInt(seq, 10), c.LastID())
}

// TestDrillBacklog keeps the relay down while 100,000 notifications commit
// in one statement, then starts it: a resuming stream gets them all, and
// the relay's memory stays bounded while it works through them.
func TestDrillBacklog(t *testing.T) {
	ctx, b := setup(t)
	p := b.startRelays(t, 1)[0]
	d := newDrill(t, b, func() []string { return []string{p.URL} })
	d.to = d.to[:1]
	d.connect(t)
	p.kill(t)

	n := pick(100_000, 500_000)
	to := d.to[0]
	rows, err := b.db.Pool.Query(ctx, "INSERT INTO "+b.db.Table("notifications")+
		" (notifiable_id, type, data, sse) SELECT $1, 'drill.commit', jsonb_build_object('i', i), jsonb_build_object('i', i)"+
		" FROM generate_series(1, $2) i RETURNING id::text", to.ID, n)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		d.load.Committed[id] = loadgen.Commit{To: to.ID}
	}
	require.NoError(t, rows.Err())
	// And a big transaction that rolls back.
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	rows, err = tx.Query(ctx, "INSERT INTO "+b.db.Table("notifications")+
		" (notifiable_id, type) SELECT $1, 'drill.rollback' FROM generate_series(1, 5000) RETURNING id::text", to.ID)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		d.load.RolledBack[id] = true
	}
	require.NoError(t, rows.Err())
	require.NoError(t, tx.Rollback(ctx))

	start := time.Now()
	p.start(t)
	baseline := rssKiB(t, p.Proc)
	peak := baseline
	c := d.clients[0]
	for c.received() < n {
		peak = max(peak, rssKiB(t, p.Proc))
		if time.Since(start) > span(3*time.Minute, 10*time.Minute) {
			// Say where it stuck: rows not yet stamped, or a stream that
			// did not get what was stamped.
			// And rows the cursor passed without a log entry (a stamp that
			// skipped them), against rows logged but not pushed.
			var pending, unlogged int
			perr := b.db.Pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+b.db.Table("relay_pending")+"), "+
				"(SELECT count(*) FROM "+b.db.Table("notifications")+" AS n WHERE NOT EXISTS (SELECT 1 FROM "+
				b.db.Table("relay_log")+" AS l WHERE l.id = n.id AND l.xid = n.xid))").Scan(&pending, &unlogged)
			got := map[int64]bool{}
			for _, ev := range c.events() {
				got[ev.Seq] = true
			}
			var missing []string
			seqs, qerr := b.db.Pool.Query(ctx, "SELECT seq FROM "+b.db.Table("relay_log")+" ORDER BY seq")
			require.NoError(t, qerr)
			var first, prev int64 = -1, -1
			for seqs.Next() {
				var seq int64
				require.NoError(t, seqs.Scan(&seq))
				if !got[seq] {
					if first < 0 {
						first = seq
					}
				} else if first >= 0 {
					missing = append(missing, fmt.Sprintf("%d..%d", first, prev))
					first = -1
				}
				prev = seq
			}
			if first >= 0 {
				missing = append(missing, fmt.Sprintf("%d..%d", first, prev))
			}
			t.Fatalf("after %s the stream has %d of %d events; %d rows not stamped, %d without a log entry (%v); missing seqs %v; stream %+v, last id %s, problems %v",
				time.Since(start).Round(time.Second), c.received(), n, pending, unlogged, perr, missing, c.Stats(), c.LastID(), c.Problems())
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	settled := rssKiB(t, p.Proc)
	t.Logf("backlog of %d: delivered in %s; relay RSS %.1f MB when ready, peak %.1f MB, %.1f MB after",
		n, took.Round(time.Millisecond), float64(baseline)/1024, float64(peak)/1024, float64(settled)/1024)
	require.Less(t, peak, int64(300*1024), "relay RSS peaked at %d KiB", peak)
	d.finish(t)
	d.verify(t)
}

// TestDrillGracefulShutdown sends SIGTERM to the replica every stream is on,
// mid-load: its streams end, their clients reconnect to the second replica
// and resume, and nothing is lost.
func TestDrillGracefulShutdown(t *testing.T) {
	_, b := setup(t)
	ps := b.startRelays(t, 2)
	a, second := ps[0], ps[1]
	urls := []string{a.URL, second.URL}
	d := newDrill(t, b, func() []string { return urls })
	d.spread = false // every stream starts on a
	d.start(t)

	rounds := pick(1, 8)
	for i := range rounds {
		time.Sleep(span(3*time.Second, 8*time.Second))
		victim := []*relayProcess{a, second}[i%2]
		victim.stop(t) // fails unless the relay exits cleanly
		time.Sleep(span(2*time.Second, 5*time.Second))
		if i < rounds-1 {
			victim.start(t)
		}
	}
	d.finish(t)
	d.verify(t)
	for _, c := range d.clients {
		st := c.Stats()
		ends, connects := st.Ends, st.Connects
		require.GreaterOrEqual(t, ends, rounds, "%s: its stream must have been ended by the shutdown, not broken", c.to.ID)
		require.GreaterOrEqual(t, connects, rounds+1, "%s reconnected", c.to.ID)
	}
}
