package integration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
)

// The SQL send function (migrations/sql/00006_send_function.sql), called
// with named arguments by a login role that holds only the writer role:
// what it writes in a transaction is pushed on commit and never on
// rollback, it validates as the outbox does and names the argument, the
// progress upsert updates one row in place and pushes again, and
// send_many writes one row per distinct recipient.
func TestSendFunction(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	app := loginAs(t, b.db, b.db.Schema+"_sendfn", b.db.WriterRole())
	send := pgx.Identifier{b.db.Schema, "send"}.Sanitize()
	sendMany := pgx.Identifier{b.db.Schema, "send_many"}.Sanitize()
	table := b.db.Table("notifications")
	to := outbox.User("42")
	s := openStream(t, r.URL, to, -1)

	// The README's example, verbatim: named arguments, in a transaction.
	var example string
	for _, block := range readmeSQL(t, "### From any language: plain SQL", b.db.Schema) {
		if strings.Contains(block, send+"(") {
			example = block
			break
		}
	}
	require.Contains(t, example, "notifiable_id => '42'", "the README leads with the send function")
	_, err := app.Exec(ctx, example)
	require.NoError(t, err, "the README's send")
	ev := s.next(t, 5*time.Second)
	require.Equal(t, "created", ev.Data.Op)
	require.Equal(t, "invoice.paid", ev.Data.Type)
	var data string
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT data::text FROM "+table+" WHERE id = $1", ev.Data.ID).Scan(&data))
	require.Equal(t, `{"invoiceId": "1001"}`, data)

	// In a transaction: the returned id is the row's, pushed on commit.
	var id string
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'invoice.paid', data => '{\"invoiceId\": \"1002\"}', sse => '{\"n\": 2}')::text").Scan(&id); err != nil {
			return err
		}
		s.quiet(t, 300*time.Millisecond) // not before commit
		return nil
	})
	require.NoError(t, err)
	ev = s.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID)
	require.JSONEq(t, `{"n": 2}`, string(ev.Data.SSE))

	// Rolled back: nothing written, nothing pushed.
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'rolled.back')")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE type = 'rolled.back'").Scan(&n))
	require.Zero(t, n)
	s.quiet(t, 1500*time.Millisecond) // past a sweep

	// Validation: the outbox's rules and limits, each named in the error.
	blob := func(n int) string { return `{"blob": "` + strings.Repeat("x", n) + `"}` } // 12 + n bytes stored
	long := strings.Repeat("x", outbox.MaxNameBytes+1)
	cases := []struct {
		name, args, msg string
		arg             any
	}{
		{"empty notifiable_id", "notifiable_id => '', type => 'k'", "notifiable_id is empty", nil},
		{"null notifiable_id", "notifiable_id => NULL, type => 'k'", "notifiable_id is empty", nil},
		{"empty type", "notifiable_id => '42', type => ''", "type is empty", nil},
		{"empty notifiable_type", "notifiable_id => '42', type => 'k', notifiable_type => ''", "notifiable_type is empty", nil},
		{"null tenant", "notifiable_id => '42', type => 'k', tenant_id => NULL", "tenant_id is null", nil},
		{"data an array", "notifiable_id => '42', type => 'k', data => '[1, 2]'", "data must be a JSON object, not a JSON array", nil},
		{"data a string", "notifiable_id => '42', type => 'k', data => '\"text\"'", "data must be a JSON object, not a JSON string", nil},
		{"sse a number", "notifiable_id => '42', type => 'k', sse => '1'", "sse must be a JSON object or NULL, not a JSON number", nil},
		{"unknown channel", "notifiable_id => '42', type => 'k', channels => '{database,email}'", `channels has unknown channel "email" (want "database", "sse" or "webhook")`, nil},
		{"null channel", "notifiable_id => '42', type => 'k', channels => ARRAY[NULL]::text[]", `channels has unknown channel NULL`, nil},
		{"empty channels", "notifiable_id => '42', type => 'k', channels => '{}'", "channels is empty", nil},
		{"null channels", "notifiable_id => '42', type => 'k', channels => NULL", "channels is empty", nil},
		{"data over 64 KiB", "notifiable_id => '42', type => 'k', data => $1", "data is 65537 bytes of JSON as PostgreSQL stores it, over the limit of 65536", blob(outbox.MaxDataBytes - 11)},
		{"data of long numbers", "notifiable_id => '42', type => 'k', data => $1", "data is 70220 bytes of JSON as PostgreSQL stores it, over the limit of 65536", `{"n": [` + strings.Repeat("1e1000, ", 70) + `1]}`},
		{"sse over 4 KiB", "notifiable_id => '42', type => 'k', sse => $1", "sse is 4097 bytes of JSON as PostgreSQL stores it, over the limit of 4096", blob(outbox.MaxSSEBytes - 11)},
		{"long notifiable_id", "notifiable_id => $1, type => 'k'", "notifiable_id is 256 bytes, over the limit of 255", long},
		{"long type", "notifiable_id => '42', type => $1", "type is 256 bytes, over the limit of 255", long},
		{"long tenant", "notifiable_id => '42', type => 'k', tenant_id => $1", "tenant_id is 256 bytes, over the limit of 255", long},
		{"long notifiable_type", "notifiable_id => '42', type => 'k', notifiable_type => $1", "notifiable_type is 256 bytes, over the limit of 255", long},
		{"long database_key", "notifiable_id => '42', type => 'k', database_key => $1", "database_key is 256 bytes, over the limit of 255", long},
		{"multibyte over 255 bytes", "notifiable_id => '42', type => $1", "type is 256 bytes, over the limit of 255", strings.Repeat("é", 128)},
	}
	for _, c := range cases {
		args := []any{}
		if c.arg != nil {
			args = append(args, c.arg)
		}
		_, err := app.Exec(ctx, "SELECT "+send+"("+c.args+")", args...)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%s: want an error, got %v", c.name, err)
		require.Equal(t, "22023", pgErr.Code, "%s: invalid_parameter_value: %v", c.name, err)
		require.Contains(t, pgErr.Message, "bellhop: invalid notification: "+c.msg, c.name)
	}
	// send_many names the recipient by its place.
	for _, c := range []struct{ ids, msg string }{
		{"'{a,\"\",c}'", "notifiable_ids[2] is empty"},
		{"ARRAY['a', NULL]", "notifiable_ids[2] is empty"},
		{"ARRAY['a', repeat('x', 256)]", "notifiable_ids[2] is 256 bytes, over the limit of 255"},
		{"NULL", "notifiable_ids is null"},
		{"'{{a,b},{c,d}}'", "notifiable_ids must be a one-dimensional array"},
	} {
		_, err := app.Exec(ctx, "SELECT "+sendMany+"(notifiable_ids => "+c.ids+", type => 'k')")
		require.ErrorContains(t, err, "bellhop: invalid notification: "+c.msg)
	}
	// At the limits, accepted; a JSON null data is {}, as the outbox's nil.
	var atLimit string
	require.NoError(t, app.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => $1, data => $2, sse => $3)::text",
		strings.Repeat("t", outbox.MaxNameBytes), blob(outbox.MaxDataBytes-12), blob(outbox.MaxSSEBytes-12)).Scan(&atLimit))
	require.Equal(t, atLimit, s.next(t, 5*time.Second).Data.ID, "nothing refused was pushed")
	var nullData string
	require.NoError(t, app.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'null.data', data => 'null', channels => '{sse,sse}')::text").Scan(&id))
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT data::text || ' ' || channels::text FROM "+table+" WHERE id = $1", id).Scan(&nullData))
	require.Equal(t, "{} {sse}", nullData)
	require.Equal(t, id, s.next(t, 5*time.Second).Data.ID)

	// The progress upsert: one row, updated in place, unread and restored
	// again, pushed each time.
	progress := func(p int, channels string) string {
		var id string
		require.NoError(t, app.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'export.progress', data => jsonb_build_object('progress', $1::int),"+
			" sse => jsonb_build_object('progress', $1::int), database_key => 'export:7', channels => $2)::text", p, channels).Scan(&id))
		return id
	}
	first := progress(40, "{database,sse}")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, first, ev.Data.ID)
	require.Equal(t, "created", ev.Data.Op)
	_, err = b.db.Pool.Exec(ctx, "UPDATE "+table+" SET read_at = now(), deleted_at = now() WHERE id = $1", first)
	require.NoError(t, err)
	require.Equal(t, "deleted", s.next(t, 5*time.Second).Data.Op)
	second := progress(80, "{sse,database}")
	require.Equal(t, first, second, "the same row")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, first, ev.Data.ID)
	require.Equal(t, "updated", ev.Data.Op)
	require.JSONEq(t, `{"progress": 80}`, string(ev.Data.SSE))
	var rows int
	var unread, restored bool
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*), bool_and(read_at IS NULL), bool_and(deleted_at IS NULL) FROM "+table+
		" WHERE database_key = 'export:7'").Scan(&rows, &unread, &restored))
	require.Equal(t, 1, rows)
	require.True(t, unread, "marked unread again")
	require.True(t, restored, "restored")
	require.Equal(t, first, progress(100, "{database}"), "channels are replaced too")
	s.quiet(t, 300*time.Millisecond) // no longer live: not pushed
	var channels string
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT channels::text FROM "+table+" WHERE id = $1", first).Scan(&channels))
	require.Equal(t, "{database}", channels)

	// send_many: three recipients, one repeated, ids in the order given.
	streams := map[string]*stream{"42": s, "43": openStream(t, r.URL, outbox.User("43"), -1), "44": openStream(t, r.URL, outbox.User("44"), -1)}
	var ids []string
	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT "+sendMany+"(notifiable_ids => '{42,43,44,42}', type => 'team.update', data => '{\"v\": 1}')::text[]").Scan(&ids)
	})
	require.NoError(t, err)
	require.Len(t, ids, 4)
	require.Equal(t, ids[0], ids[3], "a repeated recipient gets one row")
	for i, who := range []string{"42", "43", "44"} {
		ev := streams[who].next(t, 5*time.Second)
		require.Equal(t, ids[i], ev.Data.ID, who)
		require.Equal(t, "team.update", ev.Data.Type)
	}
	for _, st := range streams {
		st.quiet(t, 200*time.Millisecond)
	}
	var empty []string
	require.NoError(t, app.QueryRow(ctx, "SELECT "+sendMany+"(notifiable_ids => '{}', type => 'k')::text[]").Scan(&empty))
	require.Empty(t, empty)
}

