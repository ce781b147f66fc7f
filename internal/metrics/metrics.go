// Package metrics holds the relay's Prometheus collectors.
package metrics

import (
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
	CommitToPush       prometheus.Histogram
	StampBatch         prometheus.Histogram
	ListenerReconnects *prometheus.CounterVec
	Pruned             prometheus.Counter
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
		CommitToPush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bellhop_change_to_push_seconds",
			Help:    "From the writing transaction's start (the row's updated_at) to the hub's fan-out.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		StampBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bellhop_stamp_batch_rows",
			Help:    "Rows stamped per relay transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		ListenerReconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bellhop_listener_reconnects_total", Help: "LISTEN connections re-established, by channel.",
		}, []string{"channel"}),
		Pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bellhop_pruned_rows_total", Help: "Rows deleted by the prune job.",
		}),
	}
	m.Registry.MustRegister(m.StreamsConnected, m.EventsPushed, m.SlowConsumers, m.StreamsBehind, m.CommitToPush,
		m.StampBatch, m.ListenerReconnects, m.Pruned,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveLag records the time since a change began.
func (m *Metrics) ObserveLag(since time.Time) {
	m.CommitToPush.Observe(time.Since(since).Seconds())
}
