package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/internal/listen"
	"github.com/bellhophq/bellhop/internal/metrics"
	"github.com/bellhophq/bellhop/internal/tracing"
)

// tailBatch bounds the rows one tail query reads.
const tailBatch = 1000

// hub tails the relay log by seq and fans each row out to the streams of
// its recipient. It never blocks on a stream: when a stream's buffer is
// full, the hub stops feeding it and flags it behind; the stream then
// catches up from the database by seq (see Relay.stream). A client
// that stops reading altogether is cut by the write timeout.
type hub struct {
	pool     *pgxpool.Pool
	listener *listen.Listener
	metrics  *metrics.Metrics
	tracer   trace.Tracer
	log      *slog.Logger
	q        *queries
	buffer   int

	mu sync.RWMutex
	// cursor: every entry up to here has been fanned out. Written under
	// mu; read without it by the listener's filter.
	cursor atomic.Int64
	subs   map[bellhoptype.Recipient]map[*subscriber]struct{}
	count  int

	closed chan struct{} // closed by close: streams end, clients reconnect
	once   sync.Once
}

// subscriber is one open stream.
type subscriber struct {
	to bellhoptype.Recipient
	ch chan *row
	// lagging is set (under the hub's lock) when the buffer overflowed; the
	// hub feeds the stream nothing more until resume. behind tells the
	// stream's goroutine.
	lagging bool
	behind  chan struct{}
	// gone is closed when the hub shuts down.
	gone chan struct{}
	once sync.Once
	// prefs are the recipient's preferences, loaded when the stream opens
	// (nil: none yet); prefsStale is set when they changed since (the
	// preferences NOTIFY, or a reconnect of the listener that may have
	// missed one), and the stream reloads them before its next push.
	prefs      atomic.Pointer[inbox.Preferences]
	prefsStale atomic.Bool
}

func (s *subscriber) drop() { s.once.Do(func() { close(s.gone) }) }

func newHub(pool *pgxpool.Pool, channel, prefsChannel string, q *queries, buffer int, m *metrics.Metrics, tracer trace.Tracer, log *slog.Logger) *hub {
	h := &hub{
		pool:    pool,
		metrics: m,
		tracer:  tracer,
		log:     log,
		q:       q,
		buffer:  buffer,
		subs:    map[bellhoptype.Recipient]map[*subscriber]struct{}{},
		closed:  make(chan struct{}),
	}
	h.listener = listen.New(pool, channel, log)
	h.listener.OnReconnect = func() { m.ListenerReconnects.WithLabelValues("relayed").Inc() }
	// The payload is the new head: when this process stamped it, the hub
	// has it already (see stamped) and need not read it back.
	h.listener.Stale = func(payload string) bool {
		head, err := strconv.ParseInt(payload, 10, 64)
		return err == nil && head <= h.cursor.Load()
	}
	// Preference changes ride the same connection.
	h.listener.Also(prefsChannel, h.preferencesChanged)
	return h
}

// preferencesChanged marks the preferences of payload's recipient stale on
// its streams; after a reconnect, those of every stream.
func (h *hub) preferencesChanged(payload string, reconnected bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if reconnected {
		for _, set := range h.subs {
			for s := range set {
				s.prefsStale.Store(true)
			}
		}
		return
	}
	to, ok := inbox.ParseRecipientPayload(payload)
	if !ok {
		return
	}
	for s := range h.subs[to] {
		s.prefsStale.Store(true)
	}
}

// start reads the current head, so the hub pushes only what comes after it
// (a stream that wants older events asks with Last-Event-ID).
func (h *hub) start(ctx context.Context) error {
	var head int64
	if err := h.pool.QueryRow(ctx, h.q.head).Scan(&head); err != nil {
		return fmt.Errorf("read relay head: %w", err)
	}
	h.cursor.Store(head)
	return nil
}

// run tails until ctx ends.
func (h *hub) run(ctx context.Context) {
	go h.listener.Run(ctx)
	// The listener wakes the hub on every relayed NOTIFY and reconnect; the
	// ticker is a backstop that costs one indexed query a second.
	backstop := time.NewTicker(time.Second)
	defer backstop.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.listener.Wake:
		case <-backstop.C:
		}
		for {
			n, err := h.tail(ctx)
			if err != nil {
				if ctx.Err() == nil {
					h.log.Warn("tail relayed rows", "err", err)
				}
				break
			}
			if n < tailBatch {
				break
			}
		}
	}
}

