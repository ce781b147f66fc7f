package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bellhophq/bellhop/internal/loadgen"
	"github.com/bellhophq/bellhop/internal/sseclient"
)

// ---------------------------------------------------------------- streams

// recv is one event a stream read: the row's pid and when.
type recv struct {
	pid int64
	at  time.Time
}

type stream struct {
	user    string
	s       *sseclient.Stream
	mu      sync.Mutex
	recs    []recv
	ended   string // why the stream ended early, if it did
	closing atomic.Bool
	done    chan struct{}
}

// fleet is one stream per user, opened the same way for both systems:
// internal/sseclient over its own HTTP/1.1 connection.
type fleet struct {
	tr      *http.Transport
	streams []*stream
	total   atomic.Int64 // events with a pid, all streams
}

// connect opens a stream per user, 50 at a time; each counts as open once
// its first frame arrived (Bellhop's retry:, Centrifugo's connect reply,
// sent after the server-side subscription was made).
func connect(ctx context.Context, sys system, users []string) (*fleet, error) {
	f := &fleet{tr: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: -1}, streams: make([]*stream, len(users))}
	hc := &http.Client{Transport: f.tr}
	var g errgroup.Group
	g.SetLimit(50)
	for i, u := range users {
		g.Go(func() error {
			url, hdr, err := sys.stream(u)
			if err != nil {
				return err
			}
			s, err := sseclient.Connect(ctx, hc, url, hdr, "")
			if err != nil {
				return fmt.Errorf("stream for %s: %w", u, err)
			}
			st := &stream{user: u, s: s, done: make(chan struct{})}
			f.streams[i] = st
			ready := make(chan struct{})
			go st.read(f, ready)
			select {
			case <-ready:
				return nil
			case <-st.done:
				return fmt.Errorf("stream for %s ended before its first frame: %s", u, st.ended)
			case <-time.After(10 * time.Second):
				return fmt.Errorf("stream for %s: no first frame in 10 s", u)
			}
		})
	}
	if err := g.Wait(); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (st *stream) read(f *fleet, ready chan struct{}) {
	defer close(st.done)
	first := true
	for {
		fr, err := st.s.Next()
		if err != nil {
			if !st.closing.Load() {
				st.mu.Lock()
				st.ended = err.Error()
				st.mu.Unlock()
			}
			return
		}
		at := time.Now()
		if first {
			first = false
			close(ready)
		}
		if !fr.HasData {
			continue
		}
		if pid, ok := parsePID(fr.Data); ok {
			st.mu.Lock()
			st.recs = append(st.recs, recv{pid, at})
			st.mu.Unlock()
			f.total.Add(1)
		}
	}
}

// parsePID finds `"pid": N` in an event's JSON (Bellhop: in "sse";
// Centrifugo: in "pub"."data"); jsonb puts a space after the colon.
func parsePID(data string) (int64, bool) {
	i := strings.Index(data, `"pid"`)
	if i < 0 {
		return 0, false
	}
	rest := strings.TrimLeft(data[i+5:], " :")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(rest[:j], 10, 64)
	return n, err == nil
}

func (f *fleet) close() {
	for _, st := range f.streams {
		if st != nil {
			st.closing.Store(true)
			st.s.Close()
			<-st.done
		}
	}
	f.tr.CloseIdleConnections()
}

// ---------------------------------------------------------------- writers

// sent is one committed row as its writer saw it.
type sent struct {
	user     string
	sentAt   time.Time // just before COMMIT was sent
	doneAt   time.Time // COMMIT returned
	measured bool      // false in the warm-up
}

type ledger struct {
	mu sync.Mutex
	m  map[int64]sent
}

var nextPID atomic.Int64

// commitOne runs BEGIN; the system's INSERT of one row; COMMIT.
func (b *bench) commitOne(ctx context.Context, sql string, args []any) (sentAt, doneAt time.Time, err error) {
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return
	}
	if _, err = tx.Exec(ctx, sql, args...); err != nil {
		_ = tx.Rollback(ctx)
		return
	}
	sentAt = time.Now()
	err = tx.Commit(ctx)
	doneAt = time.Now()
	return
}

