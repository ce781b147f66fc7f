package sseclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// StatusError is a stream request answered with something other than 200.
type StatusError struct {
	Code int
	Body string // its first 512 bytes
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("stream answered %d: %s", e.Code, e.Body)
}

// Stream is one open stream.
type Stream struct {
	*Reader
	Response *http.Response
	cancel   context.CancelFunc
}

// Connect opens the stream at url with header (Authorization, say), sending
// Last-Event-ID when lastEventID is not "". It returns once the response
// headers arrived; any status but 200 is a *StatusError. hc nil is
// http.DefaultClient.
func Connect(ctx context.Context, hc *http.Client, url string, header http.Header, lastEventID string) (*Stream, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	res, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		cancel()
		return nil, &StatusError{Code: res.StatusCode, Body: string(bytes.TrimSpace(body))}
	}
	return &Stream{Reader: NewReader(res.Body, 0), Response: res, cancel: cancel}, nil
}

// Close ends the stream.
func (s *Stream) Close() {
	s.cancel()
	s.Response.Body.Close()
}

// Received is one frame as an EventSource recorded it.
type Received struct {
	Frame
	At time.Time
}

// Stats counts an EventSource's connections.
type Stats struct {
	Connects int         // streams opened (200)
	Ends     int         // streams the server ended cleanly
	Drops    int         // streams that broke
	Refused  int         // connects that failed or were not 200
	Statuses map[int]int // the refusals' statuses
	// Disorder counts frames with data whose integer id was not above the
	// last id: seen: duplicates and reorderings.
	Disorder int
}

// EventSource keeps a stream open as a browser's EventSource does: when it
// ends, breaks or cannot connect, it connects again after the server's
// retry: hint (with jitter), sending the last id: it saw (with or without
// data) as Last-Event-ID. Read its records with the methods, which are safe
// while Run runs.
type EventSource struct {
	// Client makes the requests (http.DefaultClient when nil).
	Client *http.Client
	// Header is sent with every request.
	Header http.Header
	// URL returns the stream URL for connection attempt n (0, 1, ...):
	// replicas in turn, or at random as behind a load balancer.
	URL func(n int) string
	// Retry is the wait before reconnecting until the server sends retry:.
	Retry time.Duration
	// Session, when set, bounds each connection: a tab that closes and
	// opens again.
	Session func() time.Duration
	// LastEventID is the resume point to start from ("" for none).
	LastEventID string
	// OnFrame, when set, sees every frame after its retry: and id: took
	// effect, under the EventSource's lock (it may call ProblemLocked); it
	// returns false to leave the frame out of the records.
	OnFrame func(f Frame, at time.Time) bool
	// CountBy, when set, bounds the records: instead of every frame with
	// data, Counts keeps how many times each key (such as the event's
	// payload id) arrived and the id: it last came with, so a run of hours
	// keeps one entry per event.
	CountBy func(Frame) string

	mu       sync.Mutex
	stats    Stats
	records  []Received
	counts   map[string]Count
	last     string
	lastSeq  int64
	problems []string
	ready    chan struct{}
	once     sync.Once
}

func (es *EventSource) init() {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.ready == nil {
		es.ready = make(chan struct{})
		es.last = es.LastEventID
		es.lastSeq = -1
		if seq, err := strconv.ParseInt(es.LastEventID, 10, 64); err == nil {
			es.lastSeq = seq
		}
		es.counts = map[string]Count{}
	}
}

// Ready is closed once the first id: arrived: the client has a resume
// point (on a Bellhop stream, the data-less id: frame that follows the
// retry: and any replay). Not on the first frame: a Bellhop stream opens
// with a retry: frame, and a client that drops before the id: reconnects
// without Last-Event-ID, as a fresh page, missing what was stamped
// meanwhile (a drill that killed the relay at Ready lost events that way).
func (es *EventSource) Ready() <-chan struct{} {
	es.init()
	return es.ready
}

// Run connects, reads and reconnects until ctx ends.
func (es *EventSource) Run(ctx context.Context) {
	es.init()
	for n := 0; ctx.Err() == nil; n++ {
		es.session(ctx, es.URL(n))
		es.mu.Lock()
		wait := es.Retry
		es.mu.Unlock()
		if wait <= 0 {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait/2 + rand.N(wait)):
		}
	}
}

