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
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/internal/loadgen"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
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

	channels := []string{sqlq.Channel(b.db.Schema, "relayed"), sqlq.Channel(b.db.Schema, "pending")}
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
	ob, err := outbox.New(db.Schema)
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

	c := &drillClient{to: alice, token: token(t, alice), hc: http.DefaultClient, last: seq, ready: make(chan struct{})}
	ctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond) // past the backstop
	defer cancel()
	c.session(ctx, r.URL)
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Equal(t, 1, c.connects)
	require.Empty(t, c.problems, "the stream must not move the resume point back")
	require.Empty(t, c.events, "the client already had seq %d", seq)
	require.Equal(t, seq, c.last)
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
	baseline := rssKiB(t, p.Pid())
	peak := baseline
	c := d.clients[0]
	for c.received() < n {
		peak = max(peak, rssKiB(t, p.Pid()))
		if time.Since(start) > span(3*time.Minute, 10*time.Minute) {
			t.Fatalf("after %s the stream has %d of %d events", time.Since(start).Round(time.Second), c.received(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	settled := rssKiB(t, p.Pid())
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
		c.mu.Lock()
		ends, connects := c.ends, c.connects
		c.mu.Unlock()
		require.GreaterOrEqual(t, ends, rounds, "%s: its stream must have been ended by the shutdown, not broken", c.to.ID)
		require.GreaterOrEqual(t, connects, rounds+1, "%s reconnected", c.to.ID)
	}
}

// ---- the load -------------------------------------------------------------

// drillRetry is the retry: hint of the drills' relays.
const drillRetry = 300 * time.Millisecond

// startRelays starts n relay processes for a drill.
func (b *testBundle) startRelays(t *testing.T, n int, env ...string) []*relayProcess {
	t.Helper()
	var ps []*relayProcess
	for range n {
		ps = append(ps, b.startProcess(t, append([]string{"BELLHOP_RETRY_HINT=" + drillRetry.String()}, env...)...))
	}
	return ps
}

// drill is one drill's load, streams and ledger.
type drill struct {
	b      *testBundle
	to     []outbox.Recipient
	urls   func() []string
	spread bool // streams start on different replicas
	// repeats tolerates a row arriving again under a later seq (a stamp
	// taken back by a crash); its last arrival must carry the table's seq.
	repeats bool
	load    *writeLoad
	clients []*drillClient
	hc      *http.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newDrill(t *testing.T, b *testBundle, urls func() []string) *drill {
	d := &drill{b: b, urls: urls, spread: true}
	for i := range 20 {
		d.to = append(d.to, outbox.User(fmt.Sprintf("drill%02d", i)))
	}
	d.load = &writeLoad{Ledger: loadgen.NewLedger(), pool: b.db.Pool, table: b.db.Table("notifications")}
	d.hc = &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	}}
	t.Cleanup(func() {
		if d.cancel != nil {
			d.cancel()
			d.wg.Wait()
		}
		d.hc.CloseIdleConnections()
	})
	return d
}

// connect opens one reconnecting stream per recipient and waits until each
// has its resume point (the data-less id: frame).
func (d *drill) connect(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	for i, to := range d.to {
		tok, err := relay.Mint(secret, to, 2*time.Hour)
		require.NoError(t, err)
		c := &drillClient{to: to, token: tok, urls: d.urls, hc: d.hc, last: -1, ready: make(chan struct{})}
		if d.spread {
			c.next = i
		}
		d.clients = append(d.clients, c)
		d.wg.Add(1)
		go func() { defer d.wg.Done(); c.run(ctx) }()
	}
	for _, c := range d.clients {
		select {
		case <-c.ready:
		case <-time.After(15 * time.Second):
			t.Fatalf("the stream of %s never connected: %v", c.to.ID, c.problemList())
		}
	}
}

// start connects the streams, then starts the writers.
func (d *drill) start(t *testing.T) {
	t.Helper()
	d.connect(t)
	d.load.start(d.to, 4, 20*time.Millisecond)
}

// finish stops the writers and checks the load really ran.
func (d *drill) finish(t *testing.T) {
	t.Helper()
	d.load.stop()
	s := d.load.Snapshot()
	t.Logf("writers: %d transactions committed (%d notifications), %d rolled back, %d savepoints rolled back, %d failed, %d commits uncertain",
		s.CommittedTx, s.Committed, s.RolledBackTx, s.Savepoints, s.FailedTx, s.UncertainTx)
	if d.load.running {
		require.Positive(t, s.Committed, "the load committed nothing")
		require.Positive(t, s.RolledBackTx, "the load rolled nothing back")
		require.Positive(t, s.Savepoints, "the load rolled back no savepoint")
	}
}

// requireReconnects checks every stream was dropped and reconnected at
// least n times: the drill really broke them.
func (d *drill) requireReconnects(t *testing.T, n int) {
	t.Helper()
	total := 0
	for _, c := range d.clients {
		c.mu.Lock()
		connects := c.connects
		c.mu.Unlock()
		total += connects - 1
		require.GreaterOrEqual(t, connects, n+1, "%s: stream reconnects", c.to.ID)
	}
	t.Logf("%d reconnects over %d streams", total, len(d.clients))
}

// verify waits until the relay stamped everything and the streams caught
// up, then checks every stream against the table and the writers' ledger.
func (d *drill) verify(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	table := d.b.db.Table("notifications")
	require.Eventually(t, func() bool {
		var n int
		err := d.b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+d.b.db.Table("relay_pending")).Scan(&n)
		return err == nil && n == 0
	}, 60*time.Second, 50*time.Millisecond, "the relay never stamped every committed row")

	type dbRow struct {
		to, typ string
		seq     int64
	}
	truth := map[string]dbRow{}
	want := map[string]int{} // recipient -> rows
	rows, err := d.b.db.Pool.Query(ctx, "SELECT n.id::text, n.notifiable_id, n.type, l.seq FROM "+table+" AS n JOIN "+
		d.b.db.Table("relay_log")+" AS l ON l.id = n.id AND l.xid = n.xid")
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var r dbRow
		require.NoError(t, rows.Scan(&id, &r.to, &r.typ, &r.seq))
		truth[id] = r
		want[r.to]++
	}
	require.NoError(t, rows.Err())

	// Wait for the streams (no timing claim: only so a slow machine passes).
	deadline := time.Now().Add(90 * time.Second)
	for _, c := range d.clients {
		for c.received() < want[c.to.ID] && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond) // room for a late duplicate to show
	d.cancel()
	d.wg.Wait()

	var problems []string
	note := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// The ledger against the table: PostgreSQL's side of the bargain, and
	// the writers' bookkeeping.
	l := d.load
	l.Lock()
	for id, c := range l.Committed {
		if r, ok := truth[id]; !ok || r.to != c.To {
			note("commit of %s for %s acknowledged, but the row is not in the table", id, c.To)
		}
	}
	for id := range l.RolledBack {
		if _, ok := truth[id]; ok {
			note("rolled-back row %s is in the table", id)
		}
	}
	for id := range l.Failed {
		if _, ok := truth[id]; ok {
			note("row %s of a failed transaction is in the table", id)
		}
	}
	landed := 0
	for id, r := range truth {
		_, committed := l.Committed[id]
		_, uncertain := l.Uncertain[id]
		if uncertain {
			landed++
		}
		if !committed && !uncertain {
			note("row %s for %s is in the table but no writer committed it", id, r.to)
		}
		if r.typ != "drill.commit" {
			note("row %s has type %s", id, r.typ)
		}
	}
	notCommitted := func(id string) string {
		switch {
		case l.RolledBack[id]:
			return "rolled back"
		case l.Failed[id]:
			return "failed"
		}
		if _, ok := l.Uncertain[id]; ok {
			if _, in := truth[id]; !in {
				return "failed at COMMIT"
			}
		}
		return ""
	}
	l.Unlock()

	// Every stream against the table.
	delivered, repeated := 0, 0
	for _, c := range d.clients {
		c.mu.Lock()
		for _, p := range c.problems {
			note("%s: %s", c.to.ID, p)
		}
		seen := map[string]int{}
		lastSeq := map[string]int64{}
		for _, ev := range c.events {
			lastSeq[ev.ID] = ev.Seq
		}
		prev := int64(0)
		for _, ev := range c.events {
			seen[ev.ID]++
			if ev.Seq <= prev {
				note("%s: event %d after %d", c.to.ID, ev.Seq, prev)
			}
			prev = ev.Seq
			if why := notCommitted(ev.ID); why != "" {
				note("%s: got %s from a transaction that %s", c.to.ID, ev.ID, why)
			}
			if ev.Type == "drill.rollback" {
				note("%s: got %s of type drill.rollback", c.to.ID, ev.ID)
			}
			r, ok := truth[ev.ID]
			switch {
			case !ok:
				note("%s: got %s (seq %d), which is not in the table", c.to.ID, ev.ID, ev.Seq)
			case r.to != c.to.ID:
				note("%s: got %s's notification %s", c.to.ID, r.to, ev.ID)
			case r.seq != ev.Seq && !(d.repeats && ev.Seq < lastSeq[ev.ID]):
				note("%s: got %s as seq %d, the table says %d", c.to.ID, ev.ID, ev.Seq, r.seq)
			}
		}
		for id, n := range seen {
			if n > 1 {
				if d.repeats {
					repeated++
				} else {
					note("%s: got %s %d times", c.to.ID, id, n)
				}
			}
		}
		lost := 0
		for id, r := range truth {
			if r.to == c.to.ID && seen[id] == 0 {
				lost++
				if lost <= 3 {
					note("%s: committed %s (seq %d) never arrived", c.to.ID, id, r.seq)
				}
			}
		}
		if lost > 3 {
			note("%s: %d committed notifications never arrived", c.to.ID, lost)
		}
		delivered += len(c.events)
		c.mu.Unlock()
	}
	t.Logf("verified: %d rows in the table (%d from commits whose outcome the writer did not learn), %d events delivered over %d streams, %d rows again after a crash took their stamp back; longest pause in deliveries (all streams together) %s",
		len(truth), landed, delivered, len(d.clients), repeated, d.longestPause().Round(time.Millisecond))
	if len(problems) > 0 {
		slices.Sort(problems)
		if len(problems) > 30 {
			problems = append(problems[:30], fmt.Sprintf("... and %d more", len(problems)-30))
		}
		t.Fatalf("%d delivery problems:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
}

// longestPause is the longest time no stream received anything, between
// the first event and the last: how long a fault held deliveries up.
func (d *drill) longestPause() time.Duration {
	var at []time.Time
	for _, c := range d.clients {
		c.mu.Lock()
		for _, ev := range c.events {
			at = append(at, ev.At)
		}
		c.mu.Unlock()
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	var longest time.Duration
	for i := 1; i < len(at); i++ {
		longest = max(longest, at[i].Sub(at[i-1]))
	}
	return longest
}

// writeLoad is a set of writers committing notifications at a steady pace:
// most transactions commit one to three notifications; some roll back on
// purpose (type drill.rollback); some roll back a savepoint holding one row
// and commit the rest.
// writeLoad runs loadgen writers against the drill's table.
type writeLoad struct {
	*loadgen.Ledger
	pool    *pgxpool.Pool
	table   string
	running bool
	quit    chan struct{}
	wg      sync.WaitGroup
}

// start runs writers, each one transaction per interval.
func (l *writeLoad) start(to []outbox.Recipient, writers int, interval time.Duration) {
	l.running = true
	l.quit = make(chan struct{})
	wr := &loadgen.Writer{
		Pool: l.pool, Table: l.table, Kind: "drill", MaxRows: 3, Ledger: l.Ledger,
		Pick: func() string { return to[rand.IntN(len(to))].ID },
	}
	for w := range writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-l.quit:
					return
				case <-tick.C:
				}
				if !wr.Transaction(w, n) {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
}

func (l *writeLoad) stop() {
	if l.quit != nil {
		close(l.quit)
		l.wg.Wait()
		l.quit = nil
	}
}

// ---- the reconnecting client ----------------------------------------------

// drillEvent is one event a client received.
type drillEvent struct {
	Seq      int64
	ID, Type string
	At       time.Time
}

// drillClient is one browser tab's EventSource: it reconnects whenever the
// stream drops or ends, or a connect fails, after the relay's retry: hint
// (with jitter), sending Last-Event-ID (the last id: it saw, with or without
// data), and moves to the next replica each time. The drills' relays hint
// drillRetry, not the default 2 s, to keep the drills short; while a client
// waits, the other replicas (or the restarted one) go on stamping, so its
// resume has something to replay.
type drillClient struct {
	to    outbox.Recipient
	token string
	urls  func() []string
	hc    *http.Client
	next  int // index of the replica to try next

	mu       sync.Mutex
	last     int64 // Last-Event-ID; -1 before the first id:
	events   []drillEvent
	problems []string
	connects int // streams opened (200)
	ends     int // streams the relay ended cleanly
	drops    int // streams that broke
	refused  int // connects that failed or were not 200
	statuses map[int]int
	retry    time.Duration // the relay's retry: hint
	ready    chan struct{}
	once     sync.Once
}

func (c *drillClient) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

func (c *drillClient) problemList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.problems)
}

