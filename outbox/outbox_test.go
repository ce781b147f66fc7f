package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/outbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type testBundle struct {
	db *pgtest.DB
	ob *outbox.Outbox
	// sql is the same database through database/sql, with lib/pq's rules
	// for arguments (see plainArgs).
	sql *sql.DB
}

func setup(t *testing.T) (context.Context, *testBundle) {
	t.Helper()
	db := pgtest.New(t)
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(t, err)
	sqlDB := openPlainArgs(t, db.URL)
	return context.Background(), &testBundle{db: db, ob: ob, sql: sqlDB}
}

// drivers are the two ways into the outbox: Send with pgx, SendSQL with
// database/sql. Tests that loop over them prove the same behaviour.
var drivers = []string{"pgx", "database/sql"}

// sendMany is SendMany or SendManySQL through driver, outside a
// transaction of the caller's.
func (b *testBundle) sendMany(ctx context.Context, driver string, to []outbox.Recipient, n outbox.Notification) ([]string, error) {
	if driver == "pgx" {
		return b.ob.SendMany(ctx, b.db.Pool, to, n)
	}
	return b.ob.SendManySQL(ctx, b.sql, to, n)
}

// send is Send or SendSQL through driver.
func (b *testBundle) send(ctx context.Context, driver string, to outbox.Recipient, n outbox.Notification) (string, error) {
	if driver == "pgx" {
		return b.ob.Send(ctx, b.db.Pool, to, n)
	}
	return b.ob.SendSQL(ctx, b.sql, to, n)
}

// listen opens a connection listening on the schema's pending channel.
func (b *testBundle) listen(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), b.db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(context.Background(), "LISTEN "+pgx.Identifier{sqlq.Channel(b.db.Schema, "pending")}.Sanitize())
	require.NoError(t, err)
	return conn
}

// heard reports whether a notification arrives on conn within d.
func heard(conn *pgx.Conn, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := conn.WaitForNotification(ctx)
	return err == nil
}

func (b *testBundle) count(t *testing.T, where string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM "+b.db.Table("notifications")+" WHERE "+where, args...).Scan(&n))
	return n
}

type invoicePaid struct{ id string }

func (invoicePaid) Type() string      { return "invoice.paid" }
func (n invoicePaid) ToDatabase() any { return map[string]any{"invoiceId": n.id} }
func (n invoicePaid) ToSSE() any      { return map[string]any{"invoiceId": n.id} }

func TestSendCommitIsHeardOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	listener := b.listen(t)

	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	id, err := b.ob.Send(ctx, tx, outbox.User("42"), invoicePaid{id: "inv-1"})
	require.NoError(t, err)
	require.Len(t, id, 36)

	require.False(t, heard(listener, 200*time.Millisecond), "notified before commit")
	require.Equal(t, 0, b.count(t, "id = $1", id), "row visible before commit")

	require.NoError(t, tx.Commit(ctx))
	require.True(t, heard(listener, 5*time.Second), "not notified after commit")

	var data, sse string
	var channels []string
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT data::text, sse::text, channels FROM "+b.db.Table("notifications")+
		" WHERE id = $1 AND notifiable_type = 'User' AND notifiable_id = '42' AND id IN (SELECT id FROM "+b.db.Table("relay_pending")+")", id).Scan(&data, &sse, &channels))
	require.JSONEq(t, `{"invoiceId":"inv-1"}`, data)
	require.JSONEq(t, `{"invoiceId":"inv-1"}`, sse)
	require.Equal(t, []string{"database", "sse"}, channels)
}

func TestSendRollbackLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	listener := b.listen(t)

	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = b.ob.Send(ctx, tx, outbox.User("42"), invoicePaid{id: "inv-1"})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	require.False(t, heard(listener, 500*time.Millisecond), "notified for a rolled-back send")
	require.Equal(t, 0, b.count(t, "true"))
}

func TestPlainSQLInsertIsPickedUp(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	listener := b.listen(t)

	// Exactly what the README tells a non-Go writer to run.
	_, err := b.db.Pool.Exec(ctx, "INSERT INTO "+b.db.Table("notifications")+
		` (tenant_id, notifiable_type, notifiable_id, type, data) VALUES ('acme', 'User', '7', 'comment.created', '{"body":"hi"}')`)
	require.NoError(t, err)
	require.True(t, heard(listener, 5*time.Second))
	require.Equal(t, 1, b.count(t, "tenant_id = 'acme' AND id IN (SELECT id FROM "+b.db.Table("relay_pending")+") AND op = 'created' AND channels = '{database,sse}' AND sse IS NULL"))
}

