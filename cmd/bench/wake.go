package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// wakeModes measures BELLHOP_WAKE_MODE=logical against adaptive (the
// default): scenario 1's probe (1,000 streams, one-row transactions at 100/s
// and 1,000/s) on a cluster of its own with wal_level = logical (which the
// logical mode needs) and fsync on, the two modes alternating run by run,
// with PostgreSQL's CPU (its walsender included) and the relay's per
// notification over each measured stretch.
func (b *bench) wakeModes(ctx context.Context) error {
	const s = "9. Wake modes"
	sub, stop, err := b.onLocalCluster(ctx, 24, "wal_level=logical", "fsync=on", "max_connections=100")
	if err != nil {
		return err
	}
	defer stop()

	d := b.dur(5*time.Second, 500*time.Millisecond)
	for range b.runs {
		for _, mode := range []string{"adaptive", "logical"} {
			if err := sub.wakeRun(ctx, b, s, sub.local.DataDir, mode, d); err != nil {
				return fmt.Errorf("%s: %w", mode, err)
			}
		}
	}
	return nil
}

// wakeRun is one run of wakeModes in mode, its figures recorded in into.
func (b *bench) wakeRun(ctx context.Context, into *bench, s, dataDir, mode string, d time.Duration) error {
	p, ob, users, f, err := b.relayWithStreamsIn(ctx, mode)
	if err != nil {
		return err
	}
	defer p.stop()
	defer f.close()
	if mode == "logical" {
		// Its stream signals once as it starts.
		deadline := time.Now().Add(30 * time.Second)
		for metricSum([]*relayProc{p}, "bellhop_decoded_commits_total") < 1 {
			if time.Now().After(deadline) {
				return fmt.Errorf("the relay's logical decoding stream did not start: %s", p.warnings())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, rate := range []int{100, 1000} {
		if _, err := b.pacedRun(ctx, s, ob, users, f, rate, b.dur(500*time.Millisecond, 200*time.Millisecond)); err != nil { // warm-up
			return err
		}
		before, err := costNow(ctx, b.pool, dataDir, p.Pid())
		if err != nil {
			return err
		}
		ds, err := b.pacedRun(ctx, s, ob, users, f, rate, d)
		if err != nil {
			return err
		}
		after, err := costNow(ctx, b.pool, dataDir, p.Pid())
		if err != nil {
			return err
		}
		per := after.minus(before, len(ds))
		done, sent := latencies(ds)
		name := func(x string) string { return fmt.Sprintf("%s, %s/s: %s", mode, thousands(float64(rate)), x) }
		into.fig(s, name("p50, from COMMIT return"), "ms").add(pct(done, 50))
		into.fig(s, name("p99, from COMMIT return"), "ms").add(pct(done, 99))
		into.fig(s, name("p50, from COMMIT sent"), "ms").add(pct(sent, 50))
		into.fig(s, name("PostgreSQL CPU per notification"), "µs").add(per.pgCPU)
		into.fig(s, name("relay process CPU per notification"), "µs").add(per.relayCPU)
		fmt.Fprintf(os.Stderr, "   %s %d/s: p50 %.2f ms (from COMMIT sent %.2f ms), PG CPU %.0f µs, relay CPU %.0f µs per notification\n",
			mode, rate, pct(done, 50), pct(sent, 50), per.pgCPU, per.relayCPU)
	}
	into.problems = append(into.problems, b.problems...)
	b.problems = nil
	return nil
}
