package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/internal/sqlq"
)

// Size limits, in bytes of UTF-8 text or of JSON as PostgreSQL writes jsonb
// out (a space after every ':' and ',', numbers in full). The table's CHECK
// constraints (migrations/sql/00005_writers.sql) enforce the same limits on
// every writer; the outbox checks first, for a clearer error and a
// transaction that stays usable. The SQL functions bellhop.send and
// send_many (migrations/sql/00006_send_function.sql, redefined by later migrations)
// check the same rules and limits with the same words: change them
// together.
const (
	// MaxDataBytes bounds ToDatabase: what the inbox stores and lists.
	MaxDataBytes = 64 << 10
	// MaxSSEBytes bounds ToSSE: it rides every stream event, so keep it small.
	MaxSSEBytes = 4 << 10
	// MaxNameBytes bounds the type, the database key and each recipient field.
	MaxNameBytes = bellhoptype.MaxNameBytes
)

// DB is what Send writes through with pgx: a pgx.Tx (the usual case: the
// caller's business transaction), or a *pgxpool.Pool or *pgx.Conn, where
// each call is its own single-statement transaction. For database/sql, see
// SQLDB and SendSQL.
type DB interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

//go:embed sql/*.sql
var queryFiles embed.FS

// Config configures an Outbox. The zero Config writes to the default schema.
type Config struct {
	// Schema is the schema Bellhop was migrated into: lower-case letters,
	// digits and underscores, at most 48 bytes. Defaults to "bellhop".
	Schema string
}

// Outbox writes notifications into one Bellhop schema. It holds no
// connection: every send goes through the transaction, pool or connection
// it is given, so one Outbox serves the whole application.
type Outbox struct {
	insertMany, upsertMany string
}

// New returns an Outbox for cfg. It fails only on an invalid Config.
func New(cfg Config) (*Outbox, error) {
	if cfg.Schema == "" {
		cfg.Schema = sqlq.DefaultSchema
	}
	set, err := sqlq.Load(queryFiles, cfg.Schema)
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
//
// When ctx holds an OpenTelemetry span, its W3C trace context goes into the
// row (the traceparent column): the relay's stamp and push spans link to
// it.
func (o *Outbox) Send(ctx context.Context, db DB, to Recipient, n Notification) (string, error) {
	if err := validateRecipient(to, "recipient"); err != nil {
		return "", err
	}
	return first(o.SendMany(ctx, db, []Recipient{to}, n))
}

// SendMany writes n for every recipient in one statement, one round trip,
// and returns the ids in the order of to. Repeated recipients get one row.
func (o *Outbox) SendMany(ctx context.Context, db DB, to []Recipient, n Notification) ([]string, error) {
	s, err := o.prepare(ctx, to, n)
	if err != nil || s == nil {
		return nil, err
	}
	rows, err := db.Query(ctx, s.query, s.args...)
	if err != nil {
		return nil, s.fail(err)
	}
	var r Recipient
	var id string
	_, err = pgx.ForEachRow(rows, []any{&r.Tenant, &r.Type, &r.ID, &id}, func() error {
		s.ids[r] = id
		return nil
	})
	if err != nil {
		return nil, s.fail(err)
	}
	return s.result(to)
}

// send is one validated SendMany, ready for either driver: the statement,
// its arguments (text and JSON only, which every driver binds alike), and
// the ids the statement returns, by recipient.
type send struct {
	query string
	args  []any
	kind  string
	ids   map[Recipient]string
}

// prepare validates a send and builds its statement. A nil send with no
// error means there is nothing to write (no recipients).
func (o *Outbox) prepare(ctx context.Context, to []Recipient, n Notification) (*send, error) {
	e, err := encode(n)
	if err != nil {
		return nil, err
	}
	if len(to) == 0 {
		return nil, nil
	}
	type row struct {
		Tenant string `json:"tenant_id"`
		Type   string `json:"notifiable_type"`
		ID     string `json:"notifiable_id"`
	}
	s := &send{kind: e.kind, ids: make(map[Recipient]string, len(to))}
	rows := make([]row, 0, len(to))
	for i, r := range to {
		if err := validateRecipient(r, fmt.Sprintf("recipients[%d]", i)); err != nil {
			return nil, err
		}
		if _, seen := s.ids[r]; seen {
			continue
		}
		s.ids[r] = ""
		rows = append(rows, row{Tenant: r.Tenant, Type: r.Type, ID: r.ID})
	}
	recipients, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("outbox: encode recipients: %w", err)
	}
	// Text only, as every argument (see sql/send.sql).
	escalate := ""
	if e.escalate > 0 {
		escalate = strconv.FormatInt(e.escalate.Microseconds(), 10)
	}
	s.args = []any{string(recipients), e.kind, string(e.data), nullable(e.sse), strings.Join(e.channels, ","),
		traceparent(ctx), strconv.FormatBool(e.critical), escalate, e.expires}
	s.query = o.insertMany
	if e.key != "" {
		s.query = o.upsertMany
		s.args = append(s.args, e.key)
	}
	return s, nil
}

func (s *send) fail(err error) error {
	return fmt.Errorf("outbox: send %s to %d recipients: %w", s.kind, len(s.ids), err)
}

// result returns the ids in the order of to.
func (s *send) result(to []Recipient) ([]string, error) {
	out := make([]string, len(to))
	for i, r := range to {
		if out[i] = s.ids[r]; out[i] == "" {
			return nil, s.fail(fmt.Errorf("no row returned for recipients[%d]", i))
		}
	}
	return out, nil
}

func first(ids []string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	return ids[0], nil
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
	if u, ok := n.(Urgent); ok {
		e.critical = u.Critical()
	}
	if x, ok := n.(Escalated); ok {
		e.escalate = x.EscalateAfter()
		if e.escalate < 0 || (e.escalate > 0 && e.escalate < time.Microsecond) || e.escalate > MaxEscalateAfter {
			return e, invalid("escalate after", "must be positive (or 0 for none), at least a microsecond and at most 366 days")
		}
	}
	if k, ok := n.(Keyed); ok {
		e.key = k.DatabaseKey()
		if err := checkName("database key", e.key); err != nil {
			return e, err
		}
	}
	if x, ok := n.(Expiring); ok {
		if at := x.ExpiresAt(); !at.IsZero() {
			// Times a client can parse, as the table's check says.
			if at.Before(minTime) || at.After(maxTime) {
				return e, invalid("expires_at", "is out of range (years 1 to 9999)")
			}
			e.expires = at.UTC().Format(time.RFC3339Nano)
		}
	}
	return e, nil
}

// The table's bounds on a time (notifications_inbox_times_valid).
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// channels normalizes via: each channel once, in the table's order.
func channels(via []Channel) ([]string, error) {
	var on [3]bool
	all := [3]Channel{Database, SSE, Webhook}
	for _, c := range via {
		i := slices.Index(all[:], c)
		if i < 0 {
			return nil, invalid("channels", fmt.Sprintf("has unknown channel %q (want %q, %q or %q)", c, Database, SSE, Webhook))
		}
		on[i] = true
	}
	var out []string
	for i, c := range all {
		if on[i] {
			out = append(out, string(c))
		}
	}
	if len(out) == 0 {
		return nil, invalid("channels", "is empty")
	}
	return out, nil
}

// traceparent is the W3C traceparent of the span in ctx, or SQL NULL when
// there is none. It is the W3C format whatever propagator the application
// set: that is what the column holds.
func traceparent(ctx context.Context) any {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	if tp := c.Get("traceparent"); tp != "" {
		return tp
	}
	return nil
}

// nullable turns a nil payload into SQL NULL.
func nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
