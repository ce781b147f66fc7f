package outbox

import (
	"context"
	"database/sql"
)

// SQLDB is what SendSQL writes through with database/sql: a *sql.Tx (the
// usual case: the caller's business transaction), or a *sql.DB or
// *sql.Conn, where each call is its own single-statement transaction. Any
// driver works (pgx's stdlib, lib/pq), and so does a data layer's
// transaction that passes queries through unchanged: sqlx's *sqlx.Tx,
// GORM's Statement.ConnPool inside a transaction, the *sql.Tx inside bun's
// bun.Tx (not bun.Tx itself: it rewrites queries for its ? placeholders).
type SQLDB interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// SendSQL is Send for database/sql: the same statement, validation, limits,
// progress upsert and trace context from ctx, through db.
func (o *Outbox) SendSQL(ctx context.Context, db SQLDB, to Recipient, n Notification) (string, error) {
	if err := validateRecipient(to, "recipient"); err != nil {
		return "", err
	}
	return first(o.SendManySQL(ctx, db, []Recipient{to}, n))
}

// SendManySQL is SendMany for database/sql.
func (o *Outbox) SendManySQL(ctx context.Context, db SQLDB, to []Recipient, n Notification) ([]string, error) {
	s, err := o.prepare(ctx, to, n)
	if err != nil || s == nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, s.query, s.args...)
	if err != nil {
		return nil, s.fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Recipient
		var id string
		if err := rows.Scan(&r.Tenant, &r.Type, &r.ID, &id); err != nil {
			return nil, s.fail(err)
		}
		s.ids[r] = id
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(err)
	}
	// A driver may report the statement's end only on Close.
	if err := rows.Close(); err != nil {
		return nil, s.fail(err)
	}
	return s.result(to)
}
