package relay

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/internal/sqlq"
)

// Event is the JSON of one SSE event, the `data:` of `event: notification`.
type Event struct {
	// Seq is the event id: the seq of the row's relay_log entry, strictly
	// increasing on a stream. It is also the SSE `id:`.
	Seq int64 `json:"seq"`
	// Op is what happened: created, updated, read, unread, deleted,
	// archived, unarchived, expired (the notification's time ran out: it
	// leaves the inbox), read_all (one event for a mark-all-read), seen
	// (one event for a mark-seen; sse.until is its up_to, if given) or
	// refetch (the stream could not replay from the client's id; reload
	// everything).
	Op string `json:"op"`
	// ID is the notification's id (empty for refetch).
	ID          string          `json:"id,omitempty"`
	Type        string          `json:"type,omitempty"`
	DatabaseKey *string         `json:"database_key"`
	ReadAt      *time.Time      `json:"read_at"`
	SSE         json.RawMessage `json:"sse"`
}

// row is an event as read from the table, with its recipient.
type row struct {
	Event
	// current is false for a stale log entry: the row changed again (a
	// later entry pushes it) or is gone. It only moves the cursor.
	current bool
	to      bellhoptype.Recipient
	viaSSE  bool // the notification goes to the sse channel
	// critical: pushed whatever the recipient's preferences say.
	critical bool
	changed  time.Time
	frame    []byte // the encoded SSE frame, shared by every stream
	// traceparent is the writer's trace context, for the push's span.
	traceparent *string
}

// pushed reports whether streams get this row: everything a reader did
// (read, unread, deleted, read_all, seen, archived, unarchived) and expiry
// is pushed so other tabs follow; new and
// updated notifications only when they go to the sse channel.
func (r *row) pushed() bool {
	return r.current && (r.viaSSE || (r.Op != "created" && r.Op != "updated"))
}

// mutable reports whether the recipient's sse preference may hold this
// row back: a new or updated notification that is not critical. What a
// reader did (read, unread, deleted, read_all) is always pushed, so other
// tabs follow.
func (r *row) mutable() bool {
	return !r.critical && (r.Op == "created" || r.Op == "updated")
}

func scanRow(cr pgx.CollectableRow) (*row, error) {
	e, err := sqlq.ScanStruct[bellhoptype.Event](cr)
	if err != nil {
		return nil, err
	}
	return newRow(e), nil
}

// newRow makes an entry an event, its frame rendered once for every stream.
func newRow(e bellhoptype.Event) *row {
	r := &row{
		Event:    Event{Seq: e.Seq, Op: e.Op, ID: e.ID, Type: e.Type, DatabaseKey: e.DatabaseKey, ReadAt: e.ReadAt},
		current:  e.Current,
		to:       e.To,
		viaSSE:   e.ViaSSE,
		critical: e.Critical,
		changed:  e.Changed,

		traceparent: e.Traceparent,
	}
	if !r.current {
		return r
	}
	if e.SSE != nil {
		r.SSE = e.SSE
	}
	if r.Op == "read_all" || r.Op == "seen" {
		// The marker row is not a notification of the inbox.
		r.ID, r.Type = "", ""
	}
	r.frame = encodeFrame(r.Seq, "notification", &r.Event)
	return r
}

// encodeFrame renders one SSE event. JSON never contains a raw newline, so
// one data: line carries it whatever the payload holds.
func encodeFrame(id int64, event string, e *Event) []byte {
	data, err := json.Marshal(e)
	if err != nil {
		// Only a time outside RFC 3339 can fail, and the schema's checks
		// keep those out; should one slip through, the event goes without
		// it rather than stop the hub.
		data, _ = json.Marshal(Event{Seq: e.Seq, Op: e.Op, ID: e.ID, Type: e.Type, DatabaseKey: e.DatabaseKey, SSE: e.SSE})
	}
	var b bytes.Buffer
	b.Grow(len(data) + 48)
	b.WriteString("id: ")
	b.WriteString(strconv.FormatInt(id, 10))
	b.WriteString("\nevent: ")
	b.WriteString(event)
	b.WriteString("\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	return b.Bytes()
}