func (c *drillClient) problem(format string, args ...any) {
	if len(c.problems) < 20 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

func (c *drillClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		urls := c.urls()
		c.session(ctx, urls[c.next%len(urls)])
		c.next++
		c.mu.Lock()
		wait := c.retry
		c.mu.Unlock()
		if wait <= 0 {
			wait = drillRetry
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait/2 + rand.N(wait)):
		}
	}
}

// session is one connection, read until it ends.
func (c *drillClient) session(ctx context.Context, base string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/notifications/stream", nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	c.mu.Lock()
	if c.last >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(c.last, 10))
	}
	c.mu.Unlock()
	res, err := c.hc.Do(req)
	if err != nil {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		c.mu.Lock()
		c.refused++
		if c.statuses == nil {
			c.statuses = map[int]int{}
		}
		c.statuses[res.StatusCode]++
		// A relay shutting down answers 503; anything else is a bug here.
		if res.StatusCode != http.StatusServiceUnavailable {
			c.problem("stream answered %d: %s", res.StatusCode, body)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.connects++
	c.mu.Unlock()

	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var (
		id       int64
		hasID    bool
		name     string
		data     []string
		ended    bool
		frameErr string
	)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if hasID || len(data) > 0 {
				c.dispatch(id, hasID, name, strings.Join(data, "\n"))
			}
			id, hasID, name, data = 0, false, "", nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "retry: "):
			if ms, err := strconv.Atoi(line[7:]); err == nil {
				c.mu.Lock()
				c.retry = time.Duration(ms) * time.Millisecond
				c.mu.Unlock()
			}
		case strings.HasPrefix(line, "id: "):
			n, err := strconv.ParseInt(line[4:], 10, 64)
			if err != nil {
				frameErr = "bad id line " + line
			}
			id, hasID = n, true
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		default:
			frameErr = "unexpected line " + strconv.Quote(line)
		}
	}
	ended = sc.Err() == nil
	c.mu.Lock()
	if frameErr != "" {
		c.problem("%s", frameErr)
	}
	if ended {
		c.ends++
	} else {
		c.drops++
	}
	c.mu.Unlock()
}

