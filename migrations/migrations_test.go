package migrations_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// dropSchema drops a schema a test migrated beside its own, the schema's
// writer role and its publication.
func dropSchema(db *pgtest.DB, schema string) {
	ctx := context.Background()
	_, _ = db.Pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	_, _ = db.Pool.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{migrations.WriterRole(schema)}.Sanitize())
	_, _ = db.Pool.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{schema + "_wake"}.Sanitize())
}

// Migration 00010 creates the logical wake mode's publication, which takes
// CREATE on the database. A role without it (applying the files with a
// tool of its own, in a schema made for it) gets a notice with the
// statement to run instead of a failed migration; with it, the
// publication carries the notifications' inserts and updates.
func TestWakePublicationWithoutCreateOnDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	pub := db.Schema + "_wake"
	var inserts, updates, deletes bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT pubinsert, pubupdate, pubdelete FROM pg_publication WHERE pubname = $1", pub).
		Scan(&inserts, &updates, &deletes))
	require.Equal(t, []bool{true, true, false}, []bool{inserts, updates, deletes})
	var tables int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = 'notifications'",
		pub, db.Schema).Scan(&tables))
	require.Equal(t, 1, tables)

	owner := db.Schema + "_nocreate"
	schema := pgx.Identifier{db.Schema}.Sanitize()
	for _, q := range []string{
		"DROP PUBLICATION " + pgx.Identifier{pub}.Sanitize(),
		"CREATE ROLE " + owner + " LOGIN",
		"ALTER SCHEMA " + schema + " OWNER TO " + owner,
		"ALTER TABLE " + schema + ".notifications OWNER TO " + owner,
	} {
		_, err := db.Pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	t.Cleanup(func() {
		for _, q := range []string{"REASSIGN OWNED BY " + owner + " TO CURRENT_USER", "DROP ROLE " + owner} {
			_, err := db.Pool.Exec(context.Background(), q)
			require.NoError(t, err, q)
		}
	})
	cfg := db.Pool.Config().ConnConfig.Copy()
	cfg.User, cfg.Password = owner, ""
	cfg.RuntimeParams["search_path"] = db.Schema
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	sql, err := fs.ReadFile(migrations.FS(), "00010_wake_publication.sql")
	require.NoError(t, err)
	up, _, ok := strings.Cut(strings.SplitN(string(sql), "-- +goose Up", 2)[1], "-- +goose Down")
	require.True(t, ok)
	up = strings.NewReplacer("-- +goose StatementBegin", "", "-- +goose StatementEnd", "").Replace(up)
	_, err = conn.Exec(ctx, up)
	require.NoError(t, err)
	require.Len(t, notices, 1)
	require.Contains(t, notices[0], "CREATE PUBLICATION "+pub+" FOR TABLE "+db.Schema+".notifications")
	var exists bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", pub).Scan(&exists))
	require.False(t, exists)
}

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
	t.Cleanup(func() { dropSchema(db, schema) })

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

