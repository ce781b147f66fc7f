package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/outbox"
)

// bellhopNames are the schema's objects the README's SQL names.
var bellhopNames = regexp.MustCompile(`\bbellhop\.(notifications|send_many|send)\b`)

// readmeSQL returns the ```sql blocks of the README section that starts
// with heading, pointed at schema, in order: the tests run them verbatim.
func readmeSQL(t *testing.T, heading, schema string) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "\n"+heading+"\n")
	require.True(t, ok, "README has a section %q", heading)
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	if i := strings.Index(section, "\n### "); i >= 0 {
		section = section[:i]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, bellhopNames.ReplaceAllStringFunc(m[1], func(name string) string {
			return pgx.Identifier{schema, strings.TrimPrefix(name, "bellhop.")}.Sanitize()
		}))
	}
	return blocks
}

// loginAs creates a LOGIN role holding only the given roles, dropped when
// t ends, and returns a pool connected as it.
func loginAs(t *testing.T, db *pgtest.DB, name string, member ...string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	ident := pgx.Identifier{name}.Sanitize()
	_, err := db.Pool.Exec(ctx, "CREATE ROLE "+ident+" LOGIN")
	require.NoError(t, err)
	for _, m := range member {
		_, err = db.Pool.Exec(ctx, "GRANT "+pgx.Identifier{m}.Sanitize()+" TO "+ident)
		require.NoError(t, err)
	}
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	cfg.ConnConfig.User = name
	cfg.ConnConfig.Password = ""
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Close()
		_, err := db.Pool.Exec(context.Background(), "DROP OWNED BY "+ident)
		require.NoError(t, err)
		_, err = db.Pool.Exec(context.Background(), "DROP ROLE "+ident)
		require.NoError(t, err)
	})
	var me string
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_user").Scan(&me))
	require.Equal(t, name, me)
	return pool
}

func requirePermissionDenied(t *testing.T, err error, what string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%s: want permission denied, got %v", what, err)
	require.Equal(t, "42501", pgErr.Code, "%s: %v", what, err)
}

