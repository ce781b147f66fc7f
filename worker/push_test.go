package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/integration/pgtest"
)

// heldPusher is a Pusher whose pushes wait until release is closed. It
// records what it was told, in order, and pushes nothing (Floor stays 0).
type heldPusher struct {
	release chan struct{}
	mu      sync.Mutex
	log     []string
	batches [][]bellhoptype.Event
	afters  []int64
}

func (p *heldPusher) Stamped(_ context.Context, after int64, events []bellhoptype.Event) {
	<-p.release
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, fmt.Sprintf("stamped %d", len(events)))
	p.batches = append(p.batches, events)
	p.afters = append(p.afters, after)
}

func (p *heldPusher) Floor() int64 { return 0 }

func (p *heldPusher) StampStarted() { p.note("started") }
func (p *heldPusher) StampEnded()   { p.note("ended") }

func (p *heldPusher) note(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, s)
}

func (p *heldPusher) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// A stamp hands its events to the pusher and does not wait for the push:
// the next stamps run while one is pushed. The pushes come in order, each
// stamp ends (StampEnded) after its push and those before it, no seq is
// handed out twice while a push is pending, and stopping pushes what was
// queued.
func TestStampsDoNotWaitForThePush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	p := &heldPusher{release: make(chan struct{})}
	r, err := New(db.Pool, Config{Schema: db.Schema, Pusher: p})
	require.NoError(t, err)
	send := func(n int) { sendRows(t, db, "push", n) }
	stamp := func() int {
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, _, err := r.stamp(ctx)
			done <- result{n, err}
		}()
		select {
		case res := <-done:
			require.NoError(t, res.err)
			return res.n
		case <-time.After(10 * time.Second):
			t.Fatalf("a stamp waited for the push before it (seen: %v)", p.seen())
			return 0
		}
	}

	r.startPusher()
	// The head is set ahead of the clock, so seqs follow it; then, after
	// the first stamp, taken back, as a crash that lost an asynchronous
	// stamp would: the seqs handed to the pusher, not yet pushed (Floor is
	// 0), must still not be handed out again.
	ahead := time.Now().UnixMicro() + 3_600_000_000
	_, err = db.Pool.Exec(ctx, "UPDATE "+db.Table("relay_state")+" SET last_seq = $1", ahead)
	require.NoError(t, err)
	send(3)
	require.Equal(t, 3, stamp())
	_, err = db.Pool.Exec(ctx, "UPDATE "+db.Table("relay_state")+" SET last_seq = 0")
	require.NoError(t, err)
	send(2)
	require.Equal(t, 2, stamp())
	require.Equal(t, 0, stamp(), "an empty stamp does not wait for the pushes either")
	require.Equal(t, []string{"started", "started", "started"}, p.seen(),
		"the stamps end with their push, which is held, or after the pushes before them")

	close(p.release)
	r.stopPusher()
	require.Equal(t, []string{"started", "started", "started", "stamped 3", "ended", "stamped 2", "ended", "ended"}, p.seen())
	require.Len(t, p.batches, 2)
	first, second := p.batches[0], p.batches[1]
	require.Equal(t, ahead, p.afters[0])
	require.Equal(t, ahead+3, first[2].Seq)
	require.Greater(t, second[0].Seq, first[2].Seq, "a seq handed to the pusher is a floor before it is pushed")

	// Stopped, a stamp pushes before it returns.
	send(1)
	require.Equal(t, 1, stamp())
	require.Len(t, p.seen(), 11)
	require.Equal(t, "stamped 1", p.seen()[9])
}
