// Command soak runs Bellhop under a steady mixed load for a bounded time
// while injecting faults, and checks that nothing is lost or duplicated.
//
// It builds the relay into a temp folder (removed at the end), migrates a
// fresh schema (soak_<pid>_<random>, dropped at the end) on TEST_DATABASE_URL or DATABASE_URL, and runs relay
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
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/internal/loadgen"
	"github.com/bellhophq/bellhop/internal/relayproc"
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
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &soak{
		dbURL: *db, nRelays: max(*relays, 2), retry: *retry,
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
	dbURL   string
	nRelays int
	retry   time.Duration
	schema  string
	pool    *pgxpool.Pool
	procs   []*relayproc.Proc
	clients []*client
	hc      *http.Client

	ledger *loadgen.Ledger // the writers' own lock

	mu sync.Mutex

	faults   map[string]int
	problems []string // fault-side problems (a relay that did not exit cleanly, ...)
	rss      [][]int64
}

func (s *soak) run(ctx context.Context, duration time.Duration, nRecipients, nWriters, rate int, faultEvery time.Duration) (int, error) {
	fmt.Fprintln(os.Stderr, "building the relay ...")
	bin, err := relayproc.Build(ctx, "./cmd/relay")
	if err != nil {
		return 0, fmt.Errorf("%w (run from the repository root)", err)
	}
	defer bin.Remove()
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
		_, _ = s.pool.Exec(dctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{s.schema + "_wake"}.Sanitize())
	}()

	for i := range s.nRelays {
		p, err := relayproc.New(bin, fmt.Sprintf("relay %d", i),
			"DATABASE_URL="+s.dbURL,
			"BELLHOP_SCHEMA="+s.schema,
			"BELLHOP_JWT_SECRET="+jwtSecret,
			"BELLHOP_DB_MAX_CONNS=6",
			"BELLHOP_RETRY_HINT="+s.retry.String(),
			"BELLHOP_LOG_LEVEL=warn",
		)
		if err != nil {
			return 0, err
		}
		s.procs = append(s.procs, p)
		defer p.Stop(0)
		if err := p.Start(ctx); err != nil {
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
		urls[i] = p.URL
	}
	for i := range nRecipients {
		to := outbox.User(fmt.Sprintf("soak%03d", i))
		tok, err := relay.Mint(jwtSecret, to, 24*time.Hour)
		if err != nil {
			return 0, err
		}
		c := newClient(to.ID, tok, urls, i, s.hc, s.retry)
		s.clients = append(s.clients, c)
		cwg.Add(1)
		go func() { defer cwg.Done(); c.Run(cctx) }()
	}
	for _, c := range s.clients {
		select {
		case <-c.Ready():
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
		if !p.Running() {
			if err := p.Start(ctx); err != nil {
				s.note("restart %s: %v", p.Name, err)
			}
		}
	}
	return s.finish(ctx, start), nil
}