// Item 17: every documented write path works as a login role that holds
// nothing but the writer role relay migrate created: the README's plain
// SQL (insert, progress upsert, soft delete) verbatim, and the Go outbox's
// Send and SendMany, plain and keyed. And the role cannot touch what is the
// relay's.
func TestWriterRoleRunsEveryDocumentedWrite(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	app := loginAs(t, b.db, b.db.Schema+"_app", b.db.WriterRole())
	to := outbox.User("42")
	s := openStream(t, r.URL, to, -1)

	// The raw statements, past the send function's examples (sendfn_test.go).
	var blocks []string
	for _, block := range readmeSQL(t, "### From any language: plain SQL", b.db.Schema) {
		if !strings.Contains(block, pgx.Identifier{b.db.Schema, "send"}.Sanitize()) &&
			!strings.Contains(block, pgx.Identifier{b.db.Schema, "send_many"}.Sanitize()) {
			blocks = append(blocks, block)
		}
	}
	require.GreaterOrEqual(t, len(blocks), 3, "insert, progress upsert, soft delete")
	insert, upsert, softDelete := blocks[0], blocks[1], blocks[2]
	require.Contains(t, upsert, "ON CONFLICT")
	require.Contains(t, softDelete, "deleted_at = now()")

	_, err := app.Exec(ctx, insert)
	require.NoError(t, err, "the README's insert")
	ev := s.next(t, 5*time.Second)
	require.Equal(t, "created", ev.Data.Op)
	require.Equal(t, "invoice.paid", ev.Data.Type)

	_, err = app.Exec(ctx, upsert)
	require.NoError(t, err, "the README's progress upsert, first")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, "created", ev.Data.Op)
	progress := ev.Data.ID
	_, err = app.Exec(ctx, upsert)
	require.NoError(t, err, "the README's progress upsert, again: ON CONFLICT DO UPDATE")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, "updated", ev.Data.Op)
	require.Equal(t, progress, ev.Data.ID)

	_, err = app.Exec(ctx, softDelete)
	require.NoError(t, err, "the README's soft delete")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, "deleted", ev.Data.Op)
	require.Equal(t, progress, ev.Data.ID)

	// The Go outbox, through the app's pool and in its transaction.
	id, err := b.ob.Send(ctx, app, to, outbox.Message{Kind: "go.send", Data: map[string]int{"n": 1}, SSE: map[string]int{"n": 1}})
	require.NoError(t, err, "outbox.Send (RETURNING)")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID)
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		_, err := b.ob.SendMany(ctx, tx, []outbox.Recipient{to, outbox.User("43")}, outbox.Message{Kind: "go.many"})
		return err
	})
	require.NoError(t, err, "outbox.SendMany in a transaction")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, "go.many", ev.Data.Type)
	keyed := outbox.Message{Kind: "go.progress", Data: map[string]int{"p": 1}, Key: "go:1"}
	first, err := b.ob.SendMany(ctx, app, []outbox.Recipient{to}, keyed)
	require.NoError(t, err, "keyed SendMany")
	require.Equal(t, "created", s.next(t, 5*time.Second).Data.Op)
	keyed.Data = map[string]int{"p": 2}
	second, err := b.ob.Send(ctx, app, to, keyed)
	require.NoError(t, err, "keyed Send: the outbox's upsert")
	require.Equal(t, first[0], second)
	require.Equal(t, "updated", s.next(t, 5*time.Second).Data.Op)
	// The same statements through database/sql: the role's grants cover them,
	// and the relay pushes what they write.
	sqlApp := stdlib.OpenDBFromPool(app)
	sqlTx, err := sqlApp.BeginTx(ctx, nil)
	require.NoError(t, err)
	viaSQL, err := b.ob.SendSQL(ctx, sqlTx, to, outbox.Message{Kind: "go.sendsql"})
	require.NoError(t, err, "outbox.SendSQL in a database/sql transaction")
	require.NoError(t, sqlTx.Commit())
	ev = s.next(t, 5*time.Second)
	require.Equal(t, viaSQL, ev.Data.ID)
	require.Equal(t, "go.sendsql", ev.Data.Type)

	// Reading a row back and marking it read by SQL are writes too.
	_, err = app.Exec(ctx, "UPDATE "+b.db.Table("notifications")+" SET read_at = now() WHERE id = $1", id)
	require.NoError(t, err)
	require.Equal(t, "read", s.next(t, 5*time.Second).Data.Op)

	// Nothing of the relay's: its log, its cursor, River's jobs, or the
	// columns that decide what the relay logs.
	_, err = app.Exec(ctx, "SELECT count(*) FROM "+b.db.Table("relay_log"))
	requirePermissionDenied(t, err, "read relay_log")
	_, err = app.Exec(ctx, "UPDATE "+b.db.Table("relay_state")+" SET last_seq = 0")
	requirePermissionDenied(t, err, "write relay_state")
	_, err = app.Exec(ctx, "SELECT count(*) FROM "+b.db.Table("river_job"))
	requirePermissionDenied(t, err, "read river_job")
	_, err = app.Exec(ctx, "INSERT INTO "+b.db.Table("notifications")+" (notifiable_id, type, xid) VALUES ('42', 'x', '0')")
	requirePermissionDenied(t, err, "insert an xid")
	_, err = app.Exec(ctx, "UPDATE "+b.db.Table("notifications")+" SET xid = '0'")
	requirePermissionDenied(t, err, "update xid")
	_, err = app.Exec(ctx, "DELETE FROM "+b.db.Table("notifications"))
	requirePermissionDenied(t, err, "hard delete")
	s.quiet(t, 300*time.Millisecond)
}