// A schema at 00001 (the relay stamped rows with relay_seq) upgrades in
// place: stamped rows keep their event ids in the relay log, rows still
// pending stay pending, and the head does not move back.
func TestUpgradeFromRelaySeq(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_up"
	t.Cleanup(func() { dropSchema(db, schema) })
	_, err := db.Pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)

	cfg := db.Pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["search_path"] = schema
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS(), goose.WithDisableGlobalRegistry(true))
	require.NoError(t, err)
	_, err = provider.UpTo(ctx, 1)
	require.NoError(t, err)

	table := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	var stamped, pending []string
	for i := range 5 {
		var id string
		seq := any(nil)
		if i < 3 {
			seq = i + 1
		}
		require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO "+table("notifications")+
			" (notifiable_id, type, relay_seq) VALUES ('u', 'old', $1) RETURNING id::text", seq).Scan(&id))
		if i < 3 {
			stamped = append(stamped, id)
		} else {
			pending = append(pending, id)
		}
	}
	_, err = db.Pool.Exec(ctx, "UPDATE "+table("relay_state")+" SET last_seq = 3")
	require.NoError(t, err)

	require.NoError(t, migrations.Up(ctx, db.Pool, schema))

	rows, err := db.Pool.Query(ctx, "SELECT id::text FROM "+table("relay_log")+" ORDER BY seq")
	require.NoError(t, err)
	logged, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, stamped, logged, "stamped rows keep their seqs, in order")
	var seqs []int64
	rows, err = db.Pool.Query(ctx, "SELECT seq FROM "+table("relay_log")+" ORDER BY seq")
	require.NoError(t, err)
	seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3}, seqs)

	_, err = db.Pool.Exec(ctx, "INSERT INTO "+table("notifications")+" (notifiable_id, type) VALUES ('u', 'new')")
	require.NoError(t, err)
	rows, err = db.Pool.Query(ctx, "SELECT type, count(*) FROM "+table("relay_pending")+" GROUP BY type ORDER BY type")
	require.NoError(t, err)
	type count struct {
		Type string
		N    int
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[count])
	require.NoError(t, err)
	require.Equal(t, []count{{"new", 1}, {"old", len(pending)}}, got, "pending rows stay pending; stamped ones are not")
	var head int64
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT last_seq FROM "+table("relay_state")).Scan(&head))
	require.EqualValues(t, 3, head)
}

// The README's procedure after restoring a logical dump into another
// cluster: rows whose xids came from the old cluster count as relayed, and
// each row's latest log entry stays its current one.
func TestRestoreProcedureForForeignXids(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	table := db.Table
	// Rows as a restore brings them: xids from another cluster, here far
	// ahead of this one's, and a log entry for one of them.
	var id string
	require.NoError(t, db.Pool.QueryRow(ctx, "WITH restored AS (INSERT INTO "+table("notifications")+
		" (notifiable_id, type, xid) SELECT 'u', 'restored', (pg_current_xact_id()::text::numeric + 1000000 + g)::text::xid8"+
		" FROM generate_series(1, 3) AS g RETURNING id) SELECT min(id::text) FROM restored").Scan(&id))
	_, err := db.Pool.Exec(ctx, "INSERT INTO "+table("relay_log")+" (seq, id, xid, tenant_id, notifiable_type, notifiable_id)"+
		" SELECT 7, id, xid, tenant_id, notifiable_type, notifiable_id FROM "+table("notifications")+" WHERE id = $1", id)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "UPDATE "+table("relay_state")+" SET seen = pg_current_snapshot(), last_seq = 7")
	require.NoError(t, err)
	pending := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+table("relay_pending")).Scan(&n))
		return n
	}
	require.Equal(t, 3, pending(), "foreign xids look like transactions still to come")

	_, err = db.Pool.Exec(ctx, strings.ReplaceAll(`BEGIN;
UPDATE bellhop.relay_log AS l SET xid = '0'
FROM bellhop.notifications AS n WHERE n.id = l.id AND n.xid = l.xid;
UPDATE bellhop.notifications SET xid = '0';
UPDATE bellhop.relay_state SET seen = pg_current_snapshot(), next = NULL;
COMMIT;`, "bellhop.", db.Schema+"."))
	require.NoError(t, err)

	require.Zero(t, pending())
	var current int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+table("relay_log")+" AS l JOIN "+table("notifications")+
		" AS n ON n.id = l.id AND n.xid = l.xid").Scan(&current))
	require.Equal(t, 1, current, "the restored log entry is still its row's current one")
}

// upTo migrates a fresh schema beside db's to version, dropped (with its
// writer role) when t ends, and returns a goose provider for it.
func upTo(t *testing.T, db *pgtest.DB, schema string, version int64) *goose.Provider {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() { dropSchema(db, schema) })
	_, err := db.Pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	cfg := db.Pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["search_path"] = schema
	sqlDB := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { sqlDB.Close() })
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS(), goose.WithDisableGlobalRegistry(true))
	require.NoError(t, err)
	_, err = provider.UpTo(ctx, version)
	require.NoError(t, err)
	return provider
}

