// Package metrics holds the relay's Prometheus collectors.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one relay's set of collectors, on a registry of its own so that
// several relays can live in one process (as they do in tests).
type Metrics struct {
	Registry *prometheus.Registry

	StreamsConnected   prometheus.Gauge
	EventsPushed       prometheus.Counter
	SlowConsumers      prometheus.Counter
	StreamsBehind      prometheus.Counter
	ChangeToPush       prometheus.Histogram
	ListenerReconnects *prometheus.CounterVec
	// LogReads and WakesSkipped show what the hub reads per wake (see
	// docs/scaling.md).
	LogReads     *prometheus.CounterVec
	LogRows      *prometheus.CounterVec
	WakesSkipped prometheus.Counter
	// FanoutBatches counts the batch heads the hub took from the broker.
	FanoutBatches *prometheus.CounterVec

	StreamResumes  prometheus.Counter
	ReplayedEvents prometheus.Counter
	Refetches      prometheus.Counter

	HTTPRequests *prometheus.CounterVec
	HTTPDuration *prometheus.HistogramVec
}

// New registers a fresh set of collectors, plus Go's and the process's.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		StreamsConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bellhop_streams_connected", Help: "Open SSE streams.",
		}),
		EventsPushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_events_pushed_total", Help: "Events written to SSE streams (one per stream).",
		}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_slow_consumers_dropped_total", Help: "Streams cut because a write did not complete within the write timeout.",
		}),
		StreamsBehind: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_streams_behind_total", Help: "Times a stream's buffer overflowed and it caught up from the database.",
		}),
		ChangeToPush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bellhop_change_to_push_seconds",
			Help:    "From the writing transaction's start (the row's updated_at) to the hub's fan-out.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		ListenerReconnects: newListenerReconnects(),
		LogReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bellhop_hub_log_reads_total", Help: "Queries the hub ran on the relay log: tail (every entry after its cursor) or recipients (one batch's entries of the recipients with streams here).",
		}, []string{"read"}),
		LogRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bellhop_hub_log_rows_total", Help: "Entries those queries returned, by read.",
		}, []string{"read"}),
		WakesSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_hub_wakes_skipped_total", Help: "Stamped batches the hub passed over without a read: the relayed NOTIFY named their recipients, and none has a stream here.",
		}),
		FanoutBatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bellhop_fanout_batches_total", Help: "Stamped batches the hub learned of from the fan-out broker, by what it did: pushed (the broker carried its streams' events), skipped (no stream here for the batch), read (it read the log: a message was missing, or the batch did not follow its cursor).",
		}, []string{"result"}),
		StreamResumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_stream_resumes_total", Help: "Streams opened with a Last-Event-ID to resume from.",
		}),
		ReplayedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_replayed_events_total", Help: "Events streams read from the database: resumes, and streams catching up (a subset of bellhop_events_pushed_total).",
		}),
		Refetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_refetches_total", Help: "Refetch events sent: a stream could not replay from the client's id (pruned, or unknown).",
		}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bellhop_http_requests_total", Help: "HTTP requests by route pattern, method and status, counted when the status is sent (a stream when it opens).",
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bellhop_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests by route pattern, method and status; streams are not timed (see bellhop_streams_connected).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "code"}),
	}
	m.Registry.MustRegister(m.StreamsConnected, m.EventsPushed, m.SlowConsumers, m.StreamsBehind, m.ChangeToPush,
		m.ListenerReconnects, m.LogReads, m.LogRows, m.WakesSkipped, m.FanoutBatches, m.StreamResumes, m.ReplayedEvents, m.Refetches, m.HTTPRequests, m.HTTPDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveLag records the time since a change began.
func (m *Metrics) ObserveLag(since time.Time) {
	m.ChangeToPush.Observe(time.Since(since).Seconds())
}

// HTTPMethod is the method label of a request: the methods the relay
// answers, and "other" for any other a client may send (labels must stay
// few).
func HTTPMethod(m string) string {
	switch m {
	case "GET", "POST", "DELETE", "HEAD", "OPTIONS":
		return m
	}
	return "other"
}

// ObserveRequest counts a request's answer, when its status is sent.
func (m *Metrics) ObserveRequest(route, method string, code int) {
	m.HTTPRequests.WithLabelValues(route, HTTPMethod(method), strconv.Itoa(code)).Inc()
}

// ObserveDuration records how long a request took to answer.
func (m *Metrics) ObserveDuration(route, method string, code int, d time.Duration) {
	m.HTTPDuration.WithLabelValues(route, HTTPMethod(method), strconv.Itoa(code)).Observe(d.Seconds())
}

// Backlog is read on every scrape: the committed rows not stamped yet and
// the age of the oldest of them, by the database's clock (zero when none).
type Backlog func(ctx context.Context) (rows int64, oldest time.Duration, err error)

// backlogTimeout bounds the backlog query of one scrape.
const backlogTimeout = 5 * time.Second

var (
	backlogRows = prometheus.NewDesc("bellhop_backlog_rows",
		"Committed notification changes the relay has not stamped yet, counted up to 10000 (read at scrape).", nil, nil)
	backlogAge = prometheus.NewDesc("bellhop_backlog_oldest_age_seconds",
		"Age of the oldest change not stamped yet, from its writing transaction's start; 0 when none (read at scrape).", nil, nil)
)

// BacklogFresh is how long a backlog reading serves the scrapes that
// follow: /metrics may be public (no BELLHOP_OPS_ADDR), and each reading
// is a query that costs most when the relay is behind; scrapes at any rate
// cost the database at most one a second.
const BacklogFresh = time.Second

// backlogCollector reads the backlog when Prometheus scrapes, one scrape
// at a time, at most once per BacklogFresh.
type backlogCollector struct {
	read Backlog
	log  *slog.Logger

	mu     sync.Mutex
	at     time.Time // of the last successful reading
	rows   int64
	oldest time.Duration
}

// RegisterBacklog adds the backlog gauges, read by read when scraped (see
// BacklogFresh). A failed read is logged and leaves the two gauges out of
// that scrape (an absent() alert sees it), rather than failing the whole
// scrape.
func (m *Metrics) RegisterBacklog(read Backlog, log *slog.Logger) {
	m.Registry.MustRegister(&backlogCollector{read: read, log: log})
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogRows
	ch <- backlogAge
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= BacklogFresh {
		ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
		defer cancel()
		rows, oldest, err := c.read(ctx)
		if err != nil {
			c.log.Warn("read the backlog for /metrics", "err", err)
			return
		}
		c.at, c.rows, c.oldest = time.Now(), rows, oldest
	}
	ch <- prometheus.MustNewConstMetric(backlogRows, prometheus.GaugeValue, float64(c.rows))
	ch <- prometheus.MustNewConstMetric(backlogAge, prometheus.GaugeValue, max(c.oldest.Seconds(), 0))
}

func newListenerReconnects() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bellhop_listener_reconnects_total", Help: "LISTEN connections re-established, by channel.",
	}, []string{"channel"})
}

