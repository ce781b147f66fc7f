package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bellhophq/bellhop/outbox"
)

const scaleDoc = `- **replicas. Scale-out.** 1, 2, 4 and 8 relay processes (` + "`BELLHOP_DB_MAX_CONNS=4`" + ` each) on one schema of
  one PostgreSQL, 10,000 streams split evenly among them (one per recipient), single-row writers at 1,000/s to
  random recipients for 5 s per run. Every replica runs its worker (one stamps at a time). Per replica count:
  relay log entries read per event and log queries per stamped batch, summed over replicas
  (` + "`bellhop_hub_log_rows_total`" + `, ` + "`bellhop_hub_log_reads_total`" + `, ` + "`bellhop_stamp_batch_rows_count`" + `); the database's transactions per second less the writers' (` + "`pg_stat_database.xact_commit`" + `
  of the bench's database: pg_stat_statements is not loaded here); the CPU of the relays' own PostgreSQL backends
  (` + "`/proc/<pid>/stat`" + ` of the backends whose application_name is the run's) and of the relay processes, per
  event; latency from COMMIT return. See docs/scaling.md.
- **fanout. Scale-out through a broker.** The replicas scenario with ` + "`BELLHOP_FANOUT`" + ` set, once with NATS and once
  with Redis (` + "`-nats`" + `, ` + "`-redis`" + `: their standard ports by default): the same figures, and the share of
  the batches the broker announced that a hub still read from the log (a message missing, or a head out of order:
  every replica stamps, and two replicas' heads may cross on the way).
- **idle. Idle streams.** 50,000 idle SSE streams on one relay, from source addresses 127.0.0.2 onwards (one
  address's ephemeral ports do not reach 50,000): RSS per stream as in scenario 4, then one ` + "`SendMany`" + ` to all
  50,000 recipients: time from its COMMIT returning until the last (and the median) stream received its event.
`

// withAppName sets application_name on a PostgreSQL URL (or key=value
// string), so the run's backends can be told from others.
func withAppName(dsn, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " application_name=" + name
}

// cpuTicks is a process's user + system CPU time in clock ticks (1/100 s
// on Linux), 0 if it is gone.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command, which is in parentheses and may hold spaces.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

const tick = 10 * time.Millisecond

// metricSum reads series (a name, with its labels if any) from each relay's
// /metrics and sums them.
func metricSum(ps []*relayProc, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	sum := 0.0
	for _, p := range ps {
		res, err := http.Get("http://" + p.addr + "/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if m := re.FindSubmatch(body); m != nil {
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			sum += v
		}
	}
	return sum
}

// ---------------------------------------------------------------- replicas

func (b *bench) replicas(ctx context.Context) error {
	const s = "replicas. Scale-out"
	counts := []int{1, 2, 4, 8}
	if b.smoke {
		counts = []int{1, 2}
	}
	for _, n := range counts {
		if err := b.replicaCount(ctx, s, n, ""); err != nil {
			return err
		}
	}
	return nil
}

// fanoutReplicas is replicas with BELLHOP_FANOUT, for each broker.
func (b *bench) fanoutReplicas(ctx context.Context) error {
	const s = "fanout. Scale-out through a broker"
	counts := []int{1, 2, 4, 8}
	if b.smoke {
		counts = []int{2}
	}
	for _, br := range b.brokers {
		for _, n := range counts {
			if err := b.replicaCount(ctx, s, n, br[0], "BELLHOP_FANOUT="+br[1]); err != nil {
				return fmt.Errorf("%s: %w", br[0], err)
			}
		}
	}
	return nil
}

