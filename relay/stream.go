package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/inbox"
)

// replayPage bounds the rows read per replay query.
const replayPage = 500

// stream serves GET /notifications/stream: a resume from Last-Event-ID (or
// ?last_event_id=) first, then live events, with heartbeats (see live).
func (r *Relay) stream(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	lastID := int64(-1)
	// The header wins: EventSource sends it when it reconnects, to the
	// same URL, so a ?last_event_id= in that URL is the older position.
	raw := req.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = req.URL.Query().Get("last_event_id")
	}
	if raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "bad_last_event_id", "Last-Event-ID must be an event id this stream sent (a non-negative integer)")
			return
		}
		lastID = n
	}
	sub, head, err := r.hub.subscribe(to, streamLimits{all: r.cfg.MaxStreams, mine: r.cfg.MaxStreamsPerRecipient})
	switch {
	case errors.Is(err, errTooManyStreams):
		r.refuseStream(w, req, http.StatusServiceUnavailable, "too_many_streams", "this relay has reached its limit of open streams; retry, or connect to another replica", 5*time.Second)
		return
	case errors.Is(err, errTooManyOwnStreams):
		r.refuseStream(w, req, http.StatusTooManyRequests, "too_many_streams", fmt.Sprintf("this recipient already has %d open streams, the relay's limit per recipient", r.cfg.MaxStreamsPerRecipient), 10*time.Second)
		return
	case err != nil:
		r.refuseStream(w, req, http.StatusServiceUnavailable, "shutting_down", err.Error(), time.Second)
		return
	}
	// Once per stream, after subscribing: a change from now on marks them
	// stale, and the stream reloads them before its next push.
	if !r.loadPreferences(req.Context(), sub) {
		r.hub.unsubscribe(sub)
		r.refuseStream(w, req, http.StatusServiceUnavailable, "unavailable", "the recipient's preferences could not be read; retry", time.Second)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	out, conn := r.open(w, req)
	handedOff := false
	defer func() {
		if !handedOff {
			r.hub.unsubscribe(sub)
			if conn != nil {
				conn.Close()
			}
		}
	}()
	if !out.write([]byte("retry: " + strconv.FormatInt(r.cfg.RetryHint.Milliseconds(), 10) + "\n: connected\n\n")) {
		return
	}

	sent := head // live events up to head are history: replayed or not wanted
	if lastID >= 0 {
		r.metrics.StreamResumes.Inc()
		var ok bool
		if sent, ok = r.resume(req.Context(), out, sub, lastID, head); !ok {
			r.cut(out)
			return
		}
	}
	// An id with no data moves the client's Last-Event-ID without an event
	// (WHATWG SSE, dispatch step 1): a client that has seen nothing yet, or
	// whose replay held nothing for it, resumes from here next time instead
	// of from nothing (a fresh page would otherwise miss what commits while
	// it reconnects).
	if !out.write([]byte("id: " + strconv.FormatInt(sent, 10) + "\n\n")) {
		r.cut(out)
		return
	}
	if conn == nil {
		r.live(req.Context(), out, sub, to, sent)
		return
	}
	// This goroutine, grown by routing, auth and the replay, ends here; a
	// fresh one, with a small stack, serves the idle stream.
	handedOff = true
	go r.liveConn(conn, out, sub, to, sent)
}

// refused is the data of the event that ends a refused event stream.
type refused struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Status  int    `json:"status"`
	RetryMS int64  `json:"retry_ms"`
}

// refuseStream refuses a stream that retrying later may get (a limit, a
// shutdown). A client that does not ask for an event stream gets status
// with Retry-After. One that does (EventSource always sends Accept:
// text/event-stream) gets 200 instead: by the HTML spec any other answer
// makes EventSource give up for good, so a plain page would stay dark
// until reloaded. Its stream holds a retry: of after plus up to as much
// again of jitter (so refused tabs do not all come back at once), one
// refused event saying why, and ends; EventSource reconnects after the
// retry, with its Last-Event-ID unchanged.
func (r *Relay) refuseStream(w http.ResponseWriter, req *http.Request, status int, reason, message string, after time.Duration) {
	retry := after + rand.N(after)
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	h.Set("Connection", "close")
	if !acceptsEventStream(req) {
		writeError(w, status, reason, message)
		return
	}
	data, _ := json.Marshal(refused{Reason: reason, Message: message, Status: status, RetryMS: retry.Milliseconds()})
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "retry: %d\nevent: refused\ndata: %s\n\n", retry.Milliseconds(), data)
}

