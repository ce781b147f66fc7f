package loadgen

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Paced runs op for i = 0 … rate*d - 1 on an open-loop schedule (op i at
// start + i/rate, however long the ops before it took), spread over
// workers goroutines, and returns how many ops it scheduled. It stops at
// the first error or when ctx ends.
func Paced(ctx context.Context, rate int, d time.Duration, workers int, op func(ctx context.Context, i int) error) (int, error) {
	n := int64(float64(rate) * d.Seconds())
	period := time.Second / time.Duration(rate)
	start := time.Now()
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for {
				i := next.Add(1) - 1
				if i >= n || ctx.Err() != nil {
					return ctx.Err()
				}
				if wait := time.Until(start.Add(time.Duration(i) * period)); wait > 0 {
					time.Sleep(wait)
				}
				if err := op(ctx, int(i)); err != nil {
					return err
				}
			}
		})
	}
	return int(n), g.Wait()
}