func (es *EventSource) session(ctx context.Context, url string) {
	if es.Session != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, es.Session())
		defer cancel()
	}
	es.mu.Lock()
	last := es.last
	es.mu.Unlock()
	s, err := Connect(ctx, es.Client, url, es.Header, last)
	if err != nil {
		es.mu.Lock()
		es.stats.Refused++
		if se, ok := err.(*StatusError); ok {
			if es.stats.Statuses == nil {
				es.stats.Statuses = map[int]int{}
			}
			es.stats.Statuses[se.Code]++
			// A server shutting down answers 503; anything else is a bug
			// the caller wants to hear of.
			if se.Code != http.StatusServiceUnavailable {
				es.problemLocked("%v", se)
			}
		}
		es.mu.Unlock()
		return
	}
	defer s.Close()
	es.mu.Lock()
	es.stats.Connects++
	es.mu.Unlock()
	for {
		f, err := s.Next()
		if err != nil {
			es.mu.Lock()
			if err == io.EOF {
				es.stats.Ends++
			} else {
				es.stats.Drops++
			}
			es.mu.Unlock()
			return
		}
		es.frame(f, time.Now())
	}
}

// frame handles one frame as EventSource does: retry: sets the wait, an
// id: moves the resume point, with or without data.
func (es *EventSource) frame(f Frame, at time.Time) {
	es.mu.Lock()
	defer es.mu.Unlock()
	if f.HasID {
		defer es.once.Do(func() { close(es.ready) })
	}
	if f.Malformed != "" {
		es.problemLocked("malformed line %q", f.Malformed)
	}
	if f.Retry > 0 {
		es.Retry = f.Retry
	}
	if f.HasID {
		if seq, err := f.Seq(); err == nil {
			switch {
			case f.HasData && seq <= es.lastSeq:
				es.stats.Disorder++
			case !f.HasData && seq < es.lastSeq:
				es.problemLocked("the id: frame moved the resume point back from %d to %d", es.lastSeq, seq)
			}
			es.lastSeq = seq
		} else if f.ID != "" {
			es.problemLocked("id: %q is no number", f.ID)
		}
		es.last = f.ID
	}
	if es.OnFrame != nil && !es.OnFrame(f, at) || !f.HasData {
		return
	}
	if es.CountBy != nil {
		k := es.CountBy(f)
		es.counts[k] = Count{N: es.counts[k].N + 1, ID: f.ID}
		return
	}
	es.records = append(es.records, Received{Frame: f, At: at})
}

// Count is how many times a key arrived, and the id: it last came with.
type Count struct {
	N  int
	ID string
}

// Problem records something wrong with the stream (from OnFrame, say).
// Only the first 20 are kept.
func (es *EventSource) Problem(format string, args ...any) {
	es.mu.Lock()
	defer es.mu.Unlock()
	es.problemLocked(format, args...)
}

// ProblemLocked is Problem for OnFrame, which runs under the lock.
func (es *EventSource) ProblemLocked(format string, args ...any) { es.problemLocked(format, args...) }

func (es *EventSource) problemLocked(format string, args ...any) {
	if len(es.problems) < 20 {
		es.problems = append(es.problems, fmt.Sprintf(format, args...))
	}
}

// Problems returns the problems recorded so far.
func (es *EventSource) Problems() []string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]string(nil), es.problems...)
}

// Stats returns the connection counters.
func (es *EventSource) Stats() Stats {
	es.mu.Lock()
	defer es.mu.Unlock()
	s := es.stats
	s.Statuses = make(map[int]int, len(es.stats.Statuses))
	for k, v := range es.stats.Statuses {
		s.Statuses[k] = v
	}
	return s
}

// Received returns the frames with data recorded so far (none with
// CountBy).
func (es *EventSource) Received() []Received {
	es.mu.Lock()
	defer es.mu.Unlock()
	return append([]Received(nil), es.records...)
}

// Len is how many frames with data were recorded, counting repeats.
func (es *EventSource) Len() int {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.CountBy != nil {
		n := 0
		for _, c := range es.counts {
			n += c.N
		}
		return n
	}
	return len(es.records)
}

// Counts returns, with CountBy, how many times each key arrived.
func (es *EventSource) Counts() map[string]Count {
	es.mu.Lock()
	defer es.mu.Unlock()
	m := make(map[string]Count, len(es.counts))
	for k, v := range es.counts {
		m[k] = v
	}
	return m
}

// LastID is the resume point: the last id: seen.
func (es *EventSource) LastID() string {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.last
}