// acceptsEventStream reports whether req asks for text/event-stream.
func acceptsEventStream(req *http.Request) bool {
	for _, v := range req.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// open starts the response. Over HTTP/1.x it takes the connection from
// net/http (hijacks it) and writes the head itself, the body delimited by
// the connection's close: an idle stream then holds none of net/http's
// per-connection buffers (about 10 KiB). Where hijacking is not offered
// (HTTP/2) it streams through the ResponseWriter and returns no conn.
func (r *Relay) open(w http.ResponseWriter, req *http.Request) (*sink, net.Conn) {
	rc := http.NewResponseController(w)
	if req.ProtoMajor == 1 {
		if conn, _, err := rc.Hijack(); err == nil {
			// Unread bytes the client pipelined are dropped: a stream
			// reads nothing. The server's read deadline no longer applies.
			_ = conn.SetDeadline(time.Time{})
			var head bytes.Buffer
			head.WriteString("HTTP/1.1 200 OK\r\n")
			w.Header().Del("Connection") // noBody may have set it; once is enough
			_ = w.Header().Write(&head)
			head.WriteString("Connection: close\r\n\r\n")
			out := &sink{w: conn, setDeadline: conn.SetWriteDeadline, timeout: r.cfg.WriteTimeout}
			out.pending = head.Bytes() // goes out with the first frame
			return out, conn
		}
	}
	w.WriteHeader(http.StatusOK)
	return &sink{w: w, flush: rc.Flush, setDeadline: rc.SetWriteDeadline, timeout: r.cfg.WriteTimeout}, nil
}

// streamReadBudget is how many bytes a hijacked stream's client may send
// after its request before the relay closes the connection: an
// EventSource sends nothing, and a client that keeps sending would
// otherwise cost the relay a read per chunk for as long as it likes.
const streamReadBudget = 4 << 10

// liveConn serves a hijacked stream until the client goes or the hub
// closes it. The client sends nothing; a read returns when it is gone, or
// with bytes it should not have sent, which end the stream past
// streamReadBudget.
func (r *Relay) liveConn(conn net.Conn, out *sink, sub *subscriber, to bellhoptype.Recipient, sent int64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer conn.Close()
	defer r.hub.unsubscribe(sub)
	go func() {
		defer cancel()
		var b [512]byte
		for got := 0; got <= streamReadBudget; {
			n, err := conn.Read(b[:])
			if err != nil {
				return
			}
			got += n
		}
		r.log.Debug("a stream's client sent more than a request; closing its connection")
	}()
	r.live(ctx, out, sub, to, sent)
}

// live pushes sub's events, and heartbeats, until ctx ends, the hub drops
// the stream or a write fails. Whenever the stream falls behind the hub, it
// catches up from the database.
func (r *Relay) live(ctx context.Context, out *sink, sub *subscriber, to bellhoptype.Recipient, sent int64) {
	heartbeat := time.NewTicker(r.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.gone:
			return
		case <-heartbeat.C:
			if !out.write([]byte(": ping\n\n")) {
				r.cut(out)
				return
			}
		case ev := <-sub.ch:
			if ev.Seq <= sent || r.muted(ctx, sub, ev) {
				continue
			}
			if !out.write(ev.frame) {
				r.cut(out)
				return
			}
			sent = ev.Seq
			r.metrics.EventsPushed.Inc()
		case <-sub.behind:
			// What is buffered precedes the first event the hub held back.
			for len(sub.ch) > 0 {
				if ev := <-sub.ch; ev.Seq > sent && !r.muted(ctx, sub, ev) {
					if !out.write(ev.frame) {
						r.cut(out)
						return
					}
					sent = ev.Seq
					r.metrics.EventsPushed.Inc()
				}
			}
			head := r.hub.resume(sub)
			// A prune since sent may have taken entries the replay will
			// not see: replayChecked answers refetch then.
			if _, ok := r.replayChecked(ctx, out, sub, sent, head); !ok {
				r.cut(out)
				return
			}
			sent = max(sent, head)
		}
	}
}

// sink writes SSE frames with a deadline per write: to a hijacked
// connection, or through a ResponseWriter (HTTP/2), flushing each.
type sink struct {
	w           io.Writer
	flush       func() error // nil for a connection
	setDeadline func(time.Time) error
	timeout     time.Duration
	timedOut    bool
	// pending is the response head of a hijacked connection, written with
	// the first frame (one packet, not two).
	pending []byte
}