// A schema at 00002 upgrades to the writers' limits: an sse that breaks
// them is cleared without pushing the row again (its xid stays), other
// rows are untouched, the wake trigger reads bellhop.no_wake, and the
// writer role gets its grants. The Down section goes back.
func TestUpgradeToWriterLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_w"
	provider := upTo(t, db, schema, 2)
	table := pgx.Identifier{schema, "notifications"}.Sanitize()

	insert := func(sse string) (id, xid string) {
		require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO "+table+" (notifiable_id, type, sse) VALUES ('u', 'old', $1::jsonb) RETURNING id::text, xid::text",
			sse).Scan(&id, &xid))
		return id, xid
	}
	big := `{"blob": "` + strings.Repeat("x", 5000) + `"}`
	okID, _ := insert(`{"n": 1}`)
	bigID, bigXid := insert(big)
	arrayID, _ := insert(`[1, 2]`)

	require.NoError(t, migrations.Up(ctx, db.Pool, schema))

	var sse map[string]any
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT sse FROM "+table+" WHERE id = $1", okID).Scan(&sse))
	require.Equal(t, map[string]any{"n": float64(1)}, sse)
	var cleared int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id IN ($1, $2) AND sse IS NULL", bigID, arrayID).Scan(&cleared))
	require.Equal(t, 2, cleared)
	var xid, op string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT xid::text, op FROM "+table+" WHERE id = $1", bigID).Scan(&xid, &op))
	require.Equal(t, bigXid, xid, "cleared quietly: not a change to push")
	require.Equal(t, "created", op)

	_, err := db.Pool.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type, sse) VALUES ('u', 'new', $1::jsonb)", big)
	require.ErrorContains(t, err, "notifications_sse_max_4kib")
	var trigger string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'notifications_wake' AND tgrelid = $1::regclass",
		schema+".notifications").Scan(&trigger))
	require.Contains(t, trigger, "bellhop.no_wake")
	var canInsert, canReadLog bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT has_any_column_privilege($1, $2, 'INSERT'), has_table_privilege($1, $3, 'SELECT')",
		migrations.WriterRole(schema), schema+".notifications", schema+".relay_log").Scan(&canInsert, &canReadLog))
	require.True(t, canInsert)
	require.False(t, canReadLog)

	_, err = provider.DownTo(ctx, 2)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type, sse) VALUES ('u', 'new', $1::jsonb)", big)
	require.NoError(t, err, "down: no limits")
	_, err = db.Pool.Exec(ctx, "DELETE FROM "+table+" WHERE type = 'new'")
	require.NoError(t, err)
	require.NoError(t, migrations.Up(ctx, db.Pool, schema), "and up again")
}

// Rows the migration cannot fix stop it, with a message that says how to
// find them.
func TestUpgradeToWriterLimitsStopsOnOversizedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_x"
	upTo(t, db, schema, 2)
	_, err := db.Pool.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "notifications"}.Sanitize()+
		" (notifiable_id, type, data) VALUES ('u', 'huge', jsonb_build_object('blob', repeat('x', 70000)))")
	require.NoError(t, err)

	err = migrations.Up(ctx, db.Pool, schema)
	require.ErrorContains(t, err, "1 notifications are over the new limits")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Contains(t, pgErr.Hint, "SELECT id FROM notifications WHERE octet_length(data::text) > 65536")
}

