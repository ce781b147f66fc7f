// Command peerbench measures Bellhop beside a peer, Centrifugo's PostgreSQL
// outbox consumer, with one outside probe, and prints a markdown report.
//
// Per run and system: 1,000 SSE streams (one per user) connect; a paced
// writer commits single-row transactions at 1,000/s (a warm-up, then the
// measured part), each row carrying a unique id that the streams match;
// then closed-loop writers (1, 4, 16) measure what the system costs the
// writer's transaction against a copy of the same table without triggers.
// Runs alternate (Bellhop, Centrifugo, Bellhop, ...) so drift on a shared
// machine hits both alike. Everything runs in a database of its own,
// `peerbench`, created at the start and dropped at the end.
//
//	go run ./cmd/peerbench -centrifugo /tmp/cfbin/centrifugo          # full: 3 runs each
//	go run ./cmd/peerbench -centrifugo /tmp/cfbin/centrifugo -quick   # seconds: 1 short run each
//
// It exits 2 when any committed row was lost or delivered twice.
package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/internal/relayproc"
	"github.com/bellhophq/bellhop/migrations"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// secret signs both systems' connection tokens (HS256).
const secret = "peerbench-secret-0123456789abcdef"

// dbName is the database the run creates and drops.
const dbName = "peerbench"

const cfInstall = "GOBIN=/tmp/cfbin go install github.com/centrifugal/centrifugo/v6@v6.9.1"

type params struct {
	runs      int
	streams   int
	rate      int
	warmup    time.Duration
	duration  time.Duration
	costSlice time.Duration // per table and writer count
	writers   []int
}

type bench struct {
	params
	dbURL     string
	pool      *pgxpool.Pool
	relayBin  *relayproc.Binary
	cfPath    string
	cfVersion string
	bhVersion string   // the working tree the relay was built from
	roles     []string // server-wide roles `relay migrate` created
}

func main() {
	cf := flag.String("centrifugo", "", "path to a Centrifugo v6 binary (required; build one with: "+cfInstall+")")
	db := flag.String("db", "", "PostgreSQL URL of a server to use (default TEST_DATABASE_URL, DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres); the run creates and drops database "+dbName+" on it")
	runs := flag.Int("runs", 3, "runs per system, alternating (medians and min-max are reported)")
	quick := flag.Bool("quick", false, "a smoke pass: 1 run per system (unless -runs is given), short phases")
	out := flag.String("out", "", `also write the markdown report to this file ("-" for none: it is printed anyway)`)
	flag.Parse()

	p := params{runs: *runs, streams: 1000, rate: 1000, warmup: 2 * time.Second, duration: 10 * time.Second,
		costSlice: 5 * time.Second, writers: []int{1, 4, 16}}
	if *quick {
		p.warmup, p.duration, p.costSlice = 500*time.Millisecond, 2*time.Second, time.Second
		if !flagSet("runs") {
			p.runs = 1
		}
	}
	p.runs = max(p.runs, 1)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, p, *cf, *db, *out)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// run does the whole benchmark; every child process, temp file and the