// The functions write into the schema they were created in, whatever the
// caller's search_path, even past a temporary table of the caller's named
// notifications; and only the writer role (or the owner) may call them.
func TestSendFunctionSchemaAndGrants(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	app := loginAs(t, b.db, b.db.Schema+"_sfpath", b.db.WriterRole())
	send := pgx.Identifier{b.db.Schema, "send"}.Sanitize()

	var id string
	err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		for _, q := range []string{
			"SET LOCAL search_path = public",
			"CREATE TEMP TABLE notifications (LIKE " + b.db.Table("notifications") + ") ON COMMIT DROP",
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'pinned')::text").Scan(&id)
	})
	require.NoError(t, err)
	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("notifications")+" WHERE id = $1", id).Scan(&n))
	require.Equal(t, 1, n, "written to Bellhop's table")

	// The writer role sets an expiry, and upserts over an archived row (the
	// upsert makes it unseen and unarchived: column grants of writer.sql).
	var at time.Time
	require.NoError(t, app.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'brief', database_key => 'k:1', expires_at => '2031-01-01Z')::text").Scan(&id))
	_, err = b.db.Pool.Exec(ctx, "UPDATE "+b.db.Table("notifications")+" SET archived_at = now(), seen_at = now() WHERE id = $1", id)
	require.NoError(t, err)
	require.NoError(t, app.QueryRow(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'brief', database_key => 'k:1', expires_at => '2032-01-01Z')::text").Scan(&id))
	var archived bool
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT expires_at, archived_at IS NOT NULL FROM "+b.db.Table("notifications")+" WHERE id = $1", id).Scan(&at, &archived))
	require.True(t, at.Equal(time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)), "%v", at)
	require.False(t, archived)

	// Even with USAGE on the schema: EXECUTE was revoked from PUBLIC.
	stranger := loginAs(t, b.db, b.db.Schema+"_sfnone")
	_, err = b.db.Pool.Exec(ctx, "GRANT USAGE ON SCHEMA "+pgx.Identifier{b.db.Schema}.Sanitize()+" TO "+pgx.Identifier{b.db.Schema + "_sfnone"}.Sanitize())
	require.NoError(t, err)
	_, err = stranger.Exec(ctx, "SELECT "+send+"(notifiable_id => '42', type => 'k')")
	requirePermissionDenied(t, err, "a role without the writer role")
	require.ErrorContains(t, err, "permission denied for function send")
}