// replicaCount runs the scale-out load on n replicas, through the broker
// named broker when env sets BELLHOP_FANOUT.
func (b *bench) replicaCount(ctx context.Context, s string, n int, broker string, env ...string) error {
	streams := b.pick(10000, 40)
	rate := b.pick(1000, 100)
	d := b.dur(5*time.Second, 500*time.Millisecond)
	schema, err := b.migrateSchema(ctx)
	if err != nil {
		return err
	}
	defer dropSchema(b.pool, schema)
	app := "bench-" + schema
	var ps []*relayProc
	defer func() {
		for _, p := range ps {
			_ = p.Stop(15 * time.Second)
		}
	}()
	for range n {
		p, err := b.startRelay(ctx, schema, "adaptive", append([]string{"BELLHOP_DB_MAX_CONNS=4", "DATABASE_URL=" + withAppName(b.dbURL, app)}, env...)...)
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	ob, err := outbox.New(outbox.Config{Schema: schema})
	if err != nil {
		return err
	}
	users := userNames("r", streams)
	fleets := make([]*fleet, n)
	defer func() {
		for _, f := range fleets {
			if f != nil {
				f.close()
			}
		}
	}()
	for i, p := range ps {
		var part []string
		for j := i; j < len(users); j += n {
			part = append(part, users[j])
		}
		if fleets[i], err = connectFleet(ctx, p.addr, part, 100); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "   %d replicas, %d streams connected\n", n, streams)

	// All fleets as one, for the delivery check.
	all := &fleet{}
	for _, f := range fleets {
		all.clients = append(all.clients, f.clients...)
	}
	total := func() int64 {
		var t int64
		for _, f := range fleets {
			t += f.total.Load()
		}
		return t
	}
	run := func(d time.Duration) ([]delivery, error) {
		l := newLedger()
		base := total()
		if err := paced(ctx, rate, d, 8, func() error {
			return b.sendOne(ctx, ob, users[rand.IntN(len(users))], l)
		}); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(30 * time.Second)
		for total()-base < int64(l.len()) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		ds, problems := all.verify(l)
		b.problem(s, problems...)
		return ds, nil
	}
	if _, err := run(b.dur(time.Second, 200*time.Millisecond)); err != nil { // warm-up
		return err
	}

	label := fmt.Sprintf("%d replica", n)
	if n > 1 {
		label += "s"
	}
	via := "" // for the progress lines
	if broker != "" {
		label, via = broker+", "+label, broker+", "
	}
	name := func(x string) string { return label + ": " + x }
	rowsRead := b.fig(s, name("log entries read per event (all replicas)"), "x")
	var fromLog *figure
	if broker != "" && n > 1 { // one replica pushes what it stamps itself
		fromLog = b.fig(s, name("batches a hub read from the log, of those the broker announced"), "%")
	}
	if n == 8 && broker == "" {
		rowsRead.target, rowsRead.ok = "≤ 1.5 (every replica read every entry: 7 or 8)", atMost(1.5)
		rowsRead.limit = "A replica reads its recipients' entries of each batch (or all of them when the NOTIFY could not name them)."
	}
	reads := b.fig(s, name("log queries per stamped batch (all replicas)"), "x")
	readRate := b.fig(s, name("log reads/s (all replicas)"), "/s")
	batchRate := b.fig(s, name("stamped batches/s"), "/s")
	xacts := b.fig(s, name("database transactions/s, less the writers'"), "/s")
	dbCPU := b.fig(s, name("relays' PostgreSQL backends: CPU per event"), "µs")
	relayCPU := b.fig(s, name("relay processes: CPU per event"), "µs")
	relayCores := b.fig(s, name("relay processes: CPU, % of one core"), "%")
	p50 := b.fig(s, name("p50, from COMMIT return"), "ms")
	p99 := b.fig(s, name("p99, from COMMIT return"), "ms")
	pids := make([]int, len(ps))
	for i, p := range ps {
		pids[i] = p.Pid()
	}
	for range b.runs {
		var xact0 int64
		if err := b.pool.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&xact0); err != nil {
			return err
		}
		cpu0, err := b.sampleCPU(ctx, app, pids...)
		if err != nil {
			return err
		}
		reads0 := metricSum(ps, `bellhop_hub_log_reads_total{read="tail"}`) + metricSum(ps, `bellhop_hub_log_reads_total{read="recipients"}`)
		batches0 := metricSum(ps, "bellhop_stamp_batch_rows_count")
		rows0 := metricSum(ps, `bellhop_hub_log_rows_total{read="tail"}`) + metricSum(ps, `bellhop_hub_log_rows_total{read="recipients"}`)
		fanned := func() (read, all float64) {
			read = metricSum(ps, `bellhop_fanout_batches_total{result="read"}`)
			return read, read + metricSum(ps, `bellhop_fanout_batches_total{result="pushed"}`) + metricSum(ps, `bellhop_fanout_batches_total{result="skipped"}`)
		}
		fread0, fall0 := fanned()
		t := time.Now()

		ds, err := run(d)
		if err != nil {
			return err
		}

		elapsed := time.Since(t)
		cpu1, err := b.sampleCPU(ctx, app, pids...)
		if err != nil {
			return err
		}
		cpu := cpu1.since(cpu0) // a backend that came meanwhile counts whole
		var xact1 int64
		if err := b.pool.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&xact1); err != nil {
			return err
		}
		reads1 := metricSum(ps, `bellhop_hub_log_reads_total{read="tail"}`) + metricSum(ps, `bellhop_hub_log_reads_total{read="recipients"}`)
		batches1 := metricSum(ps, "bellhop_stamp_batch_rows_count")
		rows1 := metricSum(ps, `bellhop_hub_log_rows_total{read="tail"}`) + metricSum(ps, `bellhop_hub_log_rows_total{read="recipients"}`)
		events := float64(len(ds))
		if events == 0 || batches1 == batches0 {
			return fmt.Errorf("%d replicas: nothing delivered", n)
		}
		dbPerEvent, relayPerEvent := cpu[cpuRelayBackends]/events, cpu[cpuRelay]/events
		if fromLog != nil {
			fread1, fall1 := fanned()
			if fall1 == fall0 {
				return fmt.Errorf("%s, %d replicas: no batch came through the broker", broker, n)
			}
			fromLog.add(100 * (fread1 - fread0) / (fall1 - fall0))
		}
		reads.add((reads1 - reads0) / (batches1 - batches0))
		rowsRead.add((rows1 - rows0) / events)
		readRate.add((reads1 - reads0) / elapsed.Seconds())
		batchRate.add((batches1 - batches0) / elapsed.Seconds())
		xacts.add((float64(xact1-xact0) - events) / elapsed.Seconds())
		dbCPU.add(dbPerEvent)
		relayCPU.add(relayPerEvent)
		relayCores.add(100 * cpu[cpuRelay] / float64(elapsed.Microseconds()))
		done, _ := latencies(ds)
		p50.add(pct(done, 50))
		p99.add(pct(done, 99))
		fmt.Fprintf(os.Stderr, "   %s%d replicas: %d events, %.0f batches, %.2f entries read/event, %.2f reads/batch, db %.0f µs/event, relays %.0f µs/event, p50 %.2f ms p99 %.2f ms\n",
			via, n, len(ds), batches1-batches0, (rows1-rows0)/events, (reads1-reads0)/(batches1-batches0), dbPerEvent, relayPerEvent, pct(done, 50), pct(done, 99))
	}
	return nil
}

