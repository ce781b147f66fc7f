package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/internal/tracing"
)

// stampLockNamespace is the first key of the stamping advisory lock; the
// second is the schema's hash.
const stampLockNamespace = 0x7265_6c79 // "rely"

// stampedEvent is a row of the Stamp query: an event, and the head before
// the stamp.
type stampedEvent struct {
	bellhoptype.Event `db:",inline"`
	HeadBefore        int64 `db:"head_before"`
}

// stamp stamps up to batch newly committed rows (relay_log entries) in one short
// transaction, serialized across replicas, and announces the new head on the
// relayed channel. It returns how many rows it stamped. The notification rows
// themselves are only read.
//
// The statements go in one batch: one round trip, and, with no BEGIN, one
// implicit transaction that ends at the batch's Sync, so the advisory lock is
// held until the stamps commit. Each statement still takes its own snapshot
// (READ COMMITTED), so the stamp sees every row committed before the lock
// was granted, and the cursor the previous stamp left.
func (r *Worker) stamp(ctx context.Context) (int, error) {
	start := time.Now()
	var logged []bellhoptype.Event
	var after int64
	var floor int64
	if r.cfg.Pusher != nil {
		floor = r.cfg.Pusher.Floor()
	}
	b := &pgx.Batch{}
	b.Queue(r.q.lock, stampLockNamespace, r.cfg.Schema)
	b.Queue(r.q.stamp, r.cfg.BatchSize, r.relayedChannel, floor).Query(func(rows pgx.Rows) error {
		stamped, err := pgx.CollectRows(rows, sqlq.ScanStruct[stampedEvent])
		for _, s := range stamped {
			logged = append(logged, s.Event)
			after = s.HeadBefore
		}
		return err
	})
	b.Queue(r.q.durability, r.cfg.DurableStamps)
	// The entries are read before the Sync that commits them: nothing is
	// pushed until Close reports the commit.
	if err := r.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("stamp pending rows: %w", err)
	}
	if len(logged) > 0 {
		r.metrics.StampBatch.Observe(float64(len(logged)))
		ctx, span := r.stampSpan(ctx, start, logged)
		if r.cfg.Pusher != nil {
			r.cfg.Pusher.Stamped(ctx, after, logged)
		}
		span.End()
	}
	return len(logged), nil
}

// stampSpan starts the span of a stamp that stamped rows, back at its
// start: an empty stamp, every millisecond while the relay is busy, makes
// none. It links to the spans the rows were written in.
func (r *Worker) stampSpan(ctx context.Context, start time.Time, logged []bellhoptype.Event) (context.Context, trace.Span) {
	ctx, span := r.tracer.Start(ctx, "bellhop.stamp", trace.WithTimestamp(start), trace.WithNewRoot())
	if !span.IsRecording() {
		return ctx, span
	}
	var links tracing.Links
	for i := range logged {
		links.Add(logged[i].Traceparent)
	}
	for _, l := range links.List() {
		span.AddLink(l)
	}
	span.SetAttributes(
		attribute.Int("bellhop.stamp.rows", len(logged)),
		attribute.Int64("bellhop.stamp.first_seq", logged[0].Seq),
		attribute.Int64("bellhop.stamp.last_seq", logged[len(logged)-1].Seq),
		attribute.String("bellhop.schema", r.cfg.Schema),
	)
	return ctx, span
}

func (r *Worker) hasPending(ctx context.Context) (bool, error) {
	var ok bool
	if err := r.pool.QueryRow(ctx, r.q.hasPending).Scan(&ok); err != nil {
		return false, fmt.Errorf("look for pending rows: %w", err)
	}
	return ok, nil
}

// setWake flips the wake flag the triggers read.
func (r *Worker) setWake(ctx context.Context, on bool) error {
	v := 0
	if on {
		v = 1
	}
	if _, err := r.pool.Exec(ctx, r.q.setWake, r.wakeSeq, v); err != nil {
		return fmt.Errorf("set wake flag: %w", err)
	}
	return nil
}
