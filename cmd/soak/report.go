package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// tally is what the streams got so far, against the ledger.
type tally struct {
	delivered, late, dup, disorder, notCommitted, reconnects int
	problems                                                 []string
}

func (s *soak) tally(lateAfter time.Duration) tally {
	var t tally
	seen := map[string]map[string]int{}
	for _, c := range s.clients {
		m := map[string]int{}
		for id, n := range c.Counts() {
			m[id] = n.N
			t.delivered++
			if n.N > 1 {
				t.dup += n.N - 1
			}
		}
		st := c.Stats()
		t.disorder += st.Disorder
		t.reconnects += max(st.Connects-1, 0)
		t.problems = append(t.problems, c.problems()...)
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
		if kib, err := p.RSSKiB(); err == nil {
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
			if len(c.Counts()) >= want[c.to] {
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
		disorder += c.Stats().Disorder
		problems = append(problems, c.problems()...)
		seen := c.Counts()
		for id, n := range seen {
			if n.N > 1 {
				dup += n.N - 1
			}
			if l.RolledBack[id] || l.Failed[id] {
				notCommitted++
			}
			if _, in := truth[id]; !in {
				if _, unsure := l.Uncertain[id]; unsure {
					notCommitted++
				}
			}
			if r, ok := truth[id]; ok && (r.to != c.to || strconv.FormatInt(r.seq, 10) != n.ID) {
				wrongSeq++
			}
		}
		for id, r := range truth {
			if r.to == c.to && seen[id].N == 0 {
				lost++
			}
		}
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
