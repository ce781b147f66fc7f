package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCrashedRelayLosesNothing(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	p := b.startProcess(t)
	s := openStream(t, p.URL, alice, -1)
	b.send(t, alice, "before")
	last := s.next(t, 5*time.Second).ID

	// SIGKILL while a large batch is being stamped and pushed.
	_, err := b.db.Pool.Exec(ctx, "INSERT INTO "+b.db.Table("notifications")+
		" (notifiable_id, type) SELECT 'alice', 'bulk' FROM generate_series(1, 3000)")
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond)
	p.kill(t)
	s.Close()

	// Written while no relay runs.
	var want []string
	for i := range 5 {
		want = append(want, b.send(t, alice, fmt.Sprintf("while.down.%d", i)))
	}

	p.start(t)
	resumed := openStream(t, p.URL, alice, last)
	prev := last
	got := map[string]bool{}
	var tail []string
	for range 3000 + 5 {
		ev := resumed.next(t, 10*time.Second)
		require.Greater(t, ev.ID, prev, "ids increase")
		prev = ev.ID
		require.False(t, got[ev.Data.ID], "repeated %s", ev.Data.ID)
		got[ev.Data.ID] = true
		if ev.Data.Type != "bulk" {
			tail = append(tail, ev.Data.ID)
		}
	}
	require.Equal(t, want, tail, "the notifications written while down, in commit order")
	resumed.quiet(t, 300*time.Millisecond)
}

func TestGracefulShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	p := b.startProcess(t)
	s := openStream(t, p.URL, alice, -1)
	b.send(t, alice, "one")
	last := s.next(t, 5*time.Second).ID

	done := make(chan struct{})
	go func() {
		p.stop(t)
		close(done)
	}()
	select {
	case _, ok := <-s.Events:
		require.False(t, ok, "the stream ends on shutdown, so the client reconnects")
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after shutdown")
	}
	<-done

	id := b.send(t, alice, "after")
	p.start(t)
	resumed := openStream(t, p.URL, alice, last)
	require.Equal(t, id, resumed.next(t, 5*time.Second).Data.ID)
}
