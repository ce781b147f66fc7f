package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestUpIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t) // already migrated once
	var before int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+db.Table("goose_db_version")).Scan(&before))

	require.NoError(t, migrations.Up(ctx, db.Pool, db.Schema))

	var after int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+db.Table("goose_db_version")).Scan(&after))
	require.Equal(t, before, after)
	var riverTables int
	require.NoError(t, db.Pool.QueryRow(ctx,
		"SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename IN ('river_job', 'river_leader', 'river_queue')", db.Schema).Scan(&riverTables))
	require.Equal(t, 3, riverTables, "River's tables live in the same schema")
}

func TestUpConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t) // a pool and a schema to drop; migrate a fresh one beside it
	schema := db.Schema + "_c"
	t.Cleanup(func() { _, _ = db.Pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE") })

	var g errgroup.Group
	for range 4 {
		g.Go(func() error { return migrations.Up(ctx, db.Pool, schema) })
	}
	require.NoError(t, g.Wait())

	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, "notifications"}.Sanitize()).Scan(&n))
	require.Zero(t, n)
}

func TestUpRejectsBadSchemaNames(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	for _, bad := range []string{"", "Upper", "1abc", `x"; DROP SCHEMA public; --`, "a-b"} {
		require.Error(t, migrations.Up(context.Background(), db.Pool, bad), bad)
	}
}