func TestWakeFlagOffSendsNoNotify(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	listener := b.listen(t)
	_, err := b.db.Pool.Exec(ctx, "SELECT setval($1, 0)", b.db.Schema+".relay_wake")
	require.NoError(t, err)

	_, err = b.ob.Send(ctx, b.db.Pool, outbox.User("1"), invoicePaid{id: "x"})
	require.NoError(t, err)
	require.False(t, heard(listener, 300*time.Millisecond), "notified while the relay polls")
	require.Equal(t, 1, b.count(t, "id IN (SELECT id FROM "+b.db.Table("relay_pending")+")"), "the row is pending all the same")
}

type progress struct {
	key string
	pct int
}

func (progress) Type() string          { return "export.progress" }
func (p progress) ToDatabase() any     { return map[string]any{"progress": p.pct} }
func (p progress) DatabaseKey() string { return p.key }

func TestProgressUpsertsOneRow(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx, b := setup(t)
			to := outbox.User("u1")

			first, err := b.send(ctx, driver, to, progress{key: "export-1", pct: 0})
			require.NoError(t, err)
			var created time.Time
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT created_at FROM "+b.db.Table("notifications")+" WHERE id = $1", first).Scan(&created))
			// Read it, and pretend the relay stamped it, so the upserts must undo both.
			_, err = b.db.Pool.Exec(ctx, "UPDATE "+b.db.Table("notifications")+" SET read_at = now() WHERE id = $1", first)
			require.NoError(t, err)
			_, err = b.db.Pool.Exec(ctx, "UPDATE "+b.db.Table("relay_state")+" SET seen = pg_current_snapshot()")
			require.NoError(t, err)
			require.Zero(t, b.count(t, "id IN (SELECT id FROM "+b.db.Table("relay_pending")+")"))

			for pct := 25; pct <= 100; pct += 25 {
				id, err := b.send(ctx, driver, to, progress{key: "export-1", pct: pct})
				require.NoError(t, err)
				require.Equal(t, first, id)
			}
			require.Equal(t, 1, b.count(t, "true"))
			var data string
			var readAt *time.Time
			var createdNow, updated time.Time
			var op string
			var pending bool
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT data::text, read_at, created_at, updated_at, op, id IN (SELECT id FROM "+
				b.db.Table("relay_pending")+") FROM "+b.db.Table("notifications")).Scan(&data, &readAt, &createdNow, &updated, &op, &pending))
			require.JSONEq(t, `{"progress":100}`, data)
			require.Nil(t, readAt, "an update counts as unread again")
			require.Equal(t, created, createdNow)
			require.True(t, updated.After(created))
			require.Equal(t, "updated", op)
			require.True(t, pending, "an update is pending again")

			// The same key for another recipient is another row.
			_, err = b.send(ctx, driver, outbox.User("u2"), progress{key: "export-1", pct: 5})
			require.NoError(t, err)
			require.Equal(t, 2, b.count(t, "database_key = 'export-1'"))
		})
	}
}

