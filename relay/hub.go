package relay

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/fanout"
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
	// byHash are the recipients of subs by the hash the relayed NOTIFY
	// names them by (recipientHash).
	byHash map[string]map[bellhoptype.Recipient]struct{}
	// notes are the relayed NOTIFYs that name their batch's recipients, in
	// order, for run; one that finds it full wakes a full read instead.
	notes chan note
	// named: the database hashes recipients as recipientHash does (set
	// by start); if not, every NOTIFY wakes a full read.
	named bool
	// key signs the relayed NOTIFYs that name their batch (notify_key, read
	// by start; see parseNote); forgedAt is when one whose MAC did not
	// match was last logged (unix nanoseconds).
	key      []byte
	forgedAt atomic.Int64

	// fanout, if not nil, is the broker that carries batches (see
	// fromBroker); held are the events it brought, by batch head and
	// recipient hash, until the batch's head message comes.
	fanout fanout.Broker
	held   map[int64]map[string][]*row
	// ahead are heads that came before the cursor reached them, by the
	// head before their batch, waiting since aheadSince (see takeHeads).
	ahead      map[int64]fanout.Message
	aheadSince time.Time

	// stamping counts this process's stamps in flight (StampStarted, and
	// not yet StampEnded): a relayed NOTIFY that comes meanwhile is most
	// likely that stamp's own, whose events Stamped pushes without a read,
	// so the hub puts it off (deferred, wakeDeferred: run's own) until the
	// stamp has ended, and drops it then if the cursor has passed it.
	// stampDone is signalled at every end.
	stamping      atomic.Int32
	stampDone     chan struct{}
	deferred      []note
	wakeDeferred  bool
	deferredSince time.Time

	// joined, if set, hears that a process began to listen on the relayed
	// channel (joinedNote): the worker of this process then NOTIFYs again.
	joined func()

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
		pool:      pool,
		metrics:   m,
		tracer:    tracer,
		log:       log,
		q:         q,
		buffer:    buffer,
		subs:      map[bellhoptype.Recipient]map[*subscriber]struct{}{},
		byHash:    map[string]map[bellhoptype.Recipient]struct{}{},
		notes:     make(chan note, 256),
		stampDone: make(chan struct{}, 1),
		held:      map[int64]map[string][]*row{},
		ahead:     map[int64]fanout.Message{},
		closed:    make(chan struct{}),
	}
	h.listener = listen.New(pool, channel, log)
	h.listener.OnReconnect = func() { m.ListenerReconnects.WithLabelValues("relayed").Inc() }
	// The payload is the new head: when this process stamped it, the hub
	// has it already (see stamped) and need not read it back. When it
	// names the batch's recipients too, run handles it (see note).
	h.listener.Stale = func(payload string) bool {
		if payload == joinedNote {
			if h.joined != nil {
				h.joined()
			}
			return true
		}
		n, ok, forged := parseNote(payload, h.key)
		if forged {
			h.warnForged()
		}
		if !ok {
			return false
		}
		if n.head <= h.cursor.Load() {
			return true
		}
		if (n.hashes == nil || !h.named) && h.stamping.Load() == 0 {
			return false
		}
		select {
		case h.notes <- n:
			return true
		default:
			return false
		}
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
	if err := h.pool.QueryRow(ctx, h.q.head).Scan(&head, &h.key); err != nil {
		return fmt.Errorf("read relay head: %w", err)
	}
	h.cursor.Store(head)
	// A hash that differs would skip a stream's events: the database must
	// agree, non-ASCII bytes included (its encoding is not UTF-8, or a
	// future change on one side only).
	probe := bellhoptype.Recipient{Tenant: "t\u00e9", Type: "User", ID: "\u2713-1"}
	var x string
	err := h.pool.QueryRow(ctx, "SELECT left(md5($1::text || chr(31) || $2::text || chr(31) || $3::text), 8)",
		probe.Tenant, probe.Type, probe.ID).Scan(&x)
	h.named = err == nil && x == recipientHash(probe)
	if !h.named {
		h.log.Warn("the database hashes recipients differently: every replica reads every batch", "err", err)
	}
	return nil
}

