package worker

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bellhophq/bellhop/outbox"
)

// Entry is one relay log entry with its row's state: what streams push.
// The stamp returns the entries it logged, and the relay_events view the
// hub reads (migrations/sql/00002_relay_log.sql) has the same columns.
type Entry struct {
	// Seq is the event id.
	Seq int64
	// Current is false for a stale entry: its row changed again (a later
	// entry carries it) or is gone. Only Seq and To are set.
	Current     bool
	ID          string
	To          outbox.Recipient
	Type        string
	Op          string
	SSE         []byte
	DatabaseKey *string
	ReadAt      *time.Time
	// Live: the row goes to the sse channel.
	Live bool
	// Changed is the row's updated_at.
	Changed time.Time
}

// ScanEntry reads one entry.
func ScanEntry(row pgx.CollectableRow) (Entry, error) {
	var e Entry
	err := row.Scan(e.fields()...)
	return e, err
}

func (e *Entry) fields() []any {
	return []any{&e.Seq, &e.Current, &e.ID, &e.To.Tenant, &e.To.Type, &e.To.ID, &e.Type, &e.Op,
		&e.SSE, &e.DatabaseKey, &e.ReadAt, &e.Live, &e.Changed}
}
