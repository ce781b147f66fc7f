package integration

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
)

// pruneArgs is the worker's prune job as River stores it (kind
// bellhop_prune, queue bellhop): the tests insert one to prune now. The
// worker does not export its job types; these are their wire names.
type pruneArgs struct{}

func (pruneArgs) Kind() string { return "bellhop_prune" }

func (pruneArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "bellhop"} }

// listenerPIDs are the backend pids of the LISTEN connections on the
// schema's relayed and pending channels, in that order (0 if none), as
// PostgreSQL shows them: the relay does not export them.
func (b *testBundle) listenerPIDs(t *testing.T) []uint32 {
	t.Helper()
	rows, err := b.db.Pool.Query(context.Background(),
		"SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'listen %'")
	require.NoError(t, err)
	type conn struct {
		PID   int32
		Query string
	}
	conns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[conn])
	require.NoError(t, err)
	sort.Slice(conns, func(i, j int) bool { return conns[i].PID < conns[j].PID })
	pids := []uint32{0, 0}
	// The hub's connection listens on the preferences channel too, after or
	// before the relayed one (pgxlisten ranges over a map): its last query
	// is either LISTEN.
	for i, channels := range [][]string{
		{b.db.Schema + "_relayed", b.db.Schema + "_preferences"},
		{b.db.Schema + "_pending"},
	} {
		for _, channel := range channels {
			quoted := pgx.Identifier{channel}.Sanitize()
			for _, c := range conns {
				if strings.Contains(c.Query, quoted) || strings.HasSuffix(strings.TrimRight(c.Query, "; "), " "+channel) {
					pids[i] = uint32(c.PID)
				}
			}
		}
	}
	return pids
}