// Creating the writer role needs CREATEROLE: without it the migration
// says what to do, and with the role created beforehand it only grants.
func TestUpWithoutCreateRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	owner := db.Schema + "_owner"
	schema := db.Schema + "_o"
	role := migrations.WriterRole(schema)
	var database string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&database))
	for _, q := range []string{
		"CREATE ROLE " + owner + " LOGIN",
		"GRANT CREATE ON DATABASE " + pgx.Identifier{database}.Sanitize() + " TO " + owner,
	} {
		_, err := db.Pool.Exec(ctx, q)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		dropSchema(db, schema)
		for _, q := range []string{
			"REVOKE CREATE ON DATABASE " + pgx.Identifier{database}.Sanitize() + " FROM " + owner,
			"DROP OWNED BY " + owner,
			"DROP ROLE " + owner,
		} {
			_, err := db.Pool.Exec(context.Background(), q)
			require.NoError(t, err, q)
		}
	})
	cfg := db.Pool.Config().Copy()
	cfg.ConnConfig.User = owner
	cfg.ConnConfig.Password = ""
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()

	err = migrations.Up(ctx, pool, schema)
	require.ErrorContains(t, err, "CREATEROLE")
	require.ErrorContains(t, err, "CREATE ROLE "+role+" NOLOGIN")

	_, err = db.Pool.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN")
	require.NoError(t, err)
	require.NoError(t, migrations.Up(ctx, pool, schema))
	var canInsert bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT has_any_column_privilege($1, $2, 'INSERT')", role, schema+".notifications").Scan(&canInsert))
	require.True(t, canInsert)
}

// A schema at 00002 (one global prune horizon) upgrades in place: the
// global horizon stays as every recipient's floor. Going back down raises
// it over every recipient's horizon, so the old code replays across no gap.
func TestUpgradeToRecipientHorizons(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_up"
	provider := upTo(t, db, schema, 2)

	table := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	_, err := db.Pool.Exec(ctx, "UPDATE "+table("relay_state")+" SET pruned_seq = 70, last_seq = 100")
	require.NoError(t, err)

	require.NoError(t, migrations.Up(ctx, db.Pool, schema))

	var floor int64
	var horizons int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT pruned_seq, (SELECT count(*) FROM "+table("relay_horizon")+") FROM "+
		table("relay_state")).Scan(&floor, &horizons))
	require.EqualValues(t, 70, floor, "what was pruned for everyone stays so")
	require.Zero(t, horizons)

	_, err = db.Pool.Exec(ctx, "INSERT INTO "+table("relay_horizon")+" (notifiable_type, tenant_id, notifiable_id, seq)"+
		" VALUES ('User', '', 'a', 90), ('User', '', 'b', 60)")
	require.NoError(t, err)
	_, err = provider.DownTo(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT pruned_seq FROM "+table("relay_state")).Scan(&floor))
	require.EqualValues(t, 90, floor, "the highest horizon of anyone's")
	var left bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".relay_horizon").Scan(&left))
	require.False(t, left)
}

// A schema at 00002 upgrades to record the server the head was last moved
// on: the one it is upgraded on, so the head does not jump for the upgrade;
// down again, the column goes.
func TestUpgradeRecordsTheServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_ep"
	provider := upTo(t, db, schema, 2)
	state := pgx.Identifier{schema, "relay_state"}.Sanitize()
	_, err := db.Pool.Exec(ctx, "UPDATE "+state+" SET last_seq = 42")
	require.NoError(t, err)

	_, err = provider.UpTo(ctx, 4)
	require.NoError(t, err)
	var head int64
	var current bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT last_seq, server_started = pg_postmaster_start_time() FROM "+state).Scan(&head, &current))
	require.EqualValues(t, 42, head)
	require.True(t, current, "the server it was upgraded on")

	_, err = provider.DownTo(ctx, 2)
	require.NoError(t, err)
	var cols int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1"+
		" AND table_name = 'relay_state' AND column_name = 'server_started'", schema).Scan(&cols))
	require.Zero(t, cols)
}