// Item 4: the outbox's limits hold for every writer. Each is refused by
// plain SQL, on INSERT and on UPDATE, with the constraint's name (which
// says the limit) in the error, while the Go outbox still refuses first
// with its ValidationError, and the tab never hears of it.
func TestWriterLimitsHoldForPlainSQL(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	s := openStream(t, r.URL, alice, -1)
	table := b.db.Table("notifications")
	ok := b.send(t, alice, "ok")
	require.Equal(t, ok, s.next(t, 5*time.Second).Data.ID)

	blob := func(n int) string { return `{"blob": "` + strings.Repeat("x", n) + `"}` }
	// Short to write, long as stored: jsonb writes numbers out in full.
	numbers := `{"n": [` + strings.Repeat("1e1000, ", 5) + `1]}`
	long := strings.Repeat("x", outbox.MaxNameBytes+1)
	cases := []struct {
		name, constraint, column, value string
		msg                             outbox.Message
		to                              outbox.Recipient
		field                           string
	}{
		{"sse of 1.1 MB", "notifications_sse_max_4kib", "sse", blob(1100 << 10),
			outbox.Message{Kind: "k", SSE: json.RawMessage(blob(1100 << 10))}, alice, "sse"},
		{"sse just over 4 KiB", "notifications_sse_max_4kib", "sse", blob(outbox.MaxSSEBytes - 11),
			outbox.Message{Kind: "k", SSE: json.RawMessage(blob(outbox.MaxSSEBytes - 11))}, alice, "sse"},
		{"sse of long numbers", "notifications_sse_max_4kib", "sse", numbers,
			outbox.Message{Kind: "k", SSE: json.RawMessage(numbers)}, alice, "sse"},
		{"sse not an object", "notifications_sse_is_object", "sse", `[1, 2]`,
			outbox.Message{Kind: "k", SSE: []int{1, 2}}, alice, "sse"},
		{"data over 64 KiB", "notifications_data_max_64kib", "data", blob(outbox.MaxDataBytes),
			outbox.Message{Kind: "k", Data: json.RawMessage(blob(outbox.MaxDataBytes))}, alice, "data"},
		{"data not an object", "notifications_data_is_object", "data", `"text"`,
			outbox.Message{Kind: "k", Data: json.RawMessage(`"text"`)}, alice, "data"},
		{"long type", "notifications_type_max_255_bytes", "type", long,
			outbox.Message{Kind: long}, alice, "type"},
		{"long key", "notifications_database_key_max_255_bytes", "database_key", long,
			outbox.Message{Kind: "k", Key: long}, alice, "database key"},
		{"long tenant", "notifications_tenant_id_max_255_bytes", "tenant_id", long,
			outbox.Message{Kind: "k"}, outbox.Recipient{Tenant: long, Type: "User", ID: "alice"}, "recipient.tenant"},
		{"long notifiable type", "notifications_notifiable_type_max_255_bytes", "notifiable_type", long,
			outbox.Message{Kind: "k"}, outbox.Recipient{Type: long, ID: "alice"}, "recipient.type"},
		{"long notifiable id", "notifications_notifiable_id_max_255_bytes", "notifiable_id", long,
			outbox.Message{Kind: "k"}, outbox.User(long), "recipient.id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cast := ""
			if c.column == "data" || c.column == "sse" {
				cast = "::jsonb"
			}
			cols := map[string]string{"notifiable_id": "'alice'", "type": "'plain'"}
			cols[c.column] = "$1" + cast
			var names, values []string
			for k, v := range cols {
				names, values = append(names, k), append(values, v)
			}
			_, err := b.db.Pool.Exec(ctx, "INSERT INTO "+table+" ("+strings.Join(names, ", ")+") VALUES ("+strings.Join(values, ", ")+")", c.value)
			require.ErrorContains(t, err, c.constraint, "INSERT")
			_, err = b.db.Pool.Exec(ctx, "UPDATE "+table+" SET "+c.column+" = $1"+cast+" WHERE id = $2", c.value, ok)
			require.ErrorContains(t, err, c.constraint, "UPDATE")

			_, err = b.ob.Send(ctx, b.db.Pool, c.to, c.msg)
			var ve *outbox.ValidationError
			require.True(t, errors.As(err, &ve), "the outbox refuses first: %v", err)
			require.Equal(t, c.field, ve.Field, err.Error())
		})
	}
	// At the limits, both accept.
	atLimit := outbox.Message{Kind: strings.Repeat("t", outbox.MaxNameBytes),
		Data: json.RawMessage(blob(outbox.MaxDataBytes - 12)), SSE: json.RawMessage(blob(outbox.MaxSSEBytes - 12))}
	id, err := b.ob.Send(ctx, b.db.Pool, alice, atLimit)
	require.NoError(t, err)
	var dataLen, sseLen int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT octet_length(data::text), octet_length(sse::text) FROM "+table+" WHERE id = $1", id).Scan(&dataLen, &sseLen))
	require.Equal(t, []int{outbox.MaxDataBytes, outbox.MaxSSEBytes}, []int{dataLen, sseLen})
	ev := s.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID, "nothing refused was pushed")
	require.Len(t, ev.Data.SSE, outbox.MaxSSEBytes-1, "the event's sse, compacted by the relay")
	s.quiet(t, 300*time.Millisecond)
}

