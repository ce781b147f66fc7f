package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/internal/pgserver"
)

// ---------------------------------------------------------------- 8

// dbCost measures what a notification costs the database, relay work
// included, against a bare insert: WAL bytes (pg_stat_wal) and the CPU
// time of every PostgreSQL process. Both are server-wide counters, so it
// runs on a throwaway cluster of its own (local binaries), where nothing
// else writes: on a shared server they would count everyone's work.
func (b *bench) dbCost(ctx context.Context) error {
	const s = "8. Database cost"
	sub, stop, err := b.onLocalCluster(ctx, 12)
	if err != nil {
		fmt.Fprintf(os.Stderr, "   skipped: %v\n", err)
		return nil
	}
	defer stop()
	pg, pool := sub.local, sub.pool
	// Autovacuum would add work of its own at random moments, and a
	// checkpoint full-page images of whatever pages come next.
	for _, q := range []string{"ALTER SYSTEM SET autovacuum = off", "ALTER SYSTEM SET checkpoint_timeout = '1h'",
		"ALTER SYSTEM SET max_wal_size = '10GB'", "SELECT pg_reload_conf()"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return err
		}
	}
	p, err := sub.startRelay(ctx, "", "adaptive")
	if err != nil {
		return err
	}
	defer p.stop()
	if _, err := pool.Exec(ctx, fmt.Sprintf(
		"CREATE TABLE %[1]s.bare (LIKE %[1]s.notifications INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)", p.schema)); err != nil {
		return err
	}
	const insert = `INSERT INTO %s (tenant_id, notifiable_type, notifiable_id, type, data, sse, channels)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text`
	tables := map[string]string{
		"notif": fmt.Sprintf(insert, p.schema+".notifications"),
		"bare":  fmt.Sprintf(insert, p.schema+".bare"),
	}
	var inserted atomic.Int64
	one := func(table string) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		var id string
		if err := tx.QueryRow(ctx, tables[table], "", "User", fmt.Sprintf("u%d", rand.IntN(1000)), "bench.cost",
			`{"n": 1}`, `{"n": 1}`, []string{"database", "sse"}).Scan(&id); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		if table == "notif" {
			inserted.Add(1)
		}
		return nil
	}
	n := b.pick(5000, 500)
	loads := []struct {
		label string
		run   func(table string) error
	}{
		{"1,000/s single-row tx", func(t string) error {
			return paced(ctx, 1000, time.Duration(n)*time.Millisecond, 8, func() error { return one(t) })
		}},
		{"4 writers closed-loop single-row tx", func(t string) error {
			var left atomic.Int64
			left.Store(int64(n))
			_, err := closedLoop(ctx, time.Hour, 4, func() error {
				if left.Add(-1) < 0 {
					return errStop
				}
				return one(t)
			})
			if err == errStop {
				err = nil
			}
			return err
		}},
	}
	measure := func(table string, run func(string) error) (cost, error) {
		before, err := costNow(ctx, pool, pg.DataDir, p.Pid())
		if err != nil {
			return cost{}, err
		}
		if err := run(table); err != nil {
			return cost{}, err
		}
		if table == "notif" {
			// Until the relay has logged every row.
			deadline := time.Now().Add(60 * time.Second)
			for {
				var logged int64
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+p.schema+".relay_log").Scan(&logged); err != nil {
					return cost{}, err
				}
				if logged == inserted.Load() {
					break
				}
				if time.Now().After(deadline) {
					return cost{}, fmt.Errorf("%d inserted, %d logged after 60 s", inserted.Load(), logged)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		after, err := costNow(ctx, pool, pg.DataDir, p.Pid())
		if err != nil {
			return cost{}, err
		}
		return after.minus(before, n), nil
	}
	// One checkpoint, then a warm-up of both tables: the pages the runs
	// touch first get their full-page image here, not in one of them.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	for _, t := range []string{"notif", "bare"} {
		if _, err := measure(t, loads[1].run); err != nil {
			return err
		}
	}
	for _, l := range loads {
		wal := b.fig(s, l.label+": WAL bytes per notification (anchor: bare insert)", "B")
		walRatio := b.fig(s, l.label+": WAL bytes, ratio to bare insert", "x")
		cpu := b.fig(s, l.label+": PostgreSQL CPU per notification (anchor: bare insert)", "µs")
		cpuRatio := b.fig(s, l.label+": PostgreSQL CPU, ratio to bare insert", "x")
		relayCPU := b.fig(s, l.label+": relay process CPU per notification", "µs")
		if wal.anchor == nil {
			wal.anchor, cpu.anchor = anchorFig("B"), anchorFig("µs")
		}
		for run := range b.runs {
			order := []string{"notif", "bare"}
			if run%2 == 1 {
				order = []string{"bare", "notif"}
			}
			res := map[string]cost{}
			for _, t := range order {
				c, err := measure(t, l.run)
				if err != nil {
					return err
				}
				res[t] = c
			}
			nc, bc := res["notif"], res["bare"]
			wal.add(nc.walBytes)
			wal.anchor.add(bc.walBytes)
			walRatio.add(nc.walBytes / bc.walBytes)
			cpu.add(nc.pgCPU)
			cpu.anchor.add(bc.pgCPU)
			cpuRatio.add(nc.pgCPU / bc.pgCPU)
			relayCPU.add(nc.relayCPU)
			fmt.Fprintf(os.Stderr, "   %s: WAL %.0f B (bare %.0f B), PG CPU %.0f µs (bare %.0f µs), relay CPU %.0f µs per notification\n",
				l.label, nc.walBytes, bc.walBytes, nc.pgCPU, bc.pgCPU, nc.relayCPU)
		}
	}
	return nil
}

