package metrics

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Scrapes at any rate read the backlog at most once per BacklogFresh: a
// public /metrics must not let a client run the backlog query at will.
func TestBacklogReadAtMostOncePerFresh(t *testing.T) {
	var reads atomic.Int64
	m := New()
	m.RegisterBacklog(func(context.Context) (int64, time.Duration, error) {
		return reads.Add(1), time.Second, nil
	}, slog.New(slog.DiscardHandler))
	gauge := func() float64 {
		families, err := m.Registry.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() == "bellhop_backlog_rows" {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no bellhop_backlog_rows")
		return 0
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { require.Equal(t, 1.0, gauge()) })
	}
	wg.Wait()
	require.EqualValues(t, 1, reads.Load(), "twenty scrapes at once, one reading")
	time.Sleep(BacklogFresh)
	require.Equal(t, 2.0, gauge(), "a reading older than BacklogFresh is read again")
}
