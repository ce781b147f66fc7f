package integration

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/bellhophq/bellhop/internal/sseclient"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// drillEvent is one event a client received.
type drillEvent struct {
	Seq      int64
	ID, Type string
	At       time.Time
}

// drillClient is one browser tab's EventSource: it reconnects whenever the
// stream drops or ends, or a connect fails, after the relay's retry: hint
// (with jitter), sending Last-Event-ID (the last id: it saw, with or without
// data), and moves to the next replica each time. The drills' relays hint
// drillRetry, not the default 2 s, to keep the drills short; while a client
// waits, the other replicas (or the restarted one) go on stamping, so its
// resume has something to replay.
// It is internal/sseclient's EventSource, checking each frame as a Bellhop
// event.
type drillClient struct {
	*sseclient.EventSource
	to outbox.Recipient
}

// newDrillClient makes to's client; it connects to urls()[first] first,
// then to the next replica each time, resuming from last ("" for none).
func newDrillClient(to outbox.Recipient, tok string, hc *http.Client, urls func() []string, first int, last string) *drillClient {
	c := &drillClient{to: to}
	c.EventSource = &sseclient.EventSource{
		Client: hc,
		Header: http.Header{"Authorization": {"Bearer " + tok}},
		URL: func(n int) string {
			u := urls()
			return u[(first+n)%len(u)] + "/notifications/stream"
		},
		Retry:       drillRetry,
		LastEventID: last,
		OnFrame:     c.check,
	}
	return c
}

// check holds a frame with data to Bellhop's event format; one that does
// not decode is left out of the records.
func (c *drillClient) check(f sseclient.Frame, _ time.Time) bool {
	if !f.HasData {
		return true
	}
	var ev relay.Event
	if err := json.Unmarshal([]byte(f.Data), &ev); err != nil {
		c.ProblemLocked("undecodable event %q: %v", f.Data, err)
		return false
	}
	seq, _ := f.Seq()
	switch {
	case f.Event != "notification":
		c.ProblemLocked("event named %q", f.Event)
	case !f.HasID:
		c.ProblemLocked("event %d without an id:", ev.Seq)
	case ev.Seq != seq:
		c.ProblemLocked("event seq %d under id: %d", ev.Seq, seq)
	case ev.Op != "created":
		c.ProblemLocked("event %d has op %q", ev.Seq, ev.Op)
	}
	return true
}

// received is how many events arrived.
func (c *drillClient) received() int { return c.Len() }

// events decodes the events that arrived, in order.
func (c *drillClient) events() []drillEvent {
	var out []drillEvent
	for _, r := range c.Received() {
		var ev relay.Event
		_ = json.Unmarshal([]byte(r.Data), &ev)
		out = append(out, drillEvent{Seq: ev.Seq, ID: ev.ID, Type: ev.Type, At: r.At})
	}
	return out
}