// A schema at 00005 upgrades to the send functions (as the latest migration left them,
// with critical and escalate_after): they write into the
// schema they were created in (search_path pinned to it, whatever the
// caller's), the writer role may call them and PUBLIC may not; down again,
// they go, and up again they come back.
func TestUpgradeToSendFunction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_sf"
	provider := upTo(t, db, schema, 5)
	table := pgx.Identifier{schema, "notifications"}.Sanitize()
	send := pgx.Identifier{schema, "send"}.Sanitize()
	_, err := db.Pool.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type, database_key) VALUES ('42', 'old', 'k:1')")
	require.NoError(t, err)

	require.NoError(t, migrations.Up(ctx, db.Pool, schema))

	var id string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'new', database_key => 'k:1')::text").Scan(&id))
	var kind string
	var rows int
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT max(type), count(*) FROM "+table).Scan(&kind, &rows))
	require.Equal(t, []any{"new", 1}, []any{kind, rows}, "the existing row, upserted")
	var config []string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT proconfig FROM pg_proc WHERE oid = $1::regprocedure",
		schema+".send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz)").Scan(&config))
	require.Equal(t, []string{"search_path=" + schema + ", pg_temp"}, config)
	var writer, public bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT has_function_privilege($1, $2, 'EXECUTE'), has_function_privilege('public', $2, 'EXECUTE')",
		migrations.WriterRole(schema), schema+".send_many(text[], text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz)").Scan(&writer, &public))
	require.True(t, writer)
	require.False(t, public)

	_, err = provider.DownTo(ctx, 5)
	require.NoError(t, err)
	var left bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT to_regproc($1) IS NOT NULL", schema+".send").Scan(&left))
	require.False(t, left)
	require.NoError(t, migrations.Up(ctx, db.Pool, schema), "and up again")
}

// A schema at 00006 upgrades to the traceparent column: the send functions
// take it by name (old calls still work), the writer role keeps EXECUTE
// across the new signature, the table and the functions refuse what is not
// a W3C traceparent, a read clears it, and the Down section goes back.
func TestUpgradeToTraceparent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_tp"
	provider := upTo(t, db, schema, 6)
	role := migrations.WriterRole(schema)
	_, err := db.Pool.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN")
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "GRANT EXECUTE ON FUNCTION "+schema+".send(text, text, jsonb, text, text, jsonb, text, text[]) TO "+role)
	require.NoError(t, err)
	_, err = provider.UpTo(ctx, 7)
	require.NoError(t, err)
	var execute bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT has_function_privilege($1, $2, 'EXECUTE')",
		role, schema+".send(text, text, jsonb, text, text, jsonb, text, text[], text)").Scan(&execute))
	require.True(t, execute, "the grant carried over to the new signature before writer.sql runs")

	require.NoError(t, migrations.Up(ctx, db.Pool, schema))
	table := pgx.Identifier{schema, "notifications"}.Sanitize()
	send := pgx.Identifier{schema, "send"}.Sanitize()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var id string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'a', traceparent => $1)::text", tp).Scan(&id))
	var got *string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT traceparent FROM "+table+" WHERE id = $1", id).Scan(&got))
	require.Equal(t, tp, *got)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'b')::text").Scan(&id), "a call without it")

	for _, bad := range []string{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", tp + "-x"} {
		_, err := db.Pool.Exec(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'a', traceparent => $1)", bad)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, bad)
		require.Equal(t, "22023", pgErr.Code, bad)
		require.Contains(t, pgErr.Message, "traceparent", bad)
		_, err = db.Pool.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type, traceparent) VALUES ('42', 'a', $1)", bad)
		require.ErrorContains(t, err, "notifications_traceparent_w3c", bad)
	}

	_, err = db.Pool.Exec(ctx, "UPDATE "+table+" SET read_at = now() WHERE traceparent IS NOT NULL")
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE traceparent IS NOT NULL)::text FROM "+table).Scan(&id))
	require.Equal(t, "0", id, "a read is not part of the sender's trace")

	_, err = provider.DownTo(ctx, 6)
	require.NoError(t, err)
	var left bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT to_regprocedure($1) IS NOT NULL", schema+".send(text, text, jsonb, text, text, jsonb, text, text[])").Scan(&left))
	require.True(t, left, "the old signature is back")
	require.NoError(t, migrations.Up(ctx, db.Pool, schema), "and up again")
}

