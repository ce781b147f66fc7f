package outbox

import (
	"encoding/json"
	"time"
)

// Notification is something to tell a recipient. ToDatabase is what the
// inbox stores and lists; it must marshal to a JSON object (nil stores {}).
//
// A notification may also implement Live (a small payload pushed on the
// stream), Routed (which channels it goes to), Keyed (a progress
// notification updated in place), Urgent (critical: the recipient's
// preferences cannot mute it), Escalated (a webhook if still unread
// after a while) and Expiring (it leaves the inbox at a given time).
type Notification interface {
	Type() string
	ToDatabase() any
}

// Live is implemented by a notification whose stream event carries a
// payload of its own; it must marshal to a JSON object. Without it, the
// event carries the notification's id and type only.
type Live interface {
	ToSSE() any
}

// Routed is implemented by a notification that goes to fewer than both
// channels.
type Routed interface {
	Via() []Channel
}

// Keyed is implemented by a progress notification: every send with the same
// key to the same recipient updates one row in place and pushes again.
type Keyed interface {
	DatabaseKey() string
}

// Urgent is implemented by a notification that may be critical: a
// critical one is listed, counted, pushed and posted whatever the
// recipient's preferences say.
type Urgent interface {
	Critical() bool
}

// Escalated is implemented by a notification that asks for a
// notification.unread webhook when it is still unread (and not deleted)
// this long after it was written; 0 means none, or the relay's default for
// its type.
type Escalated interface {
	EscalateAfter() time.Duration
}

// MaxEscalateAfter is the longest escalation the table takes (its check
// notifications_escalate_after_max_366_days holds every writer to it).
const MaxEscalateAfter = 366 * 24 * time.Hour

// Expiring is implemented by a notification that leaves the inbox by
// itself: from ExpiresAt on it is neither listed nor counted, open tabs get
// an expired event (within the relay's sweep interval, 1s by default), and
// the row is pruned once the replay window has passed. The zero time means
// it never expires.
type Expiring interface {
	ExpiresAt() time.Time
}

// Channel is where a notification goes.
type Channel string

const (
	// Database stores the notification in the inbox: listed and counted.
	Database Channel = "database"
	// SSE pushes it live to the recipient's open streams.
	SSE Channel = "sse"
	// Webhook posts it, signed, to the relay's webhook URL, once.
	Webhook Channel = "webhook"
)

// Message is a Notification built from values, for callers that do not
// define a type of their own.
type Message struct {
	// Kind is the notification's type, e.g. "invoice.paid": what Type
	// returns (a field cannot share its method's name). Required.
	Kind string
	// Data is the inbox payload, what ToDatabase returns: a value that
	// marshals to a JSON object. Defaults to nil, stored as {}.
	Data any
	// SSE is the live payload, what ToSSE returns. Defaults to nil: the
	// stream event carries the id and type only.
	SSE any
	// Channels is what Via returns. Defaults to both, Database and SSE.
	Channels []Channel
	// Key is the database key, what DatabaseKey returns: it makes this a
	// progress notification. Defaults to "" (a new row every send).
	Key string
	// IsCritical is what Critical returns: preferences cannot mute it.
	// Defaults to false.
	IsCritical bool
	// Escalate is what EscalateAfter returns. Defaults to 0: the relay's
	// default for the type, if any.
	Escalate time.Duration
	// Expires is what ExpiresAt returns. Defaults to the zero time: the
	// notification never expires.
	Expires time.Time
}

func (m Message) Type() string         { return m.Kind }
func (m Message) ToDatabase() any      { return m.Data }
func (m Message) ToSSE() any           { return m.SSE }
func (m Message) DatabaseKey() string  { return m.Key }
func (m Message) ExpiresAt() time.Time { return m.Expires }

// Critical returns m.IsCritical.
func (m Message) Critical() bool { return m.IsCritical }

// EscalateAfter returns m.Escalate.
func (m Message) EscalateAfter() time.Duration { return m.Escalate }

// Via returns m.Channels, or both channels when it is empty.
func (m Message) Via() []Channel {
	if len(m.Channels) == 0 {
		return []Channel{Database, SSE}
	}
	return m.Channels
}

// encoded is a validated notification, ready for SQL.
type encoded struct {
	kind     string
	data     []byte
	sse      []byte // nil: NULL
	channels []string
	key      string // "": not keyed
	critical bool
	escalate time.Duration // 0: none
	expires  any           // nil: never; else RFC 3339 text
}

func jsonObject(field string, v any, limit int) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	if raw, ok := v.(json.RawMessage); ok && raw == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, invalid(field, "cannot be encoded as JSON: "+err.Error())
	}
	if string(b) == "null" {
		return nil, nil
	}
	if len(b) == 0 || b[0] != '{' {
		return nil, invalid(field, "must be a JSON object")
	}
	// Measured as stored: what the table's constraint and the stream see.
	size, err := storedSize(b)
	if err != nil {
		return nil, invalid(field, err.Error())
	}
	if size > limit {
		return nil, invalid(field, "is "+itoa(size)+" bytes of JSON as PostgreSQL stores it, over the limit of "+itoa(limit))
	}
	return b, nil
}
