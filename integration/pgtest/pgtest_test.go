package pgtest

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

// Tests that take schemas never hold more slots at once than the server
// has room for, however many run in parallel; a subtest uses its parent's.
func TestSlotsBoundConcurrentTests(t *testing.T) {
	URL(t)
	require.GreaterOrEqual(t, nSlots, 1)
	// As on a small server, whatever this one's max_connections.
	defer func(n int) { nSlots = n }(nSlots)
	nSlots = 2
	var running, peak atomic.Int32
	t.Run("group", func(t *testing.T) {
		for range 8 {
			t.Run("schema", func(t *testing.T) {
				t.Parallel()
				db := New(t)
				n := running.Add(1)
				defer running.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				var one int
				require.NoError(t, db.Pool.QueryRow(t.Context(), "SELECT 1").Scan(&one))
				time.Sleep(100 * time.Millisecond)
			})
		}
	})
	require.LessOrEqual(t, int(peak.Load()), nSlots, "tests holding a slot at once")
	t.Logf("%d slots; at most %d tests held one at once", nSlots, peak.Load())

	t.Run("nested", func(t *testing.T) {
		New(t)
		t.Run("inner", func(t *testing.T) { New(t) }) // would wait forever with one slot
	})
}