// Worker is the worker's set of collectors.
type Worker struct {
	StampBatch         prometheus.Histogram
	Pruned             prometheus.Counter
	ListenerReconnects *prometheus.CounterVec
	// Webhooks counts webhook jobs' attempts by event and outcome:
	// delivered (2xx), failed (retried later), discarded (the last attempt
	// failed: River keeps the job as discarded), skipped (muted by the
	// recipient's preferences, or an escalation no longer due).
	Webhooks *prometheus.CounterVec
	// FanoutPublished counts the stamps handed to the broker (fanout/),
	// by result: ok, or error (announced by NOTIFY instead).
	FanoutPublished *prometheus.CounterVec
	// LeaseTaken counts relay jobs that found another replica draining.
	LeaseTaken prometheus.Counter
	// DecodedCommits counts the wake-ups of the logical decoding stream
	// (WakeLogical): commits that wrote notification rows, folded while
	// the worker was busy with one.
	DecodedCommits prometheus.Counter
	// Stamps counts a drain's stamps by what started them (poll: its
	// pause ran out; decoded: a decoded commit ended it; notified: a
	// NOTIFY woke a parked job; look: a parked job's periodic look) and
	// whether they found rows or none (empty: a stamp that cost a
	// transaction for nothing).
	Stamps *prometheus.CounterVec
	// RelayedListeners is how many processes other than this one listened
	// on the relayed channel when the stamp last looked (see
	// sqlq.ListenerLock): stamps NOTIFY it only while there is one.
	RelayedListeners prometheus.Gauge
}

// NewWorker makes the worker's collectors and registers them with reg, if
// not nil. A collector reg already holds (the listener reconnects, which
// the relay's hub registers too) is shared.
func NewWorker(reg prometheus.Registerer) (*Worker, error) {
	w := &Worker{
		StampBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bellhop_stamp_batch_rows",
			Help:    "Rows stamped per relay transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		Pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_pruned_rows_total", Help: "Rows deleted by the prune job.",
		}),
		ListenerReconnects: newListenerReconnects(),
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bellhop_webhooks_total", Help: "Webhook job attempts, by event and outcome (delivered, failed, discarded, skipped).",
		}, []string{"event", "outcome"}),
		FanoutPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bellhop_fanout_published_total", Help: "Stamps published to the fan-out broker, by result (ok; error: announced by NOTIFY instead).",
		}, []string{"result"}),
		LeaseTaken: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_drain_lease_taken_total", Help: "Relay jobs that left their rows to the replica holding the drain lease.",
		}),
		DecodedCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_decoded_commits_total", Help: "Wake-ups from the logical decoding stream (BELLHOP_WAKE_MODE=logical): decoded commits that wrote notification rows.",
		}),
		Stamps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bellhop_stamps_total", Help: "Stamps of relay jobs, by cause (poll, decoded, notified, look) and result (rows, empty).",
		}, []string{"cause", "result"}),
		RelayedListeners: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bellhop_relayed_listeners", Help: "Processes other than this one listening on the relayed channel when a stamp last looked; stamps NOTIFY it only while there is one.",
		}),
	}
	if reg == nil {
		return w, nil
	}
	if err := reg.Register(w.StampBatch); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(w.Pruned); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(w.Webhooks); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(w.FanoutPublished); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(w.Stamps); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(w.DecodedCommits); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(w.LeaseTaken); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(w.RelayedListeners); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := reg.Register(w.ListenerReconnects); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		w.ListenerReconnects = existing
	}
	return w, nil
}