// database are gone when it returns, whatever happened (deferred cleanup
// runs on error and on Ctrl-C, which cancels ctx).
func run(ctx context.Context, p params, cfPath, adminURL, out string) (int, error) {
	if cfPath == "" {
		return 1, errors.New("-centrifugo PATH is required: build Centrifugo v6.9.1 with `" + cfInstall + "` and pass -centrifugo /tmp/cfbin/centrifugo")
	}
	if fi, err := os.Stat(cfPath); err != nil || fi.IsDir() {
		return 1, fmt.Errorf("-centrifugo %s: not a file (%v); build it with `%s`", cfPath, err, cfInstall)
	}
	b := &bench{params: p, cfPath: cfPath, cfVersion: "unknown"}
	if bi, err := buildinfo.ReadFile(cfPath); err == nil {
		// `centrifugo version` says 0.0.0 for a go-install build (no
		// ldflags); the module version is in the binary's build info.
		b.cfVersion = bi.Main.Path + " " + bi.Main.Version
	}
	raiseNofile()
	if adminURL == "" {
		adminURL = firstNonEmpty(os.Getenv("TEST_DATABASE_URL"), os.Getenv("DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres")
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return 1, fmt.Errorf("-db %q: want a postgres:// URL", adminURL)
	}
	u.Path = "/" + dbName
	b.dbURL = u.String()

	fmt.Fprintln(os.Stderr, "building the relay ...")
	if b.relayBin, err = relayproc.Build(ctx, "./cmd/relay"); err != nil {
		return 1, fmt.Errorf("%w (run from the repository root)", err)
	}
	defer b.relayBin.Remove()
	b.bhVersion = gitVersion()

	if err := adminExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)", "CREATE DATABASE "+dbName); err != nil {
		return 1, fmt.Errorf("create database %s: %w", dbName, err)
	}
	defer b.dropDatabase(adminURL)
	pcfg, err := pgxpool.ParseConfig(b.dbURL)
	if err != nil {
		return 1, err
	}
	pcfg.MaxConns = 40
	if b.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return 1, err
	}
	defer b.pool.Close()
	machine, err := b.machine(ctx)
	if err != nil {
		return 1, err
	}
	fmt.Fprintln(os.Stderr, machine)

	results := map[string][]*runResult{}
	var cfConfig []byte
	start := time.Now()
	for r := range p.runs {
		for _, sys := range []system{&bellhop{b: b}, &centrifugo{b: b}} {
			fmt.Fprintf(os.Stderr, "== run %d/%d: %s\n", r+1, p.runs, sys.name())
			res, err := b.runOnce(ctx, sys, r)
			if err != nil {
				return 1, fmt.Errorf("%s, run %d: %w", sys.name(), r+1, err)
			}
			results[sys.name()] = append(results[sys.name()], res)
			if c, ok := sys.(*centrifugo); ok && cfConfig == nil {
				cfConfig = c.config
			}
		}
	}
	report := b.report(machine, results, cfConfig, time.Since(start))
	fmt.Print(report)
	if out != "" && out != "-" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			return 1, err
		}
		fmt.Fprintln(os.Stderr, "wrote", out)
	}
	if failed(results) {
		return 2, errors.New("DELIVERY CHECK FAILED: some committed rows were lost or delivered twice (see the report)")
	}
	return 0, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func adminExec(ctx context.Context, url string, stmts ...string) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// dropDatabase drops the run's database and the server-wide writer roles
// `relay migrate` created (roles outlive a database). Not the run's ctx: a
// ^C must still clean up.
func (b *bench) dropDatabase(adminURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b.pool != nil {
		b.pool.Close()
	}
	stmts := []string{"DROP DATABASE IF EXISTS " + dbName + " WITH (FORCE)"}
	for _, r := range b.roles {
		stmts = append(stmts, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize())
	}
	if err := adminExec(ctx, adminURL, stmts...); err != nil {
		fmt.Fprintln(os.Stderr, "peerbench: cleanup:", err)
	}
}

// raiseNofile lifts RLIMIT_NOFILE for this process and, inherited, its
// children (thousands of sockets); setting it also stops os/exec from
// restoring the old soft limit in children.
func raiseNofile() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	lim.Cur = min(max(lim.Cur, 65536), lim.Max)
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