// tail reads the rows after the cursor once and fans them out.
func (h *hub) tail(ctx context.Context) (int, error) {
	rows, err := h.pool.Query(ctx, h.q.tail, h.cursor.Load(), tailBatch)
	if err != nil {
		return 0, err
	}
	batch, err := pgx.CollectRows(rows, scanRow)
	if err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}
	h.mu.Lock()
	h.fanOut(ctx, batch)
	h.mu.Unlock()
	return len(batch), nil
}

// stamped pushes what this process's stamp just stamped and committed,
// unless the hub is missing entries up to after, the head before them
// (another replica's): then it reads them all in order from the table.
func (h *hub) stamped(ctx context.Context, after int64, events []bellhoptype.Event) {
	batch := make([]*row, len(events))
	for i, e := range events {
		batch[i] = newRow(e)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if after > h.cursor.Load() {
		h.listener.Kick()
		return
	}
	h.fanOut(ctx, batch)
}

// fanOut hands each row after the cursor to its recipient's streams and
// moves the cursor, in a span ("bellhop.push": a child of the stamp's when
// the stamping process pushes, linked to the spans the rows were written
// in). The caller holds h.mu.
func (h *hub) fanOut(ctx context.Context, batch []*row) {
	_, span := h.tracer.Start(ctx, "bellhop.push")
	defer span.End()
	var links tracing.Links
	events, deliveries := 0, 0
	for _, r := range batch {
		if r.Seq <= h.cursor.Load() {
			continue // the stamp's own push, or the tail's, came first
		}
		if r.pushed() {
			events++
			if span.IsRecording() {
				links.Add(r.traceparent)
			}
			for s := range h.subs[r.to] {
				if s.lagging {
					continue
				}
				select {
				case s.ch <- r:
					deliveries++
				default:
					s.lagging = true
					s.behind <- struct{}{} // cap 1, empty while not lagging
					h.metrics.StreamsBehind.Inc()
				}
			}
			h.metrics.ObserveLag(r.changed)
		}
		h.cursor.Store(r.Seq)
	}
	if span.IsRecording() {
		for _, l := range links.List() {
			span.AddLink(l)
		}
		span.SetAttributes(attribute.Int("bellhop.push.events", events),
			attribute.Int("bellhop.push.deliveries", deliveries),
			attribute.Int64("bellhop.push.cursor", h.cursor.Load()))
	}
}

var errClosed = errors.New("relay is shutting down")

// subscribe registers a stream for to and returns it with the hub's cursor
// at that moment: the stream gets every row after it.
func (h *hub) subscribe(to bellhoptype.Recipient) (*subscriber, int64, error) {
	s := &subscriber{to: to, ch: make(chan *row, h.buffer), behind: make(chan struct{}, 1), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closed:
		return nil, 0, errClosed
	default:
	}
	if h.subs[to] == nil {
		h.subs[to] = map[*subscriber]struct{}{}
	}
	h.subs[to][s] = struct{}{}
	h.count++
	h.metrics.StreamsConnected.Inc()
	return s, h.cursor.Load(), nil
}

// resume feeds a lagging stream again from now on and returns the cursor:
// the stream must read what it missed, up to it, from the database.
func (h *hub) resume(s *subscriber) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.lagging = false
	return h.cursor.Load()
}

func (h *hub) unsubscribe(s *subscriber) {
	s.drop()
	h.mu.Lock()
	defer h.mu.Unlock()
	if set, ok := h.subs[s.to]; ok {
		if _, ok := set[s]; ok {
			delete(set, s)
			h.count--
			h.metrics.StreamsConnected.Dec()
			if len(set) == 0 {
				delete(h.subs, s.to)
			}
		}
	}
}

// streams returns the number of open streams, and those of to.
func (h *hub) streams(to bellhoptype.Recipient) (all, mine int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.count, len(h.subs[to])
}

// close ends every stream; their clients reconnect (to another replica).
func (h *hub) close() {
	h.once.Do(func() {
		h.mu.Lock()
		close(h.closed)
		for _, set := range h.subs {
			for s := range set {
				s.drop()
			}
		}
		h.mu.Unlock()
	})
}
