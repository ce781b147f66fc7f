package loadgen

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every op runs once, none before its slot on the schedule.
func TestPacedKeepsTheSchedule(t *testing.T) {
	var mu sync.Mutex
	runs := map[int]int{}
	late := map[int]time.Duration{}
	start := time.Now()
	n, err := Paced(context.Background(), 200, 100*time.Millisecond, 4, func(_ context.Context, i int) error {
		mu.Lock()
		defer mu.Unlock()
		runs[i]++
		late[i] = time.Since(start) - time.Duration(i)*5*time.Millisecond
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 20, n)
	require.Len(t, runs, 20)
	for i := range 20 {
		require.Equal(t, 1, runs[i], "op %d", i)
		require.GreaterOrEqual(t, late[i], time.Duration(0), "op %d ran before its slot", i)
	}
}

// The first error stops the schedule and is returned.
func TestPacedStopsAtAnError(t *testing.T) {
	boom := errors.New("boom")
	var mu sync.Mutex
	ran := 0
	_, err := Paced(context.Background(), 1000, time.Second, 2, func(_ context.Context, i int) error {
		mu.Lock()
		ran++
		mu.Unlock()
		if i == 3 {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	mu.Lock()
	defer mu.Unlock()
	require.Less(t, ran, 1000)
}