// A schema at 00007 upgrades to preferences and the webhook channel: an
// existing row is not critical and has no escalation, a row may go to the
// webhook channel, the send functions take the new arguments (the writer
// role may call them), preferences exist; down again, a webhook-only row
// stops it, and once removed the old functions come back.
func TestUpgradeToPreferencesAndWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_pw"
	provider := upTo(t, db, schema, 7)
	table := pgx.Identifier{schema, "notifications"}.Sanitize()
	send := pgx.Identifier{schema, "send"}.Sanitize()
	var oldID string
	require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO "+table+" (notifiable_id, type) VALUES ('42', 'old') RETURNING id::text").Scan(&oldID))
	_, err := db.Pool.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type, channels) VALUES ('42', 'hook', '{webhook}')")
	require.ErrorContains(t, err, "notifications_channels_valid", "before: no webhook channel")

	require.NoError(t, migrations.Up(ctx, db.Pool, schema))

	var critical bool
	var escalate *time.Duration
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT critical, escalate_after FROM "+table+" WHERE id = $1", oldID).Scan(&critical, &escalate))
	require.False(t, critical)
	require.Nil(t, escalate)
	_, err = db.Pool.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type, channels) VALUES ('42', 'hook', '{webhook}')")
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type, escalate_after) VALUES ('42', 'x', '-1 minute')")
	require.ErrorContains(t, err, "notifications_escalate_after_positive")
	var id string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'new', channels => '{webhook,database}', critical => true, escalate_after => '5 minutes')::text").Scan(&id))
	var channels []string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT channels, critical, escalate_after FROM "+table+" WHERE id = $1", id).Scan(&channels, &critical, &escalate))
	require.Equal(t, []string{"database", "webhook"}, channels)
	require.True(t, critical)
	require.Equal(t, 5*time.Minute, *escalate)
	_, err = db.Pool.Exec(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'new', escalate_after => '0')")
	require.ErrorContains(t, err, "escalate_after must be positive")
	var writer bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT has_function_privilege($1, $2, 'EXECUTE') AND has_column_privilege($1, $3, 'critical', 'INSERT')",
		migrations.WriterRole(schema), schema+".send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz)", schema+".notifications").Scan(&writer))
	require.True(t, writer)
	_, err = db.Pool.Exec(ctx, "INSERT INTO "+pgx.Identifier{schema, "preferences"}.Sanitize()+" (tenant_id, notifiable_type, notifiable_id, type, channel, enabled) VALUES ('', 'User', '42', '*', 'sse', false)")
	require.NoError(t, err)

	_, err = provider.DownTo(ctx, 7)
	require.ErrorContains(t, err, "webhook channel only")
	_, err = db.Pool.Exec(ctx, "DELETE FROM "+table+" WHERE channels = '{webhook}'")
	require.NoError(t, err)
	_, err = provider.DownTo(ctx, 7)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT channels FROM "+table+" WHERE id = $1", id).Scan(&channels))
	require.Equal(t, []string{"database"}, channels)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'old again')::text").Scan(&id))
	require.NoError(t, migrations.Up(ctx, db.Pool, schema), "and up again")
}

