package outbox_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
)

func TestSendSQLCommitIsHeardOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	listener := b.listen(t)

	tx, err := b.sql.BeginTx(ctx, nil)
	require.NoError(t, err)
	id, err := b.ob.SendSQL(ctx, tx, outbox.User("42"), invoicePaid{id: "inv-1"})
	require.NoError(t, err)
	require.Len(t, id, 36)

	require.False(t, heard(listener, 200*time.Millisecond), "notified before commit")
	require.Equal(t, 0, b.count(t, "id = $1", id), "row visible before commit")

	require.NoError(t, tx.Commit())
	require.True(t, heard(listener, 5*time.Second), "not notified after commit")

	var data, sse string
	var channels []string
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT data::text, sse::text, channels FROM "+b.db.Table("notifications")+
		" WHERE id = $1 AND notifiable_type = 'User' AND notifiable_id = '42' AND id IN (SELECT id FROM "+b.db.Table("relay_pending")+")", id).Scan(&data, &sse, &channels))
	require.JSONEq(t, `{"invoiceId":"inv-1"}`, data)
	require.JSONEq(t, `{"invoiceId":"inv-1"}`, sse)
	require.Equal(t, []string{"database", "sse"}, channels)
}

func TestSendSQLRollbackLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	listener := b.listen(t)

	tx, err := b.sql.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = b.ob.SendManySQL(ctx, tx, []outbox.Recipient{outbox.User("1"), outbox.User("2")}, invoicePaid{id: "inv-1"})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())

	require.False(t, heard(listener, 500*time.Millisecond), "notified for a rolled-back send")
	require.Equal(t, 0, b.count(t, "true"))
}

// A rejected send sends no statement, so the caller's transaction stays
// usable and commits the rest.
func TestSendSQLValidationKeepsTheTransaction(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)

	tx, err := b.sql.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = b.ob.SendSQL(ctx, tx, outbox.User("1"), outbox.Message{Kind: "k", Data: []int{1}})
	require.ErrorIs(t, err, outbox.ErrInvalid)
	_, err = b.ob.SendSQL(ctx, tx, outbox.User("1"), invoicePaid{id: "ok"})
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	require.Equal(t, 1, b.count(t, "true"))
}

func TestSendSQLThroughConn(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	conn, err := b.sql.Conn(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })

	id, err := b.ob.SendSQL(ctx, conn, outbox.User("1"), outbox.Message{Kind: "k", Channels: []outbox.Channel{outbox.SSE}})
	require.NoError(t, err)
	require.Equal(t, 1, b.count(t, "id = $1 AND channels = '{sse}' AND data = '{}' AND sse IS NULL", id))
}

// Both drivers write the same row for the same send, whatever the text:
// the recipients travel as JSON, not as an array literal a quote, comma,
// brace or backslash could break.
func TestDriversWriteTheSameRows(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	awkward := []outbox.Recipient{
		{Tenant: `a,b`, Type: `{User}`, ID: `"quoted"`},
		{Tenant: `back\slash`, Type: `NULL`, ID: `it's`},
		{Tenant: "", Type: "User", ID: "ünïcødé 🔔 <&> \u2028"},
		{Tenant: " ", Type: "User", ID: `\"},{"x":"`},
	}
	n := outbox.Message{
		Kind:     `type "with" 'quotes', commas`,
		Data:     map[string]any{"s": `a"b\c`, "n": 1.5e300},
		SSE:      map[string]any{"html": "<b>&</b>"},
		Channels: []outbox.Channel{outbox.Database},
		Key:      `key,{"x"}`,
	}
	type row struct {
		Tenant, Type, ID, Kind, Data, SSE, Key string
		Channels                               []string
	}
	read := func(ids []string) []row {
		var out []row
		for i, id := range ids {
			var r row
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT tenant_id, notifiable_type, notifiable_id, type, data::text, sse::text, database_key, channels FROM "+
				b.db.Table("notifications")+" WHERE id = $1", id).Scan(&r.Tenant, &r.Type, &r.ID, &r.Kind, &r.Data, &r.SSE, &r.Key, &r.Channels))
			require.Equal(t, awkward[i], outbox.Recipient{Tenant: r.Tenant, Type: r.Type, ID: r.ID})
			out = append(out, r)
		}
		return out
	}

	viaPgx, err := b.ob.SendMany(ctx, b.db.Pool, awkward, n)
	require.NoError(t, err)
	pgxRows := read(viaPgx)
	// Another key, so that the second send makes rows of its own.
	n.Key += "2"
	viaSQL, err := b.ob.SendManySQL(ctx, b.sql, awkward, n)
	require.NoError(t, err)
	sqlRows := read(viaSQL)
	for i := range sqlRows {
		require.Equal(t, pgxRows[i].Key+"2", sqlRows[i].Key)
		sqlRows[i].Key = pgxRows[i].Key
	}
	require.Equal(t, pgxRows, sqlRows)
	require.Equal(t, `type "with" 'quotes', commas`, sqlRows[0].Kind)
	require.Equal(t, []string{"database"}, sqlRows[0].Channels)
	require.JSONEq(t, `{"s":"a\"b\\c","n":1.5e300}`, sqlRows[0].Data)

	// And a progress send through one driver updates the row the other wrote.
	n.Key = pgxRows[0].Key
	n.Data = map[string]int{"progress": 2}
	again, err := b.ob.SendManySQL(ctx, b.sql, awkward, n)
	require.NoError(t, err)
	require.Equal(t, viaPgx, again)
}

