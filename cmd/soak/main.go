// Command soak runs Bellhop under a steady mixed load for a bounded time
// while injecting faults, and checks that nothing is lost or duplicated.
//
// It builds bin/relay, migrates a fresh schema (soak_<pid>_<random>, dropped
// at the end) on TEST_DATABASE_URL or DATABASE_URL, and runs relay
// processes on it: replica 0 is never restarted (its memory over the whole
// run is the figure to watch); the others are SIGKILLed and restarted, or
// restarted gracefully with SIGTERM. Every replica's LISTEN connections are
// terminated with pg_terminate_backend now and then. Writers commit
// notifications across recipients (some transactions roll back on purpose,
// some roll back a savepoint and commit the rest); each recipient has one
// stream that reconnects like EventSource, with Last-Event-ID, to a replica
// picked at random (as behind a load balancer).
//
// Every 10 s it prints committed, delivered, late (committed over 15 s ago
// and still not received), duplicated and out-of-order counts and each
// replica's RSS; at the end it waits for the streams to catch up, checks
// every stream against the table, prints a summary and exits non-zero on
// any loss, duplicate, reordering or delivery of a row that did not commit.
//
//	go run ./cmd/soak                       # 10 minutes
//	go run ./cmd/soak -duration 3m -rate 150
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/internal/loadgen"

	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/migrations"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

const jwtSecret = "bellhop-soak-secret-0123456789abcdef"

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long the load and the faults run")
	db := flag.String("db", defaultDB(), "PostgreSQL URL (default TEST_DATABASE_URL, DATABASE_URL, or the local test database)")
	relays := flag.Int("relays", 3, "relay processes (replica 0 is never restarted)")
	recipients := flag.Int("recipients", 20, "recipients, one stream each")
	writers := flag.Int("writers", 4, "writer goroutines")
	rate := flag.Int("rate", 200, "writer transactions per second, all writers together (about 1.5 notifications each)")
	faultEvery := flag.Duration("fault-every", 8*time.Second, "a fault this often")
	retry := flag.Duration("retry", 500*time.Millisecond, "the relays' retry: hint, which the streams obey")
	relayBin := flag.String("relay", "bin/relay", "where to build the relay binary")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &soak{
		dbURL: *db, relayBin: *relayBin, nRelays: max(*relays, 2), retry: *retry,
		ledger: loadgen.NewLedger(),
	}
	code, err := s.run(ctx, *duration, *recipients, *writers, *rate, *faultEvery)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func defaultDB() string {
	for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

type soak struct {
	dbURL    string
	relayBin string
	nRelays  int
	retry    time.Duration
	schema   string
	pool     *pgxpool.Pool
	procs    []*relayProc
	clients  []*client
	hc       *http.Client

	ledger *loadgen.Ledger // the writers' own lock

	mu sync.Mutex

	faults   map[string]int
	problems []string // fault-side problems (a relay that did not exit cleanly, ...)
	rss      [][]int64
}

func (s *soak) run(ctx context.Context, duration time.Duration, nRecipients, nWriters, rate int, faultEvery time.Duration) (int, error) {
	fmt.Fprintf(os.Stderr, "building %s ...\n", s.relayBin)
	build := exec.CommandContext(ctx, "go", "build", "-o", s.relayBin, "./cmd/relay")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("go build ./cmd/relay (run from the repository root): %w", err)
	}
	cfg, err := pgxpool.ParseConfig(s.dbURL)
	if err != nil {
		return 0, err
	}
	cfg.MaxConns = int32(nWriters + 4)
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return 0, err
	}
	defer s.pool.Close()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	s.schema = fmt.Sprintf("soak_%d_%s", os.Getpid(), hex.EncodeToString(b))
	if err := migrations.Up(ctx, s.pool, s.schema); err != nil {
		return 0, fmt.Errorf("migrate %s: %w", s.schema, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = s.pool.Exec(dctx, "DROP SCHEMA "+pgx.Identifier{s.schema}.Sanitize()+" CASCADE")
		_, _ = s.pool.Exec(dctx, "DROP ROLE IF EXISTS "+pgx.Identifier{migrations.WriterRole(s.schema)}.Sanitize())
	}()

	for i := range s.nRelays {
		p, err := s.newRelay(i)
		if err != nil {
			return 0, err
		}
		s.procs = append(s.procs, p)
		defer p.terminate()
		if err := p.start(); err != nil {
			return 0, err
		}
	}
	s.rss = make([][]int64, s.nRelays)
	s.faults = map[string]int{}
	fmt.Printf("soak: %s, %d relays on schema %s, %d recipients, %d writers at %d tx/s, a fault every %s\n",
		duration, s.nRelays, s.schema, nRecipients, nWriters, rate, faultEvery)

	// Streams.
	s.hc = &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	}}
	cctx, cancelClients := context.WithCancel(context.Background())
	var cwg sync.WaitGroup
	defer func() { cancelClients(); cwg.Wait() }()
	urls := make([]string, len(s.procs))
	for i, p := range s.procs {
		urls[i] = p.url
	}
	for i := range nRecipients {
		to := outbox.User(fmt.Sprintf("soak%03d", i))
		tok, err := relay.Mint(jwtSecret, to, 24*time.Hour)
		if err != nil {
			return 0, err
		}
		c := &client{to: to.ID, token: tok, urls: urls, next: i, hc: s.hc, retry: s.retry, last: -1,
			seen: map[string]int{}, ready: make(chan struct{})}
		s.clients = append(s.clients, c)
		cwg.Add(1)
		go func() { defer cwg.Done(); c.run(cctx) }()
	}
	for _, c := range s.clients {
		select {
		case <-c.ready:
		case <-time.After(30 * time.Second):
			return 0, fmt.Errorf("the stream of %s never connected", c.to)
		}
	}

	// Writers.
	wctx, stopWriters := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	interval := time.Duration(float64(time.Second) * float64(nWriters) / float64(max(rate, 1)))
	wr := &loadgen.Writer{
		Pool: s.pool, Table: pgx.Identifier{s.schema, "notifications"}.Sanitize(), Kind: "soak", MaxRows: 2, Ledger: s.ledger,
		Pick: func() string { return fmt.Sprintf("soak%03d", mrand.IntN(nRecipients)) },
	}
	for w := range nWriters {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
				}
				if !wr.Transaction(w, n) {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}

	// Faults and reports.
	start := time.Now()
	end := start.Add(duration)
	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
	fault := time.NewTicker(faultEvery)
	defer fault.Stop()
	rssTick := time.NewTicker(time.Second)
	defer rssTick.Stop()
	kinds := []string{"listener kill", "SIGKILL + restart", "graceful restart"}
	nFault := 0
