package relay

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bellhophq/bellhop/outbox"
)

// writeTimeout cuts a stream whose client stopped reading: its socket
// buffer is full and a write would block.
const writeTimeout = 10 * time.Second

// replayPage bounds the rows read per replay query.
const replayPage = 500

// stream serves GET /notifications/stream: a resume from Last-Event-ID (or
// ?last_event_id=) first, then live events, with heartbeats.
func (r *Relay) stream(w http.ResponseWriter, req *http.Request, to outbox.Recipient) {
	lastID := int64(-1)
	raw := req.Header.Get("Last-Event-ID")
	if q := req.URL.Query().Get("last_event_id"); q != "" {
		raw = q
	}
	if raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "bad_last_event_id", "Last-Event-ID must be an event id this stream sent (a non-negative integer)")
			return
		}
		lastID = n
	}
	all, mine := r.hub.streams(to)
	if r.cfg.MaxStreams > 0 && all >= r.cfg.MaxStreams {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "too_many_streams", "this relay has reached BELLHOP_MAX_STREAMS; retry, or connect to another replica")
		return
	}
	if r.cfg.MaxStreamsPerRecipient > 0 && mine >= r.cfg.MaxStreamsPerRecipient {
		writeError(w, http.StatusTooManyRequests, "too_many_streams", fmt.Sprintf("this recipient already has %d open streams (BELLHOP_MAX_STREAMS_PER_RECIPIENT)", mine))
		return
	}

	sub, head, err := r.hub.subscribe(to)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "shutting_down", err.Error())
		return
	}
	defer r.hub.unsubscribe(sub)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: " + strconv.FormatInt(r.cfg.RetryHint.Milliseconds(), 10) + "\n: connected\n\n")) {
		return
	}

	sent := head // live events at or below it are covered by the replay
	if lastID >= 0 {
		var ok bool
		if sent, ok = r.replay(req, write, to, lastID, head); !ok {
			return
		}
	}

	heartbeat := time.NewTicker(r.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-req.Context().Done():
			return
		case <-sub.gone:
			return
		case <-heartbeat.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		case ev := <-sub.ch:
			if ev.Seq <= sent {
				continue
			}
			if !write(ev.frame) {
				return
			}
			sent = ev.Seq
			r.metrics.EventsPushed.Inc()
		}
	}
}

// replay writes to's events in (lastID, head] and returns the last id
// covered. When it cannot replay from lastID (older than what pruning kept,
// or newer than anything the database has: another database, or a reset),
// it sends one refetch event instead.
func (r *Relay) replay(req *http.Request, write func([]byte) bool, to outbox.Recipient, lastID, head int64) (int64, bool) {
	ctx := req.Context()
	var last, pruned int64
	if err := r.pool.QueryRow(ctx, r.q.head).Scan(&last, &pruned); err != nil {
		r.log.Warn("read relay head for replay", "err", err)
		return head, false
	}
	if lastID < pruned || lastID > last {
		return head, write(encodeFrame(head, "notification", Event{Seq: head, Op: "refetch"}))
	}
	from := lastID
	for from < head {
		rows, err := r.pool.Query(ctx, r.q.replay, to.Tenant, to.Type, to.ID, from, head, replayPage)
		if err != nil {
			r.log.Warn("replay", "err", err)
			return head, false
		}
		batch, err := pgx.CollectRows(rows, scanRow)
		if err != nil {
			r.log.Warn("replay", "err", err)
			return head, false
		}
		for _, ev := range batch {
			if ev.pushed() {
				if !write(ev.frame) {
					return head, false
				}
				r.metrics.EventsPushed.Inc()
			}
		}
		if len(batch) < replayPage {
			break
		}
		from = batch[len(batch)-1].Seq
	}
	return head, true
}
