package integration

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/internal/relayproc"
)

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

// rssKiB is a relay process's resident set size.
func rssKiB(t *testing.T, p *relayproc.Proc) int64 {
	t.Helper()
	n, err := p.RSSKiB()
	require.NoError(t, err)
	return n
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