// Item 5: two-phase commit writers. With the wake flag up (the relay idle
// in adaptive mode) a writer's PREPARE TRANSACTION fails, since the wake
// trigger notified; with bellhop.no_wake on, per transaction or per role,
// it prepares, and the relay's sweep pushes what is committed, never what
// is rolled back. On a cluster of the test's own: it needs
// max_prepared_transactions, which the shared server has at 0.
func TestTwoPhaseCommitWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := pgtest.NewServer(t) // stopped and removed when the test ends
	admin, err := pgx.Connect(ctx, srv.URL)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "ALTER SYSTEM SET max_prepared_transactions = 10")
	require.NoError(t, err)
	admin.Close(ctx)
	require.NoError(t, srv.Restart("fast"))

	db := pgtest.NewOn(t, srv.URL)
	t.Cleanup(func() {
		// A prepared transaction left by a failure would hold its locks
		// through the schema's drop.
		rows, err := db.Pool.Query(ctx, "SELECT gid FROM pg_prepared_xacts")
		if err != nil {
			return
		}
		gids, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, gid := range gids {
			_, _ = db.Pool.Exec(ctx, "ROLLBACK PREPARED '"+strings.ReplaceAll(gid, "'", "''")+"'")
		}
	})
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(t, err)
	b := &testBundle{db: db, ob: ob}
	r := b.startRelay(t) // adaptive, sweep every second
	s := openStream(t, r.URL, alice, -1)
	flagUp := func() bool {
		var v int64
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT pg_sequence_last_value($1::regclass)", db.Schema+".relay_wake").Scan(&v))
		return v == 1
	}
	require.Eventually(t, flagUp, 5*time.Second, 10*time.Millisecond, "the idle relay raises the wake flag")

	table := db.Table("notifications")
	prepare := func(conn *pgx.Conn, gid, kind string, noWake bool) error {
		t.Helper()
		_, err := conn.Exec(ctx, "BEGIN")
		require.NoError(t, err)
		if noWake {
			_, err = conn.Exec(ctx, "SET LOCAL bellhop.no_wake = on")
			require.NoError(t, err)
		}
		_, err = conn.Exec(ctx, "INSERT INTO "+table+" (notifiable_id, type) VALUES ('alice', $1)", kind)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "PREPARE TRANSACTION '"+gid+"'")
		return err
	}
	writer, err := pgx.Connect(ctx, srv.URL)
	require.NoError(t, err)
	t.Cleanup(func() { writer.Close(ctx) })

	// The hazard, documented: the wake NOTIFY makes PREPARE fail.
	err = prepare(writer, "plain", "2pc.plain", false)
	require.ErrorContains(t, err, "cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY")

	require.Eventually(t, flagUp, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, prepare(writer, "commit-me", "2pc.commit", true))
	require.NoError(t, prepare(writer, "roll-me-back", "2pc.rollback", true))
	// Per role: the setting as the role's default, for a role that holds
	// only the writer role.
	app := loginAs(t, db, db.Schema+"_2pc", db.WriterRole())
	_, err = db.Pool.Exec(ctx, "ALTER ROLE "+pgx.Identifier{db.Schema + "_2pc"}.Sanitize()+" SET bellhop.no_wake = on")
	require.NoError(t, err)
	app.Reset() // a role's settings apply to its new sessions
	appConn, err := app.Acquire(ctx)
	require.NoError(t, err)
	defer appConn.Release()
	require.True(t, flagUp(), "the flag is still up: nothing woke the relay")
	require.NoError(t, prepare(appConn.Conn(), "by-role", "2pc.role", false))
	s.quiet(t, 1500*time.Millisecond) // prepared is not committed: the sweep passed and found nothing

	_, err = writer.Exec(ctx, "ROLLBACK PREPARED 'roll-me-back'")
	require.NoError(t, err)
	_, err = writer.Exec(ctx, "COMMIT PREPARED 'commit-me'")
	require.NoError(t, err)
	ev := s.next(t, 5*time.Second) // the sweep's, within a second
	require.Equal(t, "2pc.commit", ev.Data.Type)
	_, err = writer.Exec(ctx, "COMMIT PREPARED 'by-role'")
	require.NoError(t, err)
	ev = s.next(t, 5*time.Second)
	require.Equal(t, "2pc.role", ev.Data.Type)
	s.quiet(t, 2500*time.Millisecond) // two more sweeps: the rolled back one never comes

	// The README's recipe, verbatim: prepare, and commit later.
	blocks := readmeSQL(t, "### From any language: plain SQL", db.Schema)
	var recipe string
	for _, b := range blocks {
		if strings.Contains(b, "PREPARE TRANSACTION") {
			recipe = b
		}
	}
	prepareSQL, commitSQL, ok := strings.Cut(recipe, "-- later\n")
	require.True(t, ok, "the README's two-phase commit recipe: %q", recipe)
	s42 := openStream(t, r.URL, outbox.User("42"), -1)
	require.Eventually(t, flagUp, 5*time.Second, 10*time.Millisecond)
	_, err = writer.Exec(ctx, prepareSQL)
	require.NoError(t, err, "the README's prepare")
	s42.quiet(t, 300*time.Millisecond)
	_, err = writer.Exec(ctx, commitSQL)
	require.NoError(t, err, "the README's commit")
	require.Equal(t, "invoice.paid", s42.next(t, 5*time.Second).Data.Type)
}
