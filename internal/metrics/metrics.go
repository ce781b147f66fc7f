// Package metrics holds the relay's Prometheus collectors.
package metrics

import (
	"errors"
	"fmt"
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
	}
	m.Registry.MustRegister(m.StreamsConnected, m.EventsPushed, m.SlowConsumers, m.StreamsBehind, m.ChangeToPush,
		m.ListenerReconnects,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveLag records the time since a change began.
func (m *Metrics) ObserveLag(since time.Time) {
	m.ChangeToPush.Observe(time.Since(since).Seconds())
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