// A schema at 00008 upgrades to the inbox states: existing rows are
// unseen, unarchived and never expire; a call of 00008's send, by name,
// still works and can now pass expires_at; the writer role may call the
// new functions and set the new columns; archiving is pushed as an event,
// marking seen is not (it announces itself with a marker row). Down goes
// back to 00008's functions, and up again.
func TestUpgradeToInboxStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_is"
	provider := upTo(t, db, schema, 8)
	table := pgx.Identifier{schema, "notifications"}.Sanitize()
	send := pgx.Identifier{schema, "send"}.Sanitize()
	var oldID string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'old')::text").Scan(&oldID))

	require.NoError(t, migrations.Up(ctx, db.Pool, schema))

	var seen, archived, expires *string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT seen_at::text, archived_at::text, expires_at::text FROM "+table+" WHERE id = $1", oldID).
		Scan(&seen, &archived, &expires))
	require.Nil(t, seen)
	require.Nil(t, archived)
	require.Nil(t, expires)

	var id string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'new', data => '{}')::text").Scan(&id), "a 00008 call by name")
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'brief', expires_at => '2030-01-01Z')::text").Scan(&id))
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT expires_at::text FROM "+table+" WHERE id = $1", id).Scan(&expires))
	require.Equal(t, "2030-01-01 00:00:00+00", *expires)
	_, err := db.Pool.Exec(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'x', expires_at => 'infinity')")
	require.ErrorContains(t, err, "expires_at infinity is out of range")

	role := migrations.WriterRole(schema)
	var canCall, canArchive, canExpire bool
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT has_function_privilege($1, $2, 'EXECUTE'),
		has_column_privilege($1, $3, 'archived_at', 'UPDATE'), has_column_privilege($1, $3, 'expires_at', 'INSERT')`,
		role, schema+".send(text, text, jsonb, text, text, jsonb, text, text[], text, boolean, interval, timestamptz)", schema+".notifications").
		Scan(&canCall, &canArchive, &canExpire))
	require.True(t, canCall)
	require.True(t, canArchive)
	require.True(t, canExpire)

	var xidBefore, xidAfter, op string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT xid::text FROM "+table+" WHERE id = $1", oldID).Scan(&xidBefore))
	_, err = db.Pool.Exec(ctx, "UPDATE "+table+" SET seen_at = now() WHERE id = $1", oldID)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT xid::text, op FROM "+table+" WHERE id = $1", oldID).Scan(&xidAfter, &op))
	require.Equal(t, xidBefore, xidAfter, "seen is not pushed row by row")
	_, err = db.Pool.Exec(ctx, "UPDATE "+table+" SET archived_at = now() WHERE id = $1", oldID)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT xid::text, op FROM "+table+" WHERE id = $1", oldID).Scan(&xidAfter, &op))
	require.NotEqual(t, xidBefore, xidAfter, "archiving is pushed")
	require.Equal(t, "archived", op)

	_, err = provider.DownTo(ctx, 8)
	require.NoError(t, err)
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT op FROM "+table+" WHERE id = $1", oldID).Scan(&op))
	require.Equal(t, "updated", op, "an op the old code does not know")
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'down')::text").Scan(&id), "00008's send is back")
	require.NoError(t, migrations.Up(ctx, db.Pool, schema), "and up again")
}

// A schema at 00010 upgrades to 00011's bound on escalate_after: a row
// longer than 366 days is clamped to it, one whose length is not positive
// (a mixed-sign interval PostgreSQL's comparison finds positive) loses its
// escalation, neither is pushed again (its xid stays), and every row can
// still be updated: the check is validated, not NOT VALID, which would
// refuse any later UPDATE of such a row.
func TestUpgradeBoundsEscalateAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	schema := db.Schema + "_e"
	upTo(t, db, schema, 10)
	table := pgx.Identifier{schema, "notifications"}.Sanitize()
	insert := func(escalate string) (id, xid string) {
		require.NoError(t, db.Pool.QueryRow(ctx, "INSERT INTO "+table+" (notifiable_id, type, escalate_after) VALUES ('u', 'old', $1::interval) RETURNING id::text, xid::text",
			escalate).Scan(&id, &xid))
		return id, xid
	}
	longID, longXid := insert("2 years")
	negativeID, _ := insert("-1 year 361 days") // > 0 as PostgreSQL compares, -4.25 days long
	dayID, _ := insert("1 day")

	require.NoError(t, migrations.Up(ctx, db.Pool, schema))

	escalate := func(id string) *time.Duration {
		var d *time.Duration
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT escalate_after FROM "+table+" WHERE id = $1", id).Scan(&d))
		return d
	}
	require.Equal(t, 366*24*time.Hour, *escalate(longID))
	require.Nil(t, escalate(negativeID))
	require.Equal(t, 24*time.Hour, *escalate(dayID))
	var xid string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT xid::text FROM "+table+" WHERE id = $1", longID).Scan(&xid))
	require.Equal(t, longXid, xid, "clamped quietly: not a change to push")
	_, err := db.Pool.Exec(ctx, "UPDATE "+table+" SET read_at = now()")
	require.NoError(t, err, "every row can still be updated")
	_, err = db.Pool.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type, escalate_after) VALUES ('u', 'new', '30000 years -10799700 days')")
	require.ErrorContains(t, err, "notifications_escalate_after_max_366_days")
}
