package integration

// The drills' harness: relay processes, the write load, one reconnecting
// stream per recipient, and the check of every stream against the table.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/internal/loadgen"
	"github.com/bellhophq/bellhop/outbox"
)

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
	d.hc = &http.Client{Transport: checked(&http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	})}
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
		first := 0
		if d.spread {
			first = i
		}
		c := newDrillClient(to, token(t, to), d.hc, d.urls, first, "")
		d.clients = append(d.clients, c)
		d.wg.Add(1)
		go func() { defer d.wg.Done(); c.Run(ctx) }()
	}
	for _, c := range d.clients {
		select {
		case <-c.Ready():
		case <-time.After(15 * time.Second):
			t.Fatalf("the stream of %s never connected: %v", c.to.ID, c.Problems())
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
		connects := c.Stats().Connects
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
		for _, p := range c.Problems() {
			note("%s: %s", c.to.ID, p)
		}
		events := c.events()
		seen := map[string]int{}
		lastSeq := map[string]int64{}
		for _, ev := range events {
			lastSeq[ev.ID] = ev.Seq
		}
		prev := int64(0)
		for _, ev := range events {
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
		delivered += len(events)
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
		for _, r := range c.Received() {
			at = append(at, r.At)
		}
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