// openPlainArgs opens url through database/sql with pgx's stdlib driver,
// minus the one thing it does that most drivers do not: take any Go value
// as an argument. Without a driver.NamedValueChecker, database/sql itself
// converts arguments, and refuses what is not a driver.Value (a []string, for
// one), as it does for lib/pq. So a send that works here does not depend on
// pgx.
func openPlainArgs(t *testing.T, url string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	db := sql.OpenDB(plainArgsConnector{stdlib.GetConnector(*cfg)})
	t.Cleanup(func() { db.Close() })
	return db
}

type plainArgsConnector struct{ driver.Connector }

func (c plainArgsConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return plainArgsConn{conn.(*stdlib.Conn)}, nil
}

// plainArgsConn is a *stdlib.Conn without CheckNamedValue.
type plainArgsConn struct{ c *stdlib.Conn }

func (c plainArgsConn) Prepare(query string) (driver.Stmt, error) { return c.c.Prepare(query) }
func (c plainArgsConn) Close() error                              { return c.c.Close() }
func (c plainArgsConn) Begin() (driver.Tx, error) {
	return c.c.BeginTx(context.Background(), driver.TxOptions{})
}
func (c plainArgsConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.c.BeginTx(ctx, opts)
}

func (c plainArgsConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.c.QueryContext(ctx, query, args)
}

func (c plainArgsConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.c.ExecContext(ctx, query, args)
}

// The plain-arguments database refuses what lib/pq would: the test above
// would not prove much if it took a []string.
func TestPlainArgsRefusesSlices(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	var n int
	err := b.sql.QueryRowContext(ctx, "SELECT cardinality($1::text[])", []string{"a"}).Scan(&n)
	require.ErrorContains(t, err, "unsupported type []string")
	require.NoError(t, b.sql.QueryRowContext(ctx, "SELECT cardinality($1::text[])", "{a,b}").Scan(&n))
	require.Equal(t, 2, n)
}

// Both drivers store an expiry, to the microsecond, and a progress upsert
// replaces it (and makes the row unseen and unarchived again). The zero
// time is no expiry; a time a client cannot parse is refused.
func TestExpiresAt(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	at := time.Date(2031, 2, 3, 4, 5, 6, 789123000, time.FixedZone("x", 3600))
	table := b.db.Table("notifications")
	expires := func(id string) *time.Time {
		var e *time.Time
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT expires_at FROM "+table+" WHERE id = $1", id).Scan(&e))
		return e
	}

	id, err := b.ob.Send(ctx, b.db.Pool, outbox.User("42"), outbox.Message{Kind: "k", Expires: at})
	require.NoError(t, err)
	require.True(t, at.Equal(*expires(id)), "pgx: %v", expires(id))
	id, err = b.ob.SendSQL(ctx, b.sql, outbox.User("42"), outbox.Message{Kind: "k", Expires: at})
	require.NoError(t, err)
	require.True(t, at.Equal(*expires(id)), "database/sql: %v", expires(id))
	id, err = b.ob.Send(ctx, b.db.Pool, outbox.User("42"), outbox.Message{Kind: "k"})
	require.NoError(t, err)
	require.Nil(t, expires(id))

	key := outbox.Message{Kind: "k", Key: "export:1", Expires: at}
	id, err = b.ob.Send(ctx, b.db.Pool, outbox.User("42"), key)
	require.NoError(t, err)
	_, err = b.db.Pool.Exec(ctx, "UPDATE "+table+" SET seen_at = now(), archived_at = now() WHERE id = $1", id)
	require.NoError(t, err)
	key.Expires = at.Add(time.Hour)
	_, err = b.ob.SendSQL(ctx, b.sql, outbox.User("42"), key)
	require.NoError(t, err)
	require.True(t, key.Expires.Equal(*expires(id)))
	var seen, archived bool
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT seen_at IS NOT NULL, archived_at IS NOT NULL FROM "+table+" WHERE id = $1", id).Scan(&seen, &archived))
	require.False(t, seen, "upserted: unseen again")
	require.False(t, archived, "upserted: back in the inbox")

	for _, bad := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)} {
		_, err = b.ob.Send(ctx, b.db.Pool, outbox.User("42"), outbox.Message{Kind: "k", Expires: bad})
		var verr *outbox.ValidationError
		require.ErrorAs(t, err, &verr)
		require.Equal(t, "expires_at", verr.Field)
	}
}
