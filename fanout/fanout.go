// Package fanout carries stamped events from the stamping relay replica to
// the others through a message broker (NATS or Redis), so that a replica
// learns of a batch without a NOTIFY from PostgreSQL and gets the events of
// its own streams' recipients without reading the log.
//
// PostgreSQL stays the source of truth. The broker is a shortcut that may
// lose anything: a replica that misses a message (the broker restarted, a
// partition, a subscription not yet active, a slow consumer cut) notices
// the gap by the batch bounds every message carries and reads the log, as
// it does without a broker.
//
// For each committed stamp, the stamping process publishes, on one
// connection and in this order:
//
//   - on "<prefix>.r.<hash>", for each recipient hash the batch touches,
//     that hash's events of the batch;
//   - on "<prefix>.head", the batch's bounds (the head before it, the new
//     head) and every hash it touches.
//
// A replica subscribes to the head subject and to the subject of each hash
// it holds streams for; a broker delivers one connection's messages to a
// subscriber in the order they were published, so a replica that receives
// a head has by then received the events of its hashes in that batch, or
// has lost them (and reads the log).
//
// The hash is the first 8 hex digits of the md5 of tenant, type and id
// joined by U+001F (Hash), the one the stamp's NOTIFY names recipients by.
// Recipients that share a hash share a subject; a replica drops the others'
// events.
package fanout

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/bellhophq/bellhop/bellhoptype"
)

// Batch is one committed stamp: the events in (Before, Head], in seq order.
type Batch struct {
	Before, Head int64
	Events       []bellhoptype.Event
}

// Message is what a subscriber receives: a head (Hashes set, Events nil)
// or one hash's events of a batch (Hash and Events set).
type Message struct {
	Before, Head int64
	// Hashes are every recipient hash of the batch (a head message).
	Hashes []string
	// Hash and Events: one hash's events of the batch.
	Hash   string
	Events []bellhoptype.Event
}

// IsHead reports whether m is a batch's head.
func (m Message) IsHead() bool { return m.Hash == "" }

// Broker is one process's connection to the broker.
type Broker interface {
	// Publish sends a committed batch: each hash's events, then the head.
	// An error means some may not have gone out.
	Publish(ctx context.Context, b Batch) error
	// Up reports whether the connection is up: while it is not, the
	// stamping process announces its batches through PostgreSQL, and the
	// hub reads the log on a short timer.
	Up() bool
	// Follow and Unfollow change the hashes this process receives events
	// for; heads always come. They do not block: a subscription becomes
	// active some time after (a batch whose events it misses is read from
	// the log).
	Follow(hash string)
	Unfollow(hash string)
	// Messages delivers what was received, in the order received.
	Messages() <-chan Message
	// Close disconnects; Messages is closed after.
	Close() error
}

// Hash names a recipient on the broker (and in the stamp's NOTIFY).
func Hash(to bellhoptype.Recipient) string {
	sum := md5.Sum([]byte(to.Tenant + "\x1f" + to.Type + "\x1f" + to.ID))
	return hex.EncodeToString(sum[:4])
}

// Open connects to the broker named by rawURL: nats://host:port (core
// NATS: no JetStream stream is needed, PostgreSQL keeps the events) or
// redis://host:port/db (Redis pub/sub). prefix starts every subject or
// channel name: replicas of one deployment share it, deployments sharing a
// broker must not.
func Open(ctx context.Context, rawURL, prefix string) (Broker, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("fan-out URL: %w", err)
	}
	if prefix == "" || strings.ContainsAny(prefix, " \t\r\n*>") {
		return nil, fmt.Errorf("fan-out prefix %q: want a non-empty name without spaces, * or >", prefix)
	}
	switch u.Scheme {
	case "nats", "tls":
		return openNATS(ctx, rawURL, prefix)
	case "redis", "rediss":
		return openRedis(ctx, rawURL, prefix)
	default:
		return nil, fmt.Errorf("fan-out URL %q: the scheme must be nats://, tls:// (NATS) or redis://, rediss:// (Redis)", redact(u))
	}
}

func redact(u *url.URL) string { return u.Redacted() }

// queue bounds the messages received but not yet taken by the hub; past
// it, messages are dropped (the hub reads the log for what it misses).
const queue = 1 << 16

// wire is a message's JSON.
type wire struct {
	Before int64               `json:"b"`
	Head   int64               `json:"h"`
	Hashes []string            `json:"x,omitempty"`
	Events []bellhoptype.Event `json:"e,omitempty"`
}

// split turns a batch into its messages: one per hash (in the batch's
// order of first appearance), then the head.
func split(b Batch) (hashes []string, bodies [][]byte, head []byte, err error) {
	byHash := map[string][]bellhoptype.Event{}
	for _, e := range b.Events {
		x := Hash(e.To)
		if _, ok := byHash[x]; !ok {
			hashes = append(hashes, x)
		}
		byHash[x] = append(byHash[x], e)
	}
	for _, x := range hashes {
		body, err := json.Marshal(wire{Before: b.Before, Head: b.Head, Events: byHash[x]})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("encode events: %w", err)
		}
		bodies = append(bodies, body)
	}
	head, err = json.Marshal(wire{Before: b.Before, Head: b.Head, Hashes: hashes})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode head: %w", err)
	}
	return hashes, bodies, head, nil
}

// decode reads a message received on a subject; hash is "" for the head.
func decode(hash string, body []byte) (Message, error) {
	var w wire
	if err := json.Unmarshal(body, &w); err != nil {
		return Message{}, err
	}
	if w.Head <= w.Before {
		return Message{}, errors.New("head not after before")
	}
	m := Message{Before: w.Before, Head: w.Head}
	if hash == "" {
		m.Hashes = w.Hashes
		if m.Hashes == nil {
			m.Hashes = []string{}
		}
		return m, nil
	}
	m.Hash, m.Events = hash, w.Events
	for _, e := range m.Events {
		if e.Seq <= w.Before || e.Seq > w.Head || Hash(e.To) != hash {
			return Message{}, errors.New("event outside its batch or hash")
		}
	}
	return m, nil
}