func (b *bench) machine(ctx context.Context) (string, error) {
	var ver, fsync, sc, sb string
	err := b.pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'),
		current_setting('synchronous_commit'), current_setting('shared_buffers')`).Scan(&ver, &fsync, &sc, &sb)
	if err != nil {
		return "", fmt.Errorf("database %s: %w", b.dbURL, err)
	}
	cpu, mem := "", ""
	if s, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(s), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = " (" + strings.TrimSpace(v) + ")"
				break
			}
		}
	}
	if s, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(s)); len(f) > 1 {
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				mem = fmt.Sprintf(", %.0f GiB RAM", kb/1024/1024)
			}
		}
	}
	return fmt.Sprintf("%d cores%s%s, %s %s/%s; PostgreSQL %s (fsync=%s, synchronous_commit=%s, shared_buffers=%s) on the same machine, "+
		"shared by the system under test, PostgreSQL and this probe",
		runtime.NumCPU(), cpu, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, ver, fsync, sc, sb), nil
}

// system is one system under test, started fresh (own schema) per run.
type system interface {
	name() string
	start(ctx context.Context, run int) error
	// stream is the request that opens user's stream.
	stream(user string) (string, http.Header, error)
	// table is the table writers insert into (schema-qualified); insert
	// is the writer's statement for a table of its shape, args its
	// arguments for one row to user carrying pid.
	table() string
	insert(table string) string
	args(user string, pid int64) []any
	// pending counts committed rows the system has not relayed yet.
	pending(ctx context.Context) (int64, error)
	// stop ends the process and drops the schema; it returns what the
	// process logged at warn or above, if anything.
	stop() string
	schemaName() string
}

// ---------------------------------------------------------------- Bellhop

// bellhop is `relay serve` (internal/relayproc) on a fresh schema made by
// `relay migrate`, with cmd/bench's settings: adaptive wake mode (1 ms
// poll while busy, NOTIFY-woken when idle), everything else default.
type bellhop struct {
	b      *bench
	schema string
	proc   *relayproc.Proc
}

func (s *bellhop) name() string       { return "Bellhop" }
func (s *bellhop) schemaName() string { return s.schema }

func (s *bellhop) env() []string {
	return []string{
		"DATABASE_URL=" + s.b.dbURL,
		"BELLHOP_SCHEMA=" + s.schema,
		"BELLHOP_JWT_SECRET=" + secret,
		"BELLHOP_WAKE_MODE=adaptive",
		"BELLHOP_MAX_STREAMS=100000",
		"BELLHOP_LOG_LEVEL=warn",
	}
}

func (s *bellhop) start(ctx context.Context, run int) error {
	s.schema = fmt.Sprintf("pb_bellhop_%d", run)
	s.b.roles = append(s.b.roles, migrations.WriterRole(s.schema))
	if _, err := s.b.relayBin.Run(ctx, s.env(), "migrate"); err != nil {
		return err
	}
	p, err := relayproc.New(s.b.relayBin, "relay", s.env()...)
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	s.proc = p
	return nil
}

func (s *bellhop) stream(user string) (string, http.Header, error) {
	tok, err := relay.Mint(secret, outbox.User(user), 2*time.Hour)
	if err != nil {
		return "", nil, err
	}
	return s.proc.URL + "/notifications/stream", http.Header{"Authorization": {"Bearer " + tok}}, nil
}

func (s *bellhop) table() string { return s.schema + ".notifications" }

// insert is the README's plain INSERT; the pid rides in sse, the live
// payload the event carries (data stays its default, '{}').
func (s *bellhop) insert(table string) string {
	return "INSERT INTO " + table + " (notifiable_id, type, sse) VALUES ($1, 'peer.ping', $2)"
}

func (s *bellhop) args(user string, pid int64) []any {
	return []any{user, fmt.Sprintf(`{"pid": %d}`, pid)}
}

func (s *bellhop) pending(ctx context.Context) (n int64, err error) {
	err = s.b.pool.QueryRow(ctx, "SELECT count(*) FROM "+s.schema+".relay_pending").Scan(&n)
	return n, err
}

func (s *bellhop) stop() string {
	var logs string
	if s.proc != nil {
		if err := s.proc.Stop(15 * time.Second); err != nil {
			logs = err.Error()
		} else {
			logs = s.proc.Logs()
		}
	}
	dropSchema(s.b.pool, s.schema)
	return logs
}

// ---------------------------------------------------------------- Centrifugo

// centrifugo is a Centrifugo child process whose PostgreSQL outbox
// consumer reads a fresh outbox table, woken per row by the trigger its
// docs recommend; streams are uni_sse connections subscribed server-side
// to their user's channel by the connection JWT's `channels` claim.
type centrifugo struct {
	b      *bench
	schema string
	dir    string
	addr   string
	cmd    *exec.Cmd
	done   chan struct{}
	logs   *relayproc.TailBuffer
	config []byte
}

func (s *centrifugo) name() string       { return "Centrifugo" }
func (s *centrifugo) schemaName() string { return s.schema }

// outboxDDL is the table from Centrifugo's docs (consumers: PostgreSQL
// outbox consumer) and its notification trigger, per schema.
const outboxDDL = `
CREATE SCHEMA %[1]s;
CREATE TABLE %[1]s.outbox (
	id BIGSERIAL PRIMARY KEY,
	method text NOT NULL,
	payload JSONB NOT NULL,
	partition INTEGER NOT NULL default 0,
	created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL
);
CREATE FUNCTION %[1]s.notify_partition_change() RETURNS TRIGGER AS $$
BEGIN
	PERFORM pg_notify('%[1]s_outbox', NEW.partition::text);
	RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER notify_partition_trigger AFTER INSERT ON %[1]s.outbox
	FOR EACH ROW EXECUTE FUNCTION %[1]s.notify_partition_change();`

func (s *centrifugo) start(ctx context.Context, run int) error {
	s.schema = fmt.Sprintf("pb_centrifugo_%d", run)
	if _, err := s.b.pool.Exec(ctx, fmt.Sprintf(outboxDDL, s.schema)); err != nil {
		return err
	}
	addr, err := relayproc.FreeAddr()
	if err != nil {
		return err
	}
	s.addr = addr
	_, port, _ := strings.Cut(addr, ":")
	portN, _ := strconv.Atoi(port)
	// v6 key names (internal/configtypes); checked with `centrifugo
	// checkconfig`, which warns of unknown keys.
	cfg := map[string]any{
		"log":         map[string]any{"level": "warn"},
		"http_server": map[string]any{"address": "127.0.0.1", "port": portN},
		"usage_stats": map[string]any{"disabled": true},
		"health":      map[string]any{"enabled": true},
		"client":      map[string]any{"token": map[string]any{"hmac_secret_key": secret}},
		"uni_sse":     map[string]any{"enabled": true},
		"consumers": []any{map[string]any{
			"name": "peerbench", "enabled": true, "type": "postgresql",
			"postgresql": map[string]any{
				"dsn":                            s.b.dbURL,
				"outbox_table_name":              s.table(),
				"num_partitions":                 1,
				"partition_select_limit":         100,
				"partition_poll_interval":        "300ms",
				"partition_notification_channel": s.schema + "_outbox",
			},
		}},
	}
	if s.config, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		return err
	}
	if s.dir, err = os.MkdirTemp("", "peerbench-centrifugo-"); err != nil {
		return err
	}
	path := filepath.Join(s.dir, "config.json")
	if err := os.WriteFile(path, s.config, 0o600); err != nil {
		return err
	}
	s.logs = &relayproc.TailBuffer{Max: 64 << 10}
	s.cmd = exec.Command(s.b.cfPath, "--config", path)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	// Dies with us even if we are killed without a chance to clean up.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start centrifugo: %w", err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := hc.Get("http://" + addr + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("centrifugo exited while starting: %s", s.logs.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("centrifugo not healthy after 30 s: %s", s.logs.String())
		}
	}
}