// run tails until ctx ends.
func (h *hub) run(ctx context.Context) {
	go h.listener.Run(ctx)
	// The listener wakes the hub on every relayed NOTIFY and reconnect; the
	// ticker is a backstop that costs one indexed query a second.
	// With a broker, it ticks every 100ms and reads the log on each tick
	// while the broker is down, else once a second.
	every := time.Second
	var messages <-chan fanout.Message
	if h.fanout != nil {
		every, messages = 100*time.Millisecond, h.fanout.Messages()
	}
	backstop := time.NewTicker(every)
	defer backstop.Stop()
	ticks := 0
	// reorder looks at the heads waiting in ahead, with a broker.
	var reorder <-chan time.Time
	if h.fanout != nil {
		t := time.NewTicker(reorderWait / 2)
		defer t.Stop()
		reorder = t.C
	}
	for {
		select {
		case <-reorder:
			if len(h.ahead) == 0 || h.takeHeads(ctx) {
				continue
			}
		case <-ctx.Done():
			return
		case n := <-h.notes:
			if h.stamping.Load() > 0 {
				h.putOff(&n)
				continue
			}
			if n.hashes == nil || !h.named {
				// Unnamed (passed on while this process stamped): a wake.
				if n.head <= h.cursor.Load() {
					continue
				}
			} else if n, ok := h.merge(n); ok && h.note(ctx, n, false, nil) {
				continue
			}
		case <-h.stampDone:
			// Stamps back to back (a backlog) put off no NOTIFY longer
			// than deferWait.
			if h.stamping.Load() > 0 && time.Since(h.deferredSince) < deferWait {
				continue
			}
			if !h.takeDeferred(ctx) {
				continue
			}
		case m, ok := <-messages:
			if !ok {
				messages = nil
				continue
			}
			if h.fromBroker(ctx, m) {
				continue
			}
		case <-h.listener.Wake:
			if h.stamping.Load() > 0 {
				h.putOff(nil)
				continue
			}
		case <-backstop.C:
			ticks++
			if h.fanout != nil && h.fanout.Up() && ticks%10 != 0 {
				continue
			}
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

// deferWait bounds how long a NOTIFY waits for this process's stamps.
const deferWait = 20 * time.Millisecond

// putOff defers a NOTIFY (n, or a wake when nil) until the stamp ends.
func (h *hub) putOff(n *note) {
	if len(h.deferred) == 0 && !h.wakeDeferred {
		h.deferredSince = time.Now()
	}
	if n == nil || len(h.deferred) >= cap(h.notes) {
		h.wakeDeferred = true
		return
	}
	h.deferred = append(h.deferred, *n)
}

// takeDeferred handles the NOTIFYs put off while this process stamped:
// those the cursor has passed (the stamp's own, pushed by Stamped) are
// dropped, the others handled as they would have been. It reports whether
// the hub must read the log after its cursor.
func (h *hub) takeDeferred(ctx context.Context) bool {
	notes, wake := h.deferred, h.wakeDeferred
	h.deferred, h.wakeDeferred = h.deferred[:0], false
	for _, n := range notes {
		if n.head <= h.cursor.Load() {
			continue
		}
		if n.hashes == nil || !h.named || !h.note(ctx, n, false, nil) {
			wake = true
		}
	}
	return wake
}

// stampStarted and stampEnded bracket each stamp of this process's worker
// (worker.StampObserver).
func (h *hub) stampStarted() { h.stamping.Add(1) }

func (h *hub) stampEnded() {
	h.stamping.Add(-1)
	select {
	case h.stampDone <- struct{}{}:
	default:
	}
}

// tail reads the rows after the cursor once and fans them out.
func (h *hub) tail(ctx context.Context) (int, error) {
	h.metrics.LogReads.WithLabelValues("tail").Inc()
	rows, err := h.pool.Query(ctx, h.q.tail, h.cursor.Load(), tailBatch)
	if err != nil {
		return 0, err
	}
	batch, err := pgx.CollectRows(rows, scanRow)
	if err != nil {
		return 0, err
	}
	h.metrics.LogRows.WithLabelValues("tail").Add(float64(len(batch)))
	if len(batch) == 0 {
		return 0, nil
	}
	h.mu.Lock()
	h.fanOut(ctx, batch)
	h.mu.Unlock()
	return len(batch), nil
}

// note is a relayed NOTIFY's payload: "head" alone (the batch's recipients
// did not fit in one), or "head before mac hash..." for the batch of
// entries in (before, head], one hash per recipient (see recipientHash and
// the Stamp statement in worker/sql).
type note struct {
	head, before int64
	hashes       []string // nil: not named
}

// joinedNote is the relayed NOTIFY of a hub that has just begun to
// listen (RegisterListener in sql/relay.sql): no batch, a hello to the
// stamping process.
const joinedNote = "listening"

// parseNote reads a relayed NOTIFY's payload. Any role that may connect
// can NOTIFY: a named batch counts only with the MAC that key makes of its
// other fields (see noteMAC). Without it the note names nothing, and is
// only a wake-up: the hub reads the log after its cursor, as for a note
// that does not follow it, and never moves its cursor to a head the note
// gave. forged reports such a note.
func parseNote(payload string, key []byte) (n note, ok, forged bool) {
	f := strings.Fields(payload)
	if len(f) == 0 || len(f) == 2 || len(f) == 3 {
		return note{}, false, false
	}
	head, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return note{}, false, false
	}
	n = note{head: head}
	if len(f) > 3 {
		if n.before, err = strconv.ParseInt(f[1], 10, 64); err != nil {
			return note{}, false, false
		}
		want := noteMAC(key, f[0]+" "+f[1]+" "+strings.Join(f[3:], " "))
		if len(key) == 0 || subtle.ConstantTimeCompare([]byte(f[2]), []byte(want)) != 1 {
			return note{head: head}, true, true
		}
		n.hashes = f[3:]
	}
	return n, true, false
}

// noteMAC is the MAC of a named note's fields: the first 32 hex digits of
// sha256(key || fields), as the Stamp statement makes it (worker/sql).
func noteMAC(key []byte, fields string) string {
	sum := sha256.Sum256(append(append([]byte{}, key...), fields...))
	return hex.EncodeToString(sum[:16])
}

// warnForged logs, at most once a minute, a relayed NOTIFY whose MAC did
// not match: a role other than the relay's sent on its channel (or the
// schema's notify_key changed under a running relay).
func (h *hub) warnForged() {
	now, last := time.Now().UnixNano(), h.forgedAt.Load()
	if now-last < int64(time.Minute) || !h.forgedAt.CompareAndSwap(last, now) {
		return
	}
	h.log.Warn("a relayed NOTIFY named a batch without this schema's MAC: another role sends on the relayed channel; the hub reads the log instead")
}

// recipientHash is how the stamp's NOTIFY and the broker name a recipient
// (fanout.Hash). Two recipients with one hash only cost a read for nothing.
func recipientHash(to bellhoptype.Recipient) string { return fanout.Hash(to) }

// matching returns the recipients with streams here among hashes. The
// caller holds h.mu.
func (h *hub) matching(hashes []string) []bellhoptype.Recipient {
	var to []bellhoptype.Recipient
	for _, x := range hashes {
		for r := range h.byHash[x] {
			to = append(to, r)
		}
	}
	return to
}

// merge folds the notes queued behind n into it while they follow on (the
// hub fell behind: one read instead of one per batch). It reports false
// when one does not follow n (a note was dropped): the hub must read the
// log after its cursor then.
func (h *hub) merge(n note) (note, bool) {
	for range cap(h.notes) {
		select {
		case next := <-h.notes:
			if next.before != n.head {
				return n, false
			}
			n.head = next.head
			n.hashes = append(n.hashes, next.hashes...)
		default:
			return n, true
		}
	}
	return n, true
}

// note handles a batch whose recipients are named (by a NOTIFY, or a
// broker's head), when it follows the cursor: with no stream here for any
// of them, the cursor moves past the batch without a read; from a broker
// (held: the events it brought, by hash), when every recipient with a
// stream here has its events held, they are pushed from there; otherwise
// the hub reads only those recipients' entries of the batch. It reports
// false when the hub must read the log after its cursor instead (it is
// behind the batch, or a stream opened for another of the batch's
// recipients during the read).
func (h *hub) note(ctx context.Context, n note, broker bool, held map[string][]*row) bool {
	h.mu.Lock()
	if cur := h.cursor.Load(); cur >= n.head || cur != n.before {
		h.mu.Unlock()
		if broker && cur < n.head {
			h.metrics.FanoutBatches.WithLabelValues("read").Inc()
		}
		return cur >= n.head
	}
	want := h.matching(n.hashes)
	if len(want) == 0 {
		h.cursor.Store(n.head)
		h.mu.Unlock()
		if broker {
			h.metrics.FanoutBatches.WithLabelValues("skipped").Inc()
		} else {
			h.metrics.WakesSkipped.Inc()
		}
		return true
	}
	if broker {
		if batch, ok := heldFor(want, held); ok {
			h.fanOut(ctx, batch)
			h.cursor.Store(n.head)
			h.mu.Unlock()
			h.metrics.FanoutBatches.WithLabelValues("pushed").Inc()
			return true
		}
		h.metrics.FanoutBatches.WithLabelValues("read").Inc()
	}
	h.mu.Unlock()
	tenants, types, ids := make([]string, len(want)), make([]string, len(want)), make([]string, len(want))
	for i, r := range want {
		tenants[i], types[i], ids[i] = r.Tenant, r.Type, r.ID
	}
	h.metrics.LogReads.WithLabelValues("recipients").Inc()
	rows, err := h.pool.Query(ctx, h.q.recipients, tenants, types, ids, n.before, n.head)
	if err != nil {
		h.log.Warn("read relayed rows", "err", err)
		return false
	}
	batch, err := pgx.CollectRows(rows, scanRow)
	if err != nil {
		h.log.Warn("read relayed rows", "err", err)
		return false
	}
	h.metrics.LogRows.WithLabelValues("recipients").Add(float64(len(batch)))
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur := h.cursor.Load(); cur != n.before {
		return cur >= n.head
	}
	read := make(map[bellhoptype.Recipient]bool, len(want))
	for _, r := range want {
		read[r] = true
	}
	for _, r := range h.matching(n.hashes) {
		if !read[r] {
			return false
		}
	}
	h.fanOut(ctx, batch)
	h.cursor.Store(n.head)
	return true
}

// reorderWait is how long a head that does not follow the cursor waits
// for the heads before it: replicas stamp in turn and publish on
// connections of their own, so two batches' heads may cross on the way.
const reorderWait = 20 * time.Millisecond

// fromBroker handles a message from the broker (see package fanout). One
// hash's events of a batch are held until the batch's head comes, which
// the broker delivers after them. Heads are taken in cursor order: one
// that does not follow the cursor waits (up to reorderWait, in ahead) for
// those before it. fromBroker reports false when the hub must read the
// log after its cursor instead.
func (h *hub) fromBroker(ctx context.Context, m fanout.Message) bool {
	if m.Head <= h.cursor.Load() {
		return true
	}
	if !m.IsHead() {
		if h.held[m.Head] == nil {
			if len(h.held) >= 4096 {
				clear(h.held) // heads stopped coming: the log has it all
			}
			h.held[m.Head] = map[string][]*row{}
		}
		rows := make([]*row, len(m.Events))
		for i, e := range m.Events {
			rows[i] = newRow(e)
		}
		h.held[m.Head][m.Hash] = rows
		return true
	}
	h.ahead[m.Before] = m
	if h.aheadSince.IsZero() {
		h.aheadSince = time.Now()
	}
	return h.takeHeads(ctx)
}

// takeHeads takes the heads in ahead that follow the cursor, in order. It
// reports false when a head has waited reorderWait for those before it,
// or could not be taken: the hub then reads the log after its cursor.
func (h *hub) takeHeads(ctx context.Context) bool {
	defer h.forget()
	for {
		m, ok := h.ahead[h.cursor.Load()]
		if !ok {
			break
		}
		delete(h.ahead, m.Before)
		if !h.note(ctx, note{head: m.Head, before: m.Before, hashes: m.Hashes}, true, h.held[m.Head]) {
			return false
		}
	}
	if len(h.ahead) == 0 {
		h.aheadSince = time.Time{}
		return true
	}
	if time.Since(h.aheadSince) < reorderWait {
		return true
	}
	h.metrics.FanoutBatches.WithLabelValues("read").Add(float64(len(h.ahead)))
	clear(h.ahead)
	h.aheadSince = time.Time{}
	return false
}

// heldFor gathers, in seq order, the held events of the hashes of want;
// false when one of them has none held.
func heldFor(want []bellhoptype.Recipient, held map[string][]*row) ([]*row, bool) {
	var batch []*row
	seen := map[string]bool{}
	for _, r := range want {
		x := recipientHash(r)
		rows, ok := held[x]
		if !ok {
			return nil, false
		}
		if !seen[x] {
			seen[x] = true
			batch = append(batch, rows...)
		}
	}
	slices.SortFunc(batch, func(a, b *row) int { return cmp.Compare(a.Seq, b.Seq) })
	return batch, true
}

// forget drops the held events and waiting heads of batches the cursor
// has passed.
func (h *hub) forget() {
	cur := h.cursor.Load()
	for head := range h.held {
		if head <= cur {
			delete(h.held, head)
		}
	}
	for before, m := range h.ahead {
		if m.Head <= cur {
			delete(h.ahead, before)
		}
	}
	if len(h.ahead) == 0 {
		h.aheadSince = time.Time{}
	}
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

// The limits a stream may be refused for (subscribe): of the relay's
// streams, and of one recipient's; zero is none.
type streamLimits struct{ all, mine int }

var (
	errTooManyStreams    = errors.New("this relay has reached its limit of open streams")
	errTooManyOwnStreams = errors.New("this recipient has reached the relay's limit of open streams per recipient")
)

// subscribe registers a stream for to and returns it with the hub's cursor
// at that moment: the stream gets every row after it.
func (h *hub) subscribe(to bellhoptype.Recipient, limits streamLimits) (*subscriber, int64, error) {
	s := &subscriber{to: to, ch: make(chan *row, h.buffer), behind: make(chan struct{}, 1), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closed:
		return nil, 0, errClosed
	default:
	}
	// Checked under the lock that registers the stream: checked apart, a
	// burst of requests could each pass before any of them counted.
	if limits.all > 0 && h.count >= limits.all {
		return nil, 0, errTooManyStreams
	}
	if limits.mine > 0 && len(h.subs[to]) >= limits.mine {
		return nil, 0, errTooManyOwnStreams
	}
	if h.subs[to] == nil {
		h.subs[to] = map[*subscriber]struct{}{}
		x := recipientHash(to)
		if h.byHash[x] == nil {
			h.byHash[x] = map[bellhoptype.Recipient]struct{}{}
		}
		h.byHash[x][to] = struct{}{}
		if h.fanout != nil && len(h.byHash[x]) == 1 {
			h.fanout.Follow(x)
		}
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
				x := recipientHash(s.to)
				delete(h.byHash[x], s.to)
				if len(h.byHash[x]) == 0 {
					delete(h.byHash, x)
					if h.fanout != nil {
						h.fanout.Unfollow(x)
					}
				}
			}
		}
	}
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