// dispatch handles one complete frame, as EventSource does: an id: moves
// the resume point, with or without data.
func (c *drillClient) dispatch(id int64, hasID bool, name, data string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.once.Do(func() { close(c.ready) })
	if data == "" {
		if !hasID {
			return
		}
		if id < c.last {
			c.problem("the id: frame moved the resume point back from %d to %d", c.last, id)
		}
		c.last = id
		return
	}
	var ev relay.Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		c.problem("undecodable event %q: %v", data, err)
		return
	}
	switch {
	case name != "notification":
		c.problem("event named %q", name)
	case !hasID:
		c.problem("event %d without an id:", ev.Seq)
	case ev.Seq != id:
		c.problem("event seq %d under id: %d", ev.Seq, id)
	case ev.Op != "created":
		c.problem("event %d has op %q", ev.Seq, ev.Op)
	}
	if hasID {
		c.last = id
	}
	c.events = append(c.events, drillEvent{Seq: ev.Seq, ID: ev.ID, Type: ev.Type, At: time.Now()})
}

// ---- helpers --------------------------------------------------------------

// listenerPIDs finds the backends LISTENing on channels: the relay's own
// listeners, and no other test's.
func listenerPIDs(t *testing.T, ctx context.Context, pool *pgxpool.Pool, channels []string) []int32 {
	t.Helper()
	var want []string
	for _, ch := range channels {
		want = append(want, `listen "`+ch+`"`)
	}
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query = ANY ($1)`, want)
	require.NoError(t, err)
	var pids []int32
	for rows.Next() {
		var pid int32
		require.NoError(t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	require.NoError(t, rows.Err())
	return pids
}

// metricValue reads one sample from a Prometheus text exposition.
func metricValue(text, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// rssKiB is a process's resident set size.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// readyWatch polls /readyz and records each change of status (0: no answer).
type readyWatch struct {
	mu      sync.Mutex
	changes []int
	quit    chan struct{}
	done    chan struct{}
}

func watchReady(base string) *readyWatch {
	w := &readyWatch{quit: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(w.done)
		for {
			status := 0
			if res, err := hc.Get(base + "/readyz"); err == nil {
				status = res.StatusCode
				res.Body.Close()
			}
			w.mu.Lock()
			if len(w.changes) == 0 || w.changes[len(w.changes)-1] != status {
				w.changes = append(w.changes, status)
			}
			w.mu.Unlock()
			select {
			case <-w.quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *readyWatch) seen() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.changes)
}

func (w *readyWatch) last() int {
	s := w.seen()
	if len(s) == 0 {
		return -1
	}
	return s[len(s)-1]
}

func (w *readyWatch) sawNotReady() bool {
	return slices.Contains(w.seen(), http.StatusServiceUnavailable)
}

func (w *readyWatch) stop() { close(w.quit); <-w.done }