// paced commits rate*d rows on an open-loop schedule (row i at start +
// i/rate) over 32 workers (enough to hold the rate when commits slow down), recipients round-robin over users, and records
// each in l. It returns how many committed and over how long.
func (b *bench) paced(ctx context.Context, sys system, users []string, l *ledger, d time.Duration, measured bool) (int, time.Duration, error) {
	sql := sys.insert(sys.table())
	start := time.Now()
	n, err := loadgen.Paced(ctx, b.rate, d, 32, func(ctx context.Context, i int) error {
		user := users[i%len(users)]
		pid := nextPID.Add(1)
		sentAt, doneAt, err := b.commitOne(ctx, sql, sys.args(user, pid))
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.m[pid] = sent{user, sentAt, doneAt, measured}
		l.mu.Unlock()
		return nil
	})
	return n, time.Since(start), err
}

// closedLoop runs w writers committing single rows into table as fast as
// they go for d; it returns rows committed.
func (b *bench) closedLoop(ctx context.Context, sys system, table string, w int, d time.Duration) (int64, error) {
	sql := sys.insert(table)
	var rows atomic.Int64
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for range w {
		g.Go(func() error {
			for time.Since(start) < d {
				user := fmt.Sprintf("u%d", rand.IntN(b.streams))
				if _, _, err := b.commitOne(gctx, sql, sys.args(user, 0)); err != nil {
					return err
				}
				rows.Add(1)
			}
			return nil
		})
	}
	err := g.Wait()
	return rows.Load(), err
}

// ---------------------------------------------------------------- one run

type runResult struct {
	p50Done, p99Done, p50Sent, p99Sent float64 // ms
	committed                          int     // measured rows
	rate                               float64 // measured rows / writer time
	lost, dup, stray                   int     // warm-up and measured rows
	problems                           []string
	cost                               map[int][2]float64 // writers -> rows/s {table, bare}
	notes                              []string
}