loop:
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			fmt.Println("soak: interrupted")
			break loop
		case <-time.After(time.Until(end)):
		case <-rssTick.C:
			s.sampleRSS()
		case <-fault.C:
			kind := kinds[nFault%len(kinds)]
			nFault++
			if err := s.inject(ctx, kind); err != nil {
				s.note("fault %s: %v", kind, err)
			}
		case <-report.C:
			s.report(time.Since(start))
		}
	}
	stopWriters()
	wwg.Wait()
	fmt.Printf("soak: load stopped after %s; waiting for the streams to catch up\n", time.Since(start).Round(time.Second))
	// Every replica up for the final check.
	for _, p := range s.procs {
		if !p.running() {
			if err := p.start(); err != nil {
				s.note("restart %s: %v", p.name, err)
			}
		}
	}
	return s.finish(ctx, start), nil
}

func (s *soak) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	fmt.Println("soak: PROBLEM:", msg)
	s.problems = append(s.problems, msg)
}

// inject runs one fault. Process faults hit replicas 1.. only.
func (s *soak) inject(ctx context.Context, kind string) error {
	s.mu.Lock()
	s.faults[kind]++
	s.mu.Unlock()
	switch kind {
	case "listener kill":
		channels := []string{`listen "` + sqlq.Channel(s.schema, "relayed") + `"`, `listen "` + sqlq.Channel(s.schema, "pending") + `"`}
		tag, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND query = ANY ($1)`, channels)
		if err != nil {
			return err
		}
		fmt.Printf("       fault: terminated %d LISTEN connections\n", tag.RowsAffected())
		return nil
	case "SIGKILL + restart", "graceful restart":
		p := s.procs[1+mrand.IntN(len(s.procs)-1)]
		if !p.running() {
			return p.start()
		}
		var err error
		if kind == "SIGKILL + restart" {
			p.kill()
		} else if err = p.stop(); err != nil {
			s.note("%s did not shut down cleanly: %v", p.name, err)
		}
		time.Sleep(time.Duration(200+mrand.IntN(800)) * time.Millisecond)
		fmt.Printf("       fault: %s of %s\n", kind, p.name)
		return p.start()
	}
	return fmt.Errorf("unknown fault %q", kind)
}

func (s *soak) sampleRSS() {
	for i, p := range s.procs {
		if kib, err := p.rssKiB(); err == nil {
			s.rss[i] = append(s.rss[i], kib)
		}
	}
}

// transaction is one writer transaction: commit (70%), rollback (15%), or a
// rolled-back savepoint inside a commit (15%).
// tally is what the streams got so far, against the ledger.
type tally struct {
	delivered, late, dup, disorder, notCommitted, reconnects int
	problems                                                 []string
}

func (s *soak) tally(lateAfter time.Duration) tally {
	var t tally
	seen := map[string]map[string]int{}
	for _, c := range s.clients {
		c.mu.Lock()
		m := make(map[string]int, len(c.seen))
		for id, n := range c.seen {
			m[id] = n
			t.delivered++
			if n > 1 {
				t.dup += n - 1
			}
		}
		t.disorder += c.disorder
		t.reconnects += max(c.connects-1, 0)
		t.problems = append(t.problems, c.problems...)
		c.mu.Unlock()
		seen[c.to] = m
	}
	l := s.ledger
	l.Lock()
	defer l.Unlock()
	now := time.Now()
	for id, c := range l.Committed {
		if seen[c.To][id] == 0 && now.Sub(c.At) > lateAfter {
			t.late++
		}
	}
	for _, m := range seen {
		for id := range m {
			if l.RolledBack[id] || l.Failed[id] {
				t.notCommitted++
			}
		}
	}
	return t
}

func (s *soak) rssNow() string {
	var parts []string
	for i, p := range s.procs {
		if kib, err := p.rssKiB(); err == nil {
			parts = append(parts, fmt.Sprintf("r%d %.1f", i, float64(kib)/1024))
		} else {
			parts = append(parts, fmt.Sprintf("r%d down", i))
		}
	}
	return strings.Join(parts, " ") + " MB"
}

func (s *soak) report(elapsed time.Duration) {
	t := s.tally(15 * time.Second)
	c := s.ledger.Snapshot()
	s.mu.Lock()
	faults := 0
	for _, n := range s.faults {
		faults += n
	}
	s.mu.Unlock()
	fmt.Printf("%6s  committed %7d (%d tx; %d rolled back, %d savepoints, %d failed, %d uncertain)  delivered %7d  late %d  dup %d  disorder %d  uncommitted-delivered %d  reconnects %d  faults %d  rss %s\n",
		elapsed.Round(time.Second), c.Committed, c.CommittedTx, c.RolledBackTx, c.Savepoints, c.FailedTx, c.UncertainTx,
		t.delivered, t.late, t.dup, t.disorder, t.notCommitted, t.reconnects, faults, s.rssNow())
}

// finish waits for the streams to catch up, checks them against the table
// and prints the summary. It returns the exit code.
func (s *soak) finish(ctx context.Context, start time.Time) int {
	table := pgx.Identifier{s.schema, "notifications"}.Sanitize()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var pending int
		err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{s.schema, "relay_pending"}.Sanitize()).Scan(&pending)
		if err == nil && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			s.note("%d rows never stamped (err %v)", pending, err)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	type row struct {
		to  string
		seq int64
	}
	truth := map[string]row{}
	want := map[string]int{}
	// A row's event is its latest log entry, the one with its current xid.
	rows, err := s.pool.Query(ctx, "SELECT n.id::text, n.notifiable_id, coalesce(l.seq, 0) FROM "+table+" AS n LEFT JOIN "+
		pgx.Identifier{s.schema, "relay_log"}.Sanitize()+" AS l ON l.id = n.id AND l.xid = n.xid")
	if err == nil {
		for rows.Next() {
			var id string
			var r row
			if err = rows.Scan(&id, &r.to, &r.seq); err != nil {
				break
			}
			truth[id] = r
			want[r.to]++
		}
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		s.note("read the table: %v", err)
		return 1
	}
	for _, c := range s.clients {
		for time.Now().Before(deadline) {
			c.mu.Lock()
			n := len(c.seen)
			c.mu.Unlock()
			if n >= want[c.to] {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond)
	s.report(time.Since(start))

	var problems []string
	problems = append(problems, s.problems...)
	lost, dup, disorder, notCommitted, wrongSeq, phantom, landed := 0, 0, 0, 0, 0, 0, 0
	s.mu.Lock()
	l := s.ledger
	l.Lock()
	for id, c := range l.Committed {
		if r, ok := truth[id]; !ok || r.to != c.To {
			problems = append(problems, "acknowledged commit "+id+" is not in the table")
		}
	}
	for id := range truth {
		_, acked := l.Committed[id]
		_, unsure := l.Uncertain[id]
		if unsure {
			landed++
		}
		if !acked && !unsure {
			phantom++
		}
	}
	for _, c := range s.clients {
		c.mu.Lock()
		disorder += c.disorder
		problems = append(problems, c.problems...)
		for id, n := range c.seen {
			if n > 1 {
				dup += n - 1
			}
			if l.RolledBack[id] || l.Failed[id] {
				notCommitted++
			}
			if _, in := truth[id]; !in {
				if _, unsure := l.Uncertain[id]; unsure {
					notCommitted++
				}
			}
			if r, ok := truth[id]; ok && (r.to != c.to || r.seq != c.seqOf[id]) {
				wrongSeq++
			}
		}
		for id, r := range truth {
			if r.to == c.to && c.seen[id] == 0 {
				lost++
			}
		}
		c.mu.Unlock()
	}
	counts := l.Counts
	l.Unlock()
	var fl []string
	for k, n := range s.faults {
		fl = append(fl, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(fl)
	faults := strings.Join(fl, ", ")
	s.mu.Unlock()

	fmt.Println()
	fmt.Println("soak summary")
	fmt.Printf("  ran %s on schema %s; faults: %s\n", time.Since(start).Round(time.Second), s.schema, faults)
	fmt.Printf("  writers: %d notifications in %d committed transactions; %d rolled back, %d savepoints rolled back, %d failed, %d commits uncertain (%d of their rows landed)\n",
		counts.Committed, counts.CommittedTx, counts.RolledBackTx, counts.Savepoints, counts.FailedTx, counts.UncertainTx, landed)
	fmt.Printf("  table: %d rows; streams: %d\n", len(truth), len(s.clients))
	fmt.Printf("  lost %d  duplicated %d  out of order %d  delivered but not committed %d  wrong seq %d  rows nobody committed %d\n",
		lost, dup, disorder, notCommitted, wrongSeq, phantom)
	for i, samples := range s.rss {
		if len(samples) == 0 {
			continue
		}
		what := "restarted by faults"
		if i == 0 {
			what = "never restarted"
		}
		fmt.Printf("  relay %d (%s) RSS: %s\n", i, what, rssSummary(samples))
	}
	if len(problems) > 0 {
		fmt.Println("  problems:")
		for i, p := range problems {
			if i == 20 {
				fmt.Printf("    ... and %d more\n", len(problems)-20)
				break
			}
			fmt.Println("    " + p)
		}
	}
	if lost+dup+disorder+notCommitted+wrongSeq+phantom > 0 || len(problems) > 0 {
		fmt.Println("soak: FAILED")
		return 1
	}
	fmt.Println("soak: OK: every committed notification reached its stream exactly once, in order; nothing else did")
	return 0
}

// rssSummary describes samples taken once a second: the first minute is
// warm-up; after it, min, max and the median of the first and last fifth.
func rssSummary(samples []int64) string {
	mb := func(k int64) string { return fmt.Sprintf("%.1f", float64(k)/1024) }
	all := slices.Clone(samples)
	out := fmt.Sprintf("start %s MB, peak %s MB, end %s MB", mb(samples[0]), mb(slices.Max(all)), mb(samples[len(samples)-1]))
	if len(samples) > 90 {
		steady := samples[60:]
		fifth := max(len(steady)/5, 1)
		med := func(s []int64) int64 { c := slices.Clone(s); slices.Sort(c); return c[len(c)/2] }
		out += fmt.Sprintf("; after the first minute: min %s, max %s, median of the first fifth %s, of the last fifth %s MB",
			mb(slices.Min(steady)), mb(slices.Max(steady)), mb(med(steady[:fifth])), mb(med(steady[len(steady)-fifth:])))
	}
	return out
}

// ---- relay processes ------------------------------------------------------

type relayProc struct {
	name string
	url  string
	env  []string
	bin  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	logs *tailBuffer
}

func (s *soak) newRelay(i int) (*relayProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	return &relayProc{name: fmt.Sprintf("relay %d", i), url: "http://" + addr, bin: s.relayBin, logs: &tailBuffer{},
		env: append(os.Environ(),
			"DATABASE_URL="+s.dbURL,
			"BELLHOP_SCHEMA="+s.schema,
			"BELLHOP_JWT_SECRET="+jwtSecret,
			"BELLHOP_LISTEN_ADDR="+addr,
			"BELLHOP_DB_MAX_CONNS=6",
			"BELLHOP_RETRY_HINT="+s.retry.String(),
			"BELLHOP_LOG_LEVEL=warn",
		)}, nil
}

func (p *relayProc) start() error {
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(p.url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited at start: %s", p.name, p.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after 30 s: %s", p.name, p.logs.String())
}

func (p *relayProc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *relayProc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop is a graceful shutdown: SIGTERM, and a clean exit within 30 s.
func (p *relayProc) stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("still running 30 s after SIGTERM")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return fmt.Errorf("%v: %s", p.err, p.logs.String())
	}
	return nil
}

func (p *relayProc) terminate() {
	if p.running() {
		_ = p.stop()
	}
}

func (p *relayProc) rssKiB() (int64, error) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if !p.running() {
		return 0, errors.New("down")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// tailBuffer keeps the last 8 KiB written.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8<<10 {
		t.b = append([]byte(nil), t.b[len(t.b)-8<<10:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// ---- streams --------------------------------------------------------------

// client is one browser tab's EventSource: it reconnects after the relay's
// retry: hint whenever its stream ends, breaks or cannot connect, with
// Last-Event-ID, to a replica picked at random each time.
type client struct {
	to    string
	token string
	urls  []string
	next  int
	hc    *http.Client
	retry time.Duration

	mu       sync.Mutex
	last     int64
	seen     map[string]int   // notification id -> times received
	seqOf    map[string]int64 // notification id -> its seq
	disorder int
	problems []string
	connects int
	ready    chan struct{}
	once     sync.Once
}

func (c *client) run(ctx context.Context) {
	for ctx.Err() == nil {
		c.session(ctx, c.urls[c.next%len(c.urls)])
		// As behind a load balancer: any replica, at random, so the streams
		// do not pile up on the one replica that is never restarted.
		c.next = mrand.IntN(len(c.urls))
		c.mu.Lock()
		wait := c.retry
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(wait/2 + mrand.N(wait)):
		}
	}
}

func (c *client) problem(format string, args ...any) {
	if len(c.problems) < 20 {
		c.problems = append(c.problems, c.to+": "+fmt.Sprintf(format, args...))
	}
}

func (c *client) session(ctx context.Context, base string) {
	// Tabs come and go: a stream lives 15-45 s, then its client reconnects
	// (with Last-Event-ID), so streams keep spreading over the replicas
	// instead of piling up on the one that is never restarted.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(15+mrand.IntN(30))*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/notifications/stream", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	c.mu.Lock()
	if c.last >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(c.last, 10))
	}
	c.mu.Unlock()
	res, err := c.hc.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		if res.StatusCode != http.StatusServiceUnavailable { // a relay shutting down says 503
			c.mu.Lock()
			c.problem("stream answered %d: %s", res.StatusCode, bytes.TrimSpace(body))
			c.mu.Unlock()
		}
		return
	}
	c.mu.Lock()
	c.connects++
	c.mu.Unlock()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id int64
	var hasID bool
	var data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if hasID || data != "" {
				c.dispatch(id, hasID, data)
			}
			id, hasID, data = 0, false, ""
		case strings.HasPrefix(line, "id: "):
			id, _ = strconv.ParseInt(line[4:], 10, 64)
			hasID = true
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		case strings.HasPrefix(line, "retry: "):
			if ms, err := strconv.Atoi(line[7:]); err == nil {
				c.mu.Lock()
				c.retry = time.Duration(ms) * time.Millisecond
				c.mu.Unlock()
			}
		}
	}
}

func (c *client) dispatch(id int64, hasID bool, data string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.once.Do(func() { close(c.ready) })
	if data == "" {
		if id < c.last {
			c.problem("id: frame moved the resume point back from %d to %d", c.last, id)
		}
		c.last = id
		return
	}
	var ev relay.Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil || !hasID || ev.Seq != id || ev.Op != "created" {
		c.problem("bad event %q (id %d, err %v)", data, id, err)
		return
	}
	if id <= c.last {
		c.disorder++
	}
	c.last = id
	c.seen[ev.ID]++
	if c.seqOf == nil {
		c.seqOf = map[string]int64{}
	}
	c.seqOf[ev.ID] = id
}