func TestConcurrentUpsertsMakeOneRow(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pgx.BeginFunc(ctx, b.db.Pool, func(tx pgx.Tx) error {
				_, err := b.ob.Send(ctx, tx, outbox.User("u"), progress{key: "k", pct: i})
				return err
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, b.count(t, "true"))
}

func TestSendMany(t *testing.T) {
	t.Parallel()
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			ctx, b := setup(t)
			to := []outbox.Recipient{outbox.User("a"), {Tenant: "t2", Type: "Team", ID: "a"}, outbox.User("b"), outbox.User("a")}

			ids, err := b.sendMany(ctx, driver, to, invoicePaid{id: "inv"})
			require.NoError(t, err)

			require.Len(t, ids, 4)
			require.Equal(t, ids[0], ids[3], "a repeated recipient gets one row")
			require.NotEqual(t, ids[0], ids[1])
			require.Equal(t, 3, b.count(t, "true"))
			require.Equal(t, 1, b.count(t, "id = $1 AND tenant_id = 't2' AND notifiable_type = 'Team' AND notifiable_id = 'a'", ids[1]))

			// Keyed: a second SendMany updates the same rows.
			keyed := outbox.Message{Kind: "sync", Data: map[string]int{"progress": 1}, Key: "sync-1"}
			first, err := b.sendMany(ctx, driver, to[:3], keyed)
			require.NoError(t, err)
			keyed.Data = map[string]int{"progress": 2}
			second, err := b.sendMany(ctx, driver, to[:3], keyed)
			require.NoError(t, err)
			require.Equal(t, first, second)
			require.Equal(t, 3, b.count(t, `database_key = 'sync-1' AND data = '{"progress":2}'`))
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	long := strings.Repeat("x", outbox.MaxNameBytes+1)
	bigData := map[string]string{"blob": strings.Repeat("x", outbox.MaxDataBytes)}
	bigSSE := map[string]string{"blob": strings.Repeat("x", outbox.MaxSSEBytes)}
	cases := []struct {
		name  string
		to    outbox.Recipient
		n     outbox.Notification
		field string
	}{
		{"empty recipient id", outbox.Recipient{Type: "User"}, invoicePaid{}, "recipient.id"},
		{"empty recipient type", outbox.Recipient{ID: "1"}, invoicePaid{}, "recipient.type"},
		{"long recipient id", outbox.User(long), invoicePaid{}, "recipient.id"},
		{"NUL in tenant", outbox.Recipient{Tenant: "a\x00b", Type: "User", ID: "1"}, invoicePaid{}, "recipient.tenant"},
		{"nil notification", outbox.User("1"), nil, "notification"},
		{"empty type", outbox.User("1"), outbox.Message{}, "type"},
		{"data is an array", outbox.User("1"), outbox.Message{Kind: "k", Data: []int{1}}, "data"},
		{"data is a string", outbox.User("1"), outbox.Message{Kind: "k", Data: json.RawMessage(`"s"`)}, "data"},
		{"data cannot be encoded", outbox.User("1"), outbox.Message{Kind: "k", Data: map[string]any{"f": func() {}}}, "data"},
		{"data too large", outbox.User("1"), outbox.Message{Kind: "k", Data: bigData}, "data"},
		{"sse not an object", outbox.User("1"), outbox.Message{Kind: "k", SSE: 3}, "sse"},
		{"sse too large", outbox.User("1"), outbox.Message{Kind: "k", SSE: bigSSE}, "sse"},
		{"unknown channel", outbox.User("1"), outbox.Message{Kind: "k", Channels: []outbox.Channel{"email"}}, "channels"},
		{"long key", outbox.User("1"), outbox.Message{Kind: "k", Key: long}, "database key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, driver := range drivers {
				_, err := b.send(ctx, driver, c.to, c.n)
				require.ErrorIs(t, err, outbox.ErrInvalid, driver)
				var ve *outbox.ValidationError
				require.True(t, errors.As(err, &ve), driver)
				require.Equal(t, c.field, ve.Field, driver+": "+err.Error())

				_, err = b.sendMany(ctx, driver, []outbox.Recipient{outbox.User("ok"), c.to}, c.n)
				require.ErrorIs(t, err, outbox.ErrInvalid, driver)
			}
		})
	}
	require.Equal(t, 0, b.count(t, "true"), "a rejected send writes nothing")

	_, err := outbox.New(outbox.Config{Schema: "Robert'); DROP TABLE x;--"})
	require.Error(t, err)
}

func TestSchemaRefusesTimesClientsCannotParse(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	id, err := b.ob.Send(ctx, b.db.Pool, outbox.User("1"), invoicePaid{id: "x"})
	require.NoError(t, err)
	for _, bad := range []string{"infinity", "-infinity", "10000-01-01"} {
		_, err := b.db.Pool.Exec(ctx, "UPDATE "+b.db.Table("notifications")+" SET read_at = $1::timestamptz WHERE id = $2", bad, id)
		require.ErrorContains(t, err, "notifications_times_valid", bad)
	}
}

// Critical, EscalateAfter and the webhook channel reach their columns
// through both drivers, on an insert and on a progress upsert.
func TestCriticalEscalateAndWebhook(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	for _, driver := range drivers {
		for _, key := range []string{"", "k:" + driver} {
			id, err := b.send(ctx, driver, outbox.User("7"), outbox.Message{Kind: "k", Key: key, IsCritical: true,
				Escalate: 90 * time.Second, Channels: []outbox.Channel{outbox.Webhook, outbox.Database, outbox.Webhook}})
			require.NoError(t, err, driver)
			var critical bool
			var escalate *time.Duration
			var channels []string
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT critical, escalate_after, channels FROM "+b.db.Table("notifications")+" WHERE id = $1", id).
				Scan(&critical, &escalate, &channels))
			require.True(t, critical, driver)
			require.Equal(t, 90*time.Second, *escalate, driver)
			require.Equal(t, []string{"database", "webhook"}, channels, driver)
		}
		id, err := b.send(ctx, driver, outbox.User("7"), outbox.Message{Kind: "plain"})
		require.NoError(t, err)
		var critical bool
		var escalate *time.Duration
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT critical, escalate_after FROM "+b.db.Table("notifications")+" WHERE id = $1", id).Scan(&critical, &escalate))
		require.False(t, critical)
		require.Nil(t, escalate)
	}
	_, err := b.ob.Send(ctx, b.db.Pool, outbox.User("7"), outbox.Message{Kind: "k", Escalate: -time.Second})
	require.ErrorContains(t, err, "escalate after")
	_, err = b.ob.Send(ctx, b.db.Pool, outbox.User("7"), outbox.Message{Kind: "k", Escalate: outbox.MaxEscalateAfter + time.Microsecond})
	require.ErrorContains(t, err, "at most 366 days")
	_, err = b.ob.Send(ctx, b.db.Pool, outbox.User("7"), outbox.Message{Kind: "k", Escalate: outbox.MaxEscalateAfter})
	require.NoError(t, err, "the longest the table takes")
}