func (s *sink) write(b []byte) bool {
	_ = s.setDeadline(time.Now().Add(s.timeout))
	if s.pending != nil {
		b = append(s.pending, b...)
		s.pending = nil
	}
	_, err := s.w.Write(b)
	if err == nil && s.flush != nil {
		err = s.flush()
		// Over HTTP/2 a write deadline is a timer that resets the stream
		// when it fires, written or not: it must end with the write, or an
		// idle stream would be cut one timeout after its last event. (On a
		// connection it bounds only writes in progress.)
		_ = s.setDeadline(time.Time{})
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.timedOut = true
	}
	return err == nil
}

// cut counts a stream ended because its client stopped reading.
func (r *Relay) cut(out *sink) {
	if out.timedOut {
		r.metrics.SlowConsumers.Inc()
	}
}

// resume starts a stream from the client's Last-Event-ID. When it cannot
// replay from there (older than the recipient's prune horizon: one of its
// events may have been pruned since; or newer than anything the database
// has: another database, or a reset) it sends one refetch event instead.
func (r *Relay) resume(ctx context.Context, out *sink, sub *subscriber, lastID, head int64) (int64, bool) {
	to := sub.to
	var last, pruned int64
	if err := r.pool.QueryRow(ctx, r.q.resume, to.Tenant, to.Type, to.ID).Scan(&last, &pruned); err != nil {
		r.log.Warn("read relay head for replay", "err", err)
		return head, false
	}
	if lastID < pruned || lastID > last {
		return head, r.refetch(out, head)
	}
	refetched, ok := r.replayChecked(ctx, out, sub, lastID, head)
	if !ok || refetched {
		return head, ok
	}
	// The client may have come from a replica ahead of this one's hub: it
	// already has everything up to lastID, which must not come again.
	return max(head, lastID), true
}

// replayChecked replays to's events in (from, head], then looks at to's
// prune horizon: a prune during the replay (or, for a stream that fell
// behind, since it last read) may have deleted an entry after from that the
// replay did not see; it raised the horizon in the same transaction, so one
// look after the replay tells, and the client gets refetch (refetched).
// (The refetch may repeat the id of the last event replayed: it resets the
// client.)
func (r *Relay) replayChecked(ctx context.Context, out *sink, sub *subscriber, from, head int64) (refetched, ok bool) {
	to := sub.to
	if !r.replay(ctx, out, sub, from, head) {
		return false, false
	}
	var last, pruned int64
	if err := r.pool.QueryRow(ctx, r.q.resume, to.Tenant, to.Type, to.ID).Scan(&last, &pruned); err != nil {
		r.log.Warn("read prune horizon after replay", "err", err)
		return false, false
	}
	if from < pruned {
		return true, r.refetch(out, head)
	}
	return false, true
}

// refetch tells the client to reload its count and list.
func (r *Relay) refetch(out *sink, head int64) bool {
	r.metrics.Refetches.Inc()
	return out.write(encodeFrame(head, "notification", &Event{Seq: head, Op: "refetch"}))
}

// replay writes sub's events in (from, head] from the database.
func (r *Relay) replay(ctx context.Context, out *sink, sub *subscriber, from, head int64) bool {
	to := sub.to
	for from < head {
		rows, err := r.pool.Query(ctx, r.q.replay, to.Tenant, to.Type, to.ID, from, head, replayPage)
		if err != nil {
			r.log.Warn("replay", "err", err)
			return false
		}
		batch, err := pgx.CollectRows(rows, scanRow)
		if err != nil {
			r.log.Warn("replay", "err", err)
			return false
		}
		for _, ev := range batch {
			if ev.pushed() && !r.muted(ctx, sub, ev) {
				if !out.write(ev.frame) {
					return false
				}
				r.metrics.EventsPushed.Inc()
				r.metrics.ReplayedEvents.Inc()
			}
		}
		if len(batch) < replayPage {
			break
		}
		from = batch[len(batch)-1].Seq
	}
	return true
}

// loadPreferences reads sub's recipient's preferences into sub.
func (r *Relay) loadPreferences(ctx context.Context, sub *subscriber) bool {
	p, err := r.inbox.Preferences(ctx, sub.to)
	if err != nil {
		r.log.Warn("read preferences for a stream", "err", err)
		return false
	}
	sub.prefs.Store(&p)
	return true
}

// muted reports whether the recipient turned the sse channel off for ev's
// type (and ev is neither critical nor something a reader did), reloading
// the preferences first if they changed. Should the reload fail, the old
// ones stay, and the next push tries again.
func (r *Relay) muted(ctx context.Context, sub *subscriber, ev *row) bool {
	if !ev.mutable() {
		return false
	}
	if sub.prefsStale.Swap(false) && !r.loadPreferences(ctx, sub) {
		sub.prefsStale.Store(true)
	}
	p := sub.prefs.Load()
	return p != nil && !p.Enabled(ev.Type, inbox.ChannelSSE)
}
