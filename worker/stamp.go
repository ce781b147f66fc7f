package worker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// stampLockNamespace is the first key of the stamping advisory lock; the
// second is the schema's hash.
const stampLockNamespace = 0x7265_6c79 // "rely"

// stamp gives up to batch pending rows their relay_seq in one short
// transaction, serialized across replicas, and announces the new head on the
// relayed channel. It returns how many rows it stamped.
func (r *Relay) stamp(ctx context.Context) (int, error) {
	var n int
	var head int64
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, r.q.lock, stampLockNamespace, r.cfg.Schema); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, r.q.stamp, r.cfg.BatchSize).Scan(&n, &head); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, r.q.notify, r.relayedChannel, strconv.FormatInt(head, 10))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("stamp pending rows: %w", err)
	}
	if n > 0 {
		r.metrics.StampBatch.Observe(float64(n))
	}
	return n, nil
}

func (r *Relay) hasPending(ctx context.Context, db *pgxpool.Pool) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, r.q.hasPending).Scan(&ok); err != nil {
		return false, fmt.Errorf("look for pending rows: %w", err)
	}
	return ok, nil
}

// setWake flips the wake flag the triggers read.
func (r *Relay) setWake(ctx context.Context, on bool) error {
	v := 0
	if on {
		v = 1
	}
	if _, err := r.pool.Exec(ctx, r.q.setWake, r.wakeSeq, v); err != nil {
		return fmt.Errorf("set wake flag: %w", err)
	}
	return nil
}