func channelOf(user string) string { return "user." + user }

// stream is a uni_sse GET with the connect request in cf_connect: a JWT
// whose `channels` claim subscribes the connection server-side.
func (s *centrifugo) stream(user string) (string, http.Header, error) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "channels": []string{channelOf(user)}, "exp": time.Now().Add(2 * time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		return "", nil, err
	}
	connect, _ := json.Marshal(map[string]string{"token": tok})
	return "http://" + s.addr + "/connection/uni_sse?cf_connect=" + url.QueryEscape(string(connect)), nil, nil
}

func (s *centrifugo) table() string { return s.schema + ".outbox" }

// insert is the docs' INSERT of a publish command.
func (s *centrifugo) insert(table string) string {
	return "INSERT INTO " + table + " (method, payload, partition) VALUES ('publish', $1, 0)"
}

func (s *centrifugo) args(user string, pid int64) []any {
	return []any{fmt.Sprintf(`{"channel": %q, "data": {"pid": %d}}`, channelOf(user), pid)}
}

// pending: the consumer deletes what it published.
func (s *centrifugo) pending(ctx context.Context) (n int64, err error) {
	err = s.b.pool.QueryRow(ctx, "SELECT count(*) FROM "+s.table()).Scan(&n)
	return n, err
}

func (s *centrifugo) stop() string {
	var logs []string
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			logs = append(logs, "centrifugo did not stop within 15 s of SIGTERM; killed")
		}
		for _, l := range strings.Split(s.logs.String(), "\n") {
			// A go-install build warns that it is one, every start.
			if l != "" && !strings.Contains(l, "development build") {
				logs = append(logs, l)
			}
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
	dropSchema(s.b.pool, s.schema)
	return strings.Join(logs, "\n")
}

func dropSchema(pool *pgxpool.Pool, schema string) {
	if schema == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	_, _ = pool.Exec(ctx, "DROP PUBLICATION IF EXISTS "+schema+"_wake")
}