// ---------------------------------------------------------------- idle

func (b *bench) idle(ctx context.Context) error {
	const s = "idle. Idle streams"
	n := b.pick(50000, 300)
	// The relay holds a socket per stream, and so does this process: both
	// are bound by RLIMIT_NOFILE, which raiseNofile could only raise to
	// the hard limit.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && uint64(n) > lim.Cur-2000 {
		fmt.Fprintf(os.Stderr, "   RLIMIT_NOFILE is %d: %d streams, not %d\n", lim.Cur, lim.Cur-2000, n)
		capped := fmt.Sprintf("%d streams, not %d: RLIMIT_NOFILE's hard limit is %d here", lim.Cur-2000, n, lim.Cur)
		n = int(lim.Cur - 2000)
		b.fig(s, "capped at "+thousands(float64(n))+" streams (RLIMIT_NOFILE)", "").limit = capped
	}
	label := thousands(float64(n))
	perConn := b.fig(s, "relay RSS per idle stream at "+label+" streams", "KiB")
	perConn.target, perConn.ok = "≤ 16 KiB", atMost(16)
	perConn.limit = connLimit
	after := b.fig(s, "relay RSS with "+label+" streams", "MiB")
	connect := b.fig(s, "connect "+label+" streams (200 at a time)", "s")
	last := b.fig(s, "SendMany to "+label+": last stream received", "ms")
	last.target, last.ok = "≤ 5 s", atMost(5000)
	last.limit = "The rows are stamped in serialized transactions of 1,000 (BatchSize) and tailed 1,000 per query; see scenario 4."
	median := b.fig(s, "SendMany to "+label+": median stream received", "ms")
	for range b.runs {
		r, err := b.idleFanOut(ctx, s, "i", n, b.dur(3*time.Second, 300*time.Millisecond), 120*time.Second,
			func(addr string, users []string) (*fleet, error) {
				return connectFleetFrom(ctx, addr, users, 200, 20000)
			})
		if err != nil {
			return err
		}
		connect.add(r.connect.Seconds())
		after.add(float64(r.rss1) / 1024)
		perConn.add(float64(r.rss1-r.rss0) / float64(n))
		last.add(pct(r.lat, 100))
		median.add(pct(r.lat, 50))
	}
	return nil
}

// connectFleetFrom is connectFleet with the streams spread over source
// addresses 127.0.0.2, .3, ..., perSource each: one source address has
// about 28,000 ephemeral ports towards one listening port.
func connectFleetFrom(ctx context.Context, addr string, users []string, conc, perSource int) (*fleet, error) {
	var next atomic.Int64
	local := func() net.Addr {
		i := next.Add(1) - 1
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i/int64(perSource)))}
	}
	return connectFleetWith(ctx, addr, users, conc, local)
}