var errStop = fmt.Errorf("stop")

// cost is a sample of the counters, or (from minus) their change per row.
type cost struct {
	walBytes        float64
	pgCPU, relayCPU float64 // µs
}

func (c cost) minus(o cost, n int) cost {
	f := float64(n)
	return cost{
		walBytes: (c.walBytes - o.walBytes) / f,
		pgCPU:    (c.pgCPU - o.pgCPU) / f,
		relayCPU: (c.relayCPU - o.relayCPU) / f,
	}
}

// costNow reads the WAL insert position (pg_stat_wal lags: a backend
// reports to it at most once a second), the CPU time of the postmaster and its
// children (ended ones included, through the postmaster's cutime), and
// the relay's.
func costNow(ctx context.Context, pool *pgxpool.Pool, dataDir string, relayPid int) (cost, error) {
	var c cost
	if err := pool.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8").Scan(&c.walBytes); err != nil {
		return c, err
	}
	pidFile, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return c, err
	}
	postmaster, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0]))
	if err != nil {
		return c, err
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range procs {
		st, err := procStat(f)
		if err != nil {
			continue
		}
		switch {
		case st.pid == postmaster:
			c.pgCPU += st.utime + st.stime + st.cutime + st.cstime
		case st.ppid == postmaster:
			c.pgCPU += st.utime + st.stime
		case st.pid == relayPid:
			c.relayCPU += st.utime + st.stime
		}
	}
	return c, nil
}

type stat struct {
	pid, ppid                    int
	utime, stime, cutime, cstime float64 // µs
}

// procStat parses /proc/<pid>/stat: the fields after the command name,
// which is in parentheses and may hold spaces.
func procStat(path string) (stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return stat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("%s: no command", path)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(s[:strings.IndexByte(s, '(')]))
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return stat{}, fmt.Errorf("%s: short", path)
	}
	// f[0] is the state; ppid is field 4, utime..cstime fields 14-17.
	num := func(k int) float64 {
		v, _ := strconv.ParseFloat(f[k-3], 64)
		return v * 1e6 / clockTicks
	}
	ppid, _ := strconv.Atoi(f[1])
	return stat{pid: pid, ppid: ppid, utime: num(14), stime: num(15), cutime: num(16), cstime: num(17)}, nil
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

// onLocalCluster starts a throwaway cluster of the scenario's own (local
// binaries; settings as for pgserver.StartLocal) and returns a bench on it,
// with a pool of maxConns; stop stops both.
func (b *bench) onLocalCluster(ctx context.Context, maxConns int32, settings ...string) (sub *bench, stop func(), err error) {
	pg, err := pgserver.StartLocal(ctx, settings...)
	if err != nil {
		return nil, nil, fmt.Errorf("no local PostgreSQL binaries for a cluster of its own: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(pg.URL)
	if err != nil {
		_ = pg.Stop()
		return nil, nil, err
	}
	pcfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		_ = pg.Stop()
		return nil, nil, err
	}
	sub = &bench{dbURL: pg.URL, relayBin: b.relayBin, pool: pool, smoke: b.smoke, runs: b.runs, local: pg}
	return sub, func() { pool.Close(); _ = pg.Stop() }, nil
}
