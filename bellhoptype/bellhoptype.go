// Package bellhoptype holds the types Bellhop's packages share: who a
// notification is for (Recipient) and one relay log entry as the stamper
// hands it to the hub (Event). It imports nothing of Bellhop's, so that
// outbox, inbox, worker and relay can all use them without importing each
// other, as River's rivertype does.
package bellhoptype

import "time"

// MaxNameBytes bounds a notification's type, its database key and each
// Recipient field, in bytes; the table's CHECK constraints enforce it.
const MaxNameBytes = 255

// Recipient is who a notification is for: a notifiable (Type, ID) within a
// tenant. The zero Tenant is the single-tenant default. The db tags are the
// columns of bellhop.notifications that hold it.
type Recipient struct {
	Tenant string `db:"tenant_id"`
	Type   string `db:"notifiable_type"`
	ID     string `db:"notifiable_id"`
}

// User is the recipient of type "User" with the given id and no tenant.
func User(id string) Recipient { return Recipient{Type: "User", ID: id} }

// Event is one relay log entry with its notification's state: what streams
// push. Its db tags name the columns of the relay_events view
// (migrations/sql/00002_relay_log.sql), which the stamp query's RETURNING
// list and the hub's queries select by the same names; internal/sqlq's
// ScanStruct reads a row into it by name.
type Event struct {
	// Seq is the event id: the entry's seq in relay_log.
	Seq int64 `db:"seq"`
	// Current is false for a stale entry: its row changed again (a later
	// entry carries it) or is gone. Only Seq and To are set.
	Current bool `db:"current"`
	// ID is the notification's id.
	ID string `db:"id"`
	// To is the notification's recipient.
	To Recipient `db:",inline"`
	// Type is the notification's type.
	Type string `db:"type"`
	// Op is what happened: created, updated, read, unread, deleted,
	// archived, unarchived, expired, read_all or seen.
	Op string `db:"op"`
	// SSE is the notification's live payload (JSON), if any.
	SSE []byte `db:"sse"`
	// DatabaseKey is the key of a progress notification, if any.
	DatabaseKey *string `db:"database_key"`
	// ReadAt is when the recipient read it, nil while unread.
	ReadAt *time.Time `db:"read_at"`
	// ViaSSE reports whether the notification goes to the sse channel:
	// streams get its created and updated events.
	ViaSSE bool `db:"via_sse"`
	// Changed is the row's updated_at (the entry's logged_at when the row
	// is gone).
	Changed time.Time `db:"changed"`
	// Traceparent is the W3C trace context the writer sent the row in, if
	// any (the traceparent column): the stamp's and the push's spans link
	// to it.
	Traceparent *string `db:"traceparent"`
	// Critical notifications are pushed whatever the recipient's
	// preferences say.
	Critical bool `db:"critical"`
}