// runOnce starts sys fresh, runs the latency probe and the writer cost
// phase, checks delivery and stops it.
func (b *bench) runOnce(ctx context.Context, sys system, run int) (*runResult, error) {
	res := &runResult{cost: map[int][2]float64{}}
	err := sys.start(ctx, run)
	defer func() {
		if logs := sys.stop(); logs != "" {
			res.notes = append(res.notes, sys.name()+" logged: "+clip(logs, 600))
		}
	}()
	if err != nil {
		return nil, err
	}
	users := make([]string, b.streams)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	t := time.Now()
	f, err := connect(ctx, sys, users)
	if err != nil {
		return nil, err
	}
	defer func() {
		if f != nil {
			f.close()
		}
	}()
	fmt.Fprintf(os.Stderr, "   %d streams open (%.1fs)\n", len(users), time.Since(t).Seconds())

	l := &ledger{m: map[int64]sent{}}
	if _, _, err := b.paced(ctx, sys, users, l, b.warmup, false); err != nil {
		return nil, err
	}
	f.wait(ctx, int64(len(l.m)), 30*time.Second)
	n, took, err := b.paced(ctx, sys, users, l, b.duration, true)
	if err != nil {
		return nil, err
	}
	res.committed, res.rate = n, float64(n)/took.Seconds()
	f.wait(ctx, int64(len(l.m)), 30*time.Second)
	time.Sleep(200 * time.Millisecond) // to catch a duplicate after the last one
	var fromDone, fromSent []time.Duration
	fromDone, fromSent = res.verify(f, l)
	res.p50Done, res.p99Done = pct(fromDone, 50), pct(fromDone, 99)
	res.p50Sent, res.p99Sent = pct(fromSent, 50), pct(fromSent, 99)
	fmt.Fprintf(os.Stderr, "   %d rows at %.0f/s: p50 %.2f ms p99 %.2f ms from COMMIT return; lost %d dup %d unexpected %d\n",
		n, res.rate, res.p50Done, res.p99Done, res.lost, res.dup, res.stray)
	// Streams closed before the cost phase: its rows go to recipients
	// with no stream, on both systems, and the probe's reads stay off
	// the two cores the writers use.
	f.close()
	f = nil
	if err := b.cost(ctx, sys, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (f *fleet) wait(ctx context.Context, n int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for f.total.Load() < n && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
}

// verify joins what the streams read with what was committed: each row
// must reach its user's stream exactly once. It returns the measured
// rows' latencies from COMMIT return and from COMMIT sent.
func (res *runResult) verify(f *fleet, l *ledger) (fromDone, fromSent []time.Duration) {
	note := func(format string, a ...any) {
		if len(res.problems) < 5 {
			res.problems = append(res.problems, fmt.Sprintf(format, a...))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := make(map[int64]bool, len(l.m))
	for _, st := range f.streams {
		st.mu.Lock()
		recs, ended := st.recs, st.ended
		st.mu.Unlock()
		if ended != "" {
			note("stream of %s ended: %s", st.user, ended)
		}
		for _, r := range recs {
			s, ok := l.m[r.pid]
			switch {
			case !ok || s.user != st.user:
				res.stray++
				note("%s read row %d, not committed for it", st.user, r.pid)
			case seen[r.pid]:
				res.dup++
				note("%s read row %d twice", st.user, r.pid)
			default:
				seen[r.pid] = true
				if s.measured {
					fromDone = append(fromDone, r.at.Sub(s.doneAt))
					fromSent = append(fromSent, r.at.Sub(s.sentAt))
				}
			}
		}
	}
	for pid, s := range l.m {
		if !seen[pid] {
			res.lost++
			note("row %d for %s committed, never read", pid, s.user)
		}
	}
	return fromDone, fromSent
}

// cost measures closed-loop writers into the system's table (the system
// running) and into a bare copy of it: `LIKE ... INCLUDING ALL` copies
// columns, defaults, constraints and indexes, not triggers, and nothing
// relays it. Each table gets costSlice per writer count, as four
// alternating slices, so drift in fsync speed hits both alike.
func (b *bench) cost(ctx context.Context, sys system, res *runResult) error {
	bare := sys.schemaName() + ".bare"
	if _, err := b.pool.Exec(ctx, "CREATE TABLE "+bare+" (LIKE "+sys.table()+" INCLUDING ALL)"); err != nil {
		return err
	}
	for _, t := range []string{sys.table(), bare} { // warm-up, not counted
		if _, err := b.closedLoop(ctx, sys, t, 4, 300*time.Millisecond); err != nil {
			return err
		}
	}
	for _, w := range b.writers {
		var rows [2]int64
		var took [2]time.Duration
		for slice := range 4 {
			order := []int{0, 1}
			if slice%2 == 1 {
				order = []int{1, 0}
			}
			for _, k := range order {
				t := []string{sys.table(), bare}[k]
				start := time.Now()
				n, err := b.closedLoop(ctx, sys, t, w, b.costSlice/4)
				if err != nil {
					return err
				}
				rows[k] += n
				took[k] += time.Since(start)
			}
		}
		r := [2]float64{float64(rows[0]) / took[0].Seconds(), float64(rows[1]) / took[1].Seconds()}
		res.cost[w] = r
		fmt.Fprintf(os.Stderr, "   %2d writers: %s %.0f rows/s, bare %.0f rows/s, ratio %.2f\n", w, sys.table(), r[0], r[1], r[0]/r[1])
	}
	// The system must have relayed every row before it stops.
	t := time.Now()
	for {
		n, err := sys.pending(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if time.Since(t) > 2*time.Minute {
			res.notes = append(res.notes, fmt.Sprintf("%s: %d rows still unrelayed 2 min after the cost phase", sys.name(), n))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// ---------------------------------------------------------------- report

func pct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(0, min(int(math.Ceil(p/100*float64(len(s))))-1, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

// summary is "median (min – max)" over runs.
func summary(vals []float64, format func(float64) string) string {
	if len(vals) == 0 {
		return "n/a"
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if len(s) == 1 {
		return format(med)
	}
	return fmt.Sprintf("%s (%s – %s)", format(med), format(s[0]), format(s[len(s)-1]))
}

func msf(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func ratef(v float64) string  { return thousands(v) + "/s" }
func ratiof(v float64) string { return fmt.Sprintf("%.2f", v) }

func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + " ..."
	}
	return s
}

func failed(results map[string][]*runResult) bool {
	for _, rs := range results {
		for _, r := range rs {
			if r.lost+r.dup+r.stray > 0 {
				return true
			}
		}
	}
	return false
}

// gitVersion names the working tree the relay was built from, with any
// uncommitted changes outside cmd/peerbench (they are in the binary).
func gitVersion() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown version"
	}
	v := "commit " + strings.TrimSpace(string(out))
	st, _ := exec.Command("git", "status", "--porcelain").Output()
	var dirty []string
	for _, l := range strings.Split(string(st), "\n") {
		if len(l) > 3 && !strings.HasPrefix(l[3:], "cmd/peerbench") {
			dirty = append(dirty, "`"+strings.TrimSpace(l)+"`")
		}
	}
	if len(dirty) > 0 {
		v += " plus uncommitted changes in the working tree it was built from (" + strings.Join(dirty, ", ") + ")"
	}
	return v
}

var systems = []string{"Bellhop", "Centrifugo"}

func (b *bench) report(machine string, results map[string][]*runResult, cfConfig []byte, took time.Duration) string {
	var w strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	p("# Bellhop beside Centrifugo's PostgreSQL outbox consumer\n\n")
	p("Generated by `go run ./cmd/peerbench` on %s in %.0f s: %d run(s) per system, alternating (Bellhop, Centrifugo, Bellhop, ...); "+
		"each figure is the median over runs with the min – max across them.\n\n", time.Now().UTC().Format("2006-01-02"), took.Seconds(), b.runs)
	p("- **Machine:** %s.\n", machine)
	p("- **Bellhop** %s: `relay serve` on a fresh schema per run (`relay migrate`), `BELLHOP_WAKE_MODE=adaptive` "+
		"(polls every 1 ms while rows keep coming, NOTIFY-woken when idle), other settings default, as cmd/bench runs it.\n", b.bhVersion)
	p("- **Centrifugo** %s: memory engine, its PostgreSQL outbox consumer on a fresh outbox table per run "+
		"(1 partition, select limit 100, poll 300 ms: the defaults), woken by an `AFTER INSERT ... FOR EACH ROW` trigger "+
		"calling `pg_notify` on its `partition_notification_channel`, as its docs recommend for low latency; streams are `uni_sse`.\n", b.cfVersion)
	p("- **Probe, identical for both:** %s streams (users u0..u%d, one each) open first; a paced writer then commits %s "+
		"transactions/s, each `BEGIN; INSERT` one row (round-robin over the users) `; COMMIT`, over 32 connections: "+
		"%.1f s of warm-up (delivery checked, latency not counted), then %.0f s measured. "+
		"Rows are plain SQL, no client library: Bellhop `INSERT INTO <schema>.notifications (notifiable_id, type, sse) VALUES ($1, 'peer.ping', '{\"pid\": N}')`, "+
		"Centrifugo `INSERT INTO <schema>.outbox (method, payload, partition) VALUES ('publish', '{\"channel\": \"user.<user>\", \"data\": {\"pid\": N}}', 0)`; "+
		"the event each stream reads carries the row's unique pid, which matches it to its commit. "+
		"**From COMMIT return** = time the stream read the event − time `COMMIT` returned to the writer; **from COMMIT sent** = the same − time just before `COMMIT` was sent "+
		"(so it includes the writer's own commit, WAL flush included). Percentiles are over every measured row of a run. "+
		"All clocks are this process's.\n", thousands(float64(b.streams)), b.streams-1, thousands(float64(b.rate)), b.warmup.Seconds(), b.duration.Seconds())
	p("- **Delivery check:** every committed row (warm-up and measured) must be read exactly once, by its user's stream; " +
		"*lost* = committed, not read within 30 s; *duplicated* = read again; *unexpected* = read by another user's stream or never committed.\n\n")

	if failed(results) {
		p("> **DELIVERY CHECK FAILED** — ")
		for _, s := range systems {
			for i, r := range results[s] {
				if r.lost+r.dup+r.stray > 0 {
					p("%s run %d: %d lost, %d duplicated, %d unexpected (%s). ", s, i+1, r.lost, r.dup, r.stray, strings.Join(r.problems, "; "))
				}
			}
		}
		p("\n\n")
	}

	p("## Commit-to-event latency at %s rows/s, %s streams\n\n", thousands(float64(b.rate)), thousands(float64(b.streams)))
	p("| Figure | Bellhop | Centrifugo |\n|---|---:|---:|\n")
	row := func(name string, get func(*runResult) float64, format func(float64) string) {
		p("| %s |", name)
		for _, s := range systems {
			var vals []float64
			for _, r := range results[s] {
				vals = append(vals, get(r))
			}
			p(" %s |", summary(vals, format))
		}
		p("\n")
	}
	row("p50, from COMMIT return", func(r *runResult) float64 { return r.p50Done }, msf)
	row("p99, from COMMIT return", func(r *runResult) float64 { return r.p99Done }, msf)
	row("p50, from COMMIT sent", func(r *runResult) float64 { return r.p50Sent }, msf)
	row("p99, from COMMIT sent", func(r *runResult) float64 { return r.p99Sent }, msf)
	row("writer's achieved rate (measured rows / time to the last COMMIT return)", func(r *runResult) float64 { return r.rate }, ratef)
	p("| delivery, all runs: committed / lost / duplicated / unexpected |")
	for _, s := range systems {
		var c, lost, dup, stray int
		for _, r := range results[s] {
			c += r.committed + int(float64(b.rate)*b.warmup.Seconds())
			lost, dup, stray = lost+r.lost, dup+r.dup, stray+r.stray
		}
		mark := ""
		if lost+dup+stray > 0 {
			mark = " **FAILED**"
		}
		p(" %s / %s / %s / %s%s |", thousands(float64(c)), thousands(float64(lost)), thousands(float64(dup)), thousands(float64(stray)), mark)
	}
	p("\n\n")

	p("## Cost to the writer's transaction\n\n")
	p("Closed-loop writers, each `BEGIN; INSERT` one row `; COMMIT` (the statements above, random users), into the system's table "+
		"while the system runs and relays it (streams closed: nobody reads) and into `bare`, created `(LIKE <table> INCLUDING ALL)`: "+
		"same columns, defaults, constraints and indexes, no trigger, nothing reading it. Each table gets %.2g s per writer count, "+
		"as four alternating slices. Bellhop's table has its statement-level wake trigger (a NOTIFY only while the relay idles); "+
		"Centrifugo's has the per-row `pg_notify` trigger. Ratio = the table's rows/s ÷ bare rows/s in the same run.\n\n", b.costSlice.Seconds())
	p("| System | Writers | Its table: rows/s | Bare copy: rows/s | Ratio to bare |\n|---|---:|---:|---:|---:|\n")
	for _, s := range systems {
		for _, wn := range b.writers {
			var t, bare, ratio []float64
			for _, r := range results[s] {
				c := r.cost[wn]
				t, bare, ratio = append(t, c[0]), append(bare, c[1]), append(ratio, c[0]/c[1])
			}
			p("| %s | %d | %s | %s | %s |\n", s, wn, summary(t, ratef), summary(bare, ratef), summary(ratio, ratiof))
		}
	}
	p("\n## Semantics (read in Centrifugo v6.9.1's source, not measured)\n\n")
	p("Centrifugo's consumer (`internal/consuming/postgresql.go`, `processOnce`) takes a partition's advisory lock in a READ COMMITTED transaction, " +
		"selects up to `partition_select_limit` rows `ORDER BY id`, **publishes each one before its own transaction commits**, then deletes them and commits: " +
		"it only ever sees committed rows, but a crash or a failed DELETE/COMMIT after publishing leaves the rows to be published again (at least once: duplicates possible). " +
		"In this configuration (no channel history, the default) a publication reaches a `uni_sse` stream with no offset and no SSE `id:`, and the handler " +
		"(`internal/unisse/handler.go`) reads no `Last-Event-ID`: a stream that reconnects gets nothing published while it was away and cannot tell a gap, " +
		"so there is no order or resume guarantee across reconnects (recovery needs channel history with `force_recovery` and the client sending offset/epoch in `cf_connect`). " +
		"Bellhop gives each committed row version a seq that increases in commit order (its SSE `id:`), pushes it only after its own stamp commits, and replays from `Last-Event-ID`.\n")
	var notes []string
	for _, s := range systems {
		for i, r := range results[s] {
			for _, n := range r.notes {
				notes = append(notes, fmt.Sprintf("%s run %d: %s", s, i+1, n))
			}
		}
	}
	if len(notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range notes {
			p("- %s\n", strings.ReplaceAll(n, "\n", " "))
		}
	}
	p("\n## Centrifugo configuration (run 1; port, schema and DSN change per run)\n\n```json\n%s\n```\n", cfConfig)
	return w.String()
}
