package outbox

import (
	"context"
	"embed"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/internal/sqlq"
)

// Size limits, in bytes of UTF-8 text or of JSON as PostgreSQL writes jsonb
// out (a space after every ':' and ',', numbers in full). The table's CHECK
// constraints (migrations/sql/00005_writers.sql) enforce the same limits on
// every writer; the outbox checks first, for a clearer error and a
// transaction that stays usable.
const (
	// MaxDataBytes bounds ToDatabase: what the inbox stores and lists.
	MaxDataBytes = 64 << 10
	// MaxSSEBytes bounds ToSSE: it rides every stream event, so keep it small.
	MaxSSEBytes = 4 << 10
	// MaxNameBytes bounds the type, the database key and each recipient field.
	MaxNameBytes = bellhoptype.MaxNameBytes
)

// DB is what Send writes through: a pgx.Tx (the usual case: the caller's
// business transaction), or a *pgxpool.Pool or *pgx.Conn, where each call is
// its own single-statement transaction.
type DB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

//go:embed sql/*.sql
var queryFiles embed.FS

// Outbox writes notifications into one Bellhop schema.
type Outbox struct {
	insertMany, upsertMany string
}

// New returns an Outbox for schema ("" means "bellhop").
func New(schema string) (*Outbox, error) {
	if schema == "" {
		schema = sqlq.DefaultSchema
	}
	set, err := sqlq.Load(queryFiles, schema)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o := &Outbox{
		insertMany: set.Get("InsertMany"),
		upsertMany: set.Get("UpsertMany"),
	}
	return o, set.Err()
}

// Send writes n for to through db and returns the row's id. In a
// transaction, nothing is visible, and no event is pushed, until it
// commits; a rollback leaves nothing behind. A Keyed notification updates
// the recipient's row with that key in place (and marks it unread) if there
// is one. A transaction to be prepared (two-phase commit) must first run
// SET LOCAL bellhop.no_wake = on: PostgreSQL refuses to prepare one that
// woke the relay with NOTIFY (see the README).
func (o *Outbox) Send(ctx context.Context, db DB, to Recipient, n Notification) (string, error) {
	if err := validateRecipient(to, "recipient"); err != nil {
		return "", err
	}
	ids, err := o.SendMany(ctx, db, []Recipient{to}, n)
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// SendMany writes n for every recipient in one statement, one round trip,
// and returns the ids in the order of to. Repeated recipients get one row.
func (o *Outbox) SendMany(ctx context.Context, db DB, to []Recipient, n Notification) ([]string, error) {
	e, err := encode(n)
	if err != nil {
		return nil, err
	}
	if len(to) == 0 {
		return nil, nil
	}
	index := make(map[Recipient]int, len(to))
	var tenants, types, ids []string
	for i, r := range to {
		if err := validateRecipient(r, fmt.Sprintf("recipients[%d]", i)); err != nil {
			return nil, err
		}
		if _, seen := index[r]; seen {
			continue
		}
		index[r] = len(tenants)
		tenants, types, ids = append(tenants, r.Tenant), append(types, r.Type), append(ids, r.ID)
	}
	args := []any{tenants, types, ids, e.kind, e.data, nullable(e.sse), e.channels}
	query := o.insertMany
	if e.key != "" {
		query = o.upsertMany
		args = append(args, e.key)
	}
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: send %s to %d recipients: %w", e.kind, len(tenants), err)
	}
	byRecipient := make(map[Recipient]string, len(tenants))
	var r Recipient
	var id string
	_, err = pgx.ForEachRow(rows, []any{&r.Tenant, &r.Type, &r.ID, &id}, func() error {
		byRecipient[r] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: send %s to %d recipients: %w", e.kind, len(tenants), err)
	}
	out := make([]string, len(to))
	for i, r := range to {
		out[i] = byRecipient[r]
	}
	return out, nil
}

func checkName(field, v string) error {
	if len(v) > MaxNameBytes {
		return invalid(field, "is "+itoa(len(v))+" bytes, over the limit of "+itoa(MaxNameBytes))
	}
	if !utf8.ValidString(v) {
		return invalid(field, "is not valid UTF-8")
	}
	for _, c := range v {
		if c == 0 {
			return invalid(field, "contains a NUL byte")
		}
	}
	return nil
}

func encode(n Notification) (encoded, error) {
	if n == nil {
		return encoded{}, invalid("notification", "is nil")
	}
	e := encoded{kind: n.Type(), channels: []string{string(Database), string(SSE)}}
	if e.kind == "" {
		return e, invalid("type", "is empty")
	}
	if err := checkName("type", e.kind); err != nil {
		return e, err
	}
	var err error
	if e.data, err = jsonObject("data", n.ToDatabase(), MaxDataBytes); err != nil {
		return e, err
	}
	if e.data == nil {
		e.data = []byte("{}")
	}
	if l, ok := n.(Live); ok {
		if e.sse, err = jsonObject("sse", l.ToSSE(), MaxSSEBytes); err != nil {
			return e, err
		}
	}
	if r, ok := n.(Routed); ok {
		if e.channels, err = channels(r.Via()); err != nil {
			return e, err
		}
	}
	if k, ok := n.(Keyed); ok {
		e.key = k.DatabaseKey()
		if err := checkName("database key", e.key); err != nil {
			return e, err
		}
	}
	return e, nil
}

func channels(via []Channel) ([]string, error) {
	var db, sse bool
	for _, c := range via {
		switch c {
		case Database:
			db = true
		case SSE:
			sse = true
		default:
			return nil, invalid("channels", fmt.Sprintf("has unknown channel %q (want %q or %q)", c, Database, SSE))
		}
	}
	switch {
	case db && sse:
		return []string{string(Database), string(SSE)}, nil
	case db:
		return []string{string(Database)}, nil
	case sse:
		return []string{string(SSE)}, nil
	}
	return nil, invalid("channels", "is empty")
}

// nullable turns a nil payload into SQL NULL.
func nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}
