package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/fanout"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// brokerServer is a NATS or Redis server of the test's own, on a free
// port, so that a drill can stop and restart it; it is killed at the end.
type brokerServer struct {
	kind string // "nats" or "redis"
	port int
	cmd  *exec.Cmd
}

// startBroker starts kind's server from the binary on PATH; a machine
// without it fails the test with how to install it.
func startBroker(t *testing.T, kind string) *brokerServer {
	t.Helper()
	bin := map[string]string{"nats": "nats-server", "redis": "redis-server"}[kind]
	if _, err := exec.LookPath(bin); err != nil {
		t.Fatalf("the fan-out tests run their own %s: install it (Debian: apt-get install %s) or put it on PATH", bin, bin)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &brokerServer{kind: kind, port: l.Addr().(*net.TCPAddr).Port}
	require.NoError(t, l.Close())
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *brokerServer) URL() string {
	return fmt.Sprintf("%s://127.0.0.1:%d", s.kind, s.port)
}

func (s *brokerServer) start(t *testing.T) {
	t.Helper()
	port := strconv.Itoa(s.port)
	if s.kind == "nats" {
		s.cmd = exec.Command("nats-server", "-a", "127.0.0.1", "-p", port)
	} else {
		s.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	}
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, io.Discard
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, s.cmd.Start())
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, 10*time.Second, 20*time.Millisecond, "%s did not start", s.kind)
}

func (s *brokerServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// openFanout connects one relay process to the broker at url.
func (b *testBundle) openFanout(t *testing.T, url string) fanout.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := fanout.Open(ctx, url, "bellhop.test."+b.db.Schema)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// fanoutRelay is a relay (stamping unless replica) on its own connection to
// the broker at url.
func (b *testBundle) fanoutRelay(t *testing.T, url string, replica bool) *testRelay {
	t.Helper()
	f := b.openFanout(t, url)
	if replica {
		return b.startReplica(t, func(c *relay.Config) { c.Fanout = f })
	}
	return b.startRelay(t, func(c *relay.Config) { c.Fanout = f })
}

func fanoutBatches(t *testing.T, r *testRelay, result string) float64 {
	t.Helper()
	return metricValue(scrape(t, r.URL), `bellhop_fanout_batches_total{result="`+result+`"}`)
}

// With a broker, the stamping relay announces nothing through PostgreSQL:
// a replica learns of each batch from the broker, passes over those with
// no stream here, and pushes its streams' events from what the broker
// carried, reading nothing from the log (but its one-second backstop);
// they arrive once each, in order.
func TestFanoutCarriesBatches(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"nats", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx, b := setup(t)
			broker := startBroker(t, kind)
			stamper := b.fanoutRelay(t, broker.URL(), false)
			replica := b.fanoutRelay(t, broker.URL(), true)
			bob := outbox.User("bob")
			s := openStream(t, replica.URL, bob, -1)

			// A LISTEN of the test's own on the relayed channel.
			conn := b.listenRelayed(t, ctx)

			tail0, rec0, _ := reads(t, replica)
			start := time.Now()
			for i := range 30 {
				b.send(t, outbox.User(fmt.Sprintf("carol-%d", i)), "elsewhere")
			}
			b.waitLogged(t) // stamped in batches without bob
			ids := []string{b.send(t, bob, "here")}
			for i := range 40 {
				b.send(t, outbox.User(fmt.Sprintf("alice-%d", i)), "elsewhere")
				ids = append(ids, b.send(t, bob, "here"))
			}
			s.inOrder(t, ids)
			s.quiet(t, 300*time.Millisecond)
			tail, rec, _ := reads(t, replica)
			require.Zero(t, rec-rec0, "no batch read by recipient")
			// The backstop reads once a second, and once more on a tick
			// that finds the broker down. Under a loaded CI run (2026-12-02,
			// Redis) a replica read twice in 0.94 s: a PING past its
			// timeout marks the broker down until the next message, which
			// is the likely cause (not traced). Either way it is not a read
			// per batch: 111 notifications went by here.
			require.LessOrEqual(t, tail-tail0, time.Since(start).Seconds()+2,
				"tail reads: the backstop's only (%v fan-out batches read)", fanoutBatches(t, replica, "read"))
			require.Positive(t, fanoutBatches(t, replica, "pushed"))
			require.Positive(t, fanoutBatches(t, replica, "skipped"))
			require.Positive(t, metricValue(scrape(t, stamper.URL), `bellhop_fanout_published_total{result="ok"}`))

			// Nothing but a hub's hello as it connects (relay's joinedNote).
			wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			for {
				n, err := conn.Conn().WaitForNotification(wctx)
				if err != nil {
					break
				}
				require.Equal(t, "listening", n.Payload, "the stamps were announced through PostgreSQL")
			}
		})
	}
}

// The broker is killed and restarted while two stamping relays write and
// both hold streams: every stream gets each of its recipient's events once,
// in order (while the broker is down, stamps are announced by NOTIFY and
// hubs read the log; after, the broker carries them again).
func TestFanoutBrokerRestartLosesNothing(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"nats", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			_, b := setup(t)
			broker := startBroker(t, kind)
			relays := []*testRelay{b.fanoutRelay(t, broker.URL(), false), b.fanoutRelay(t, broker.URL(), false)}
			drillThroughFault(t, b, relays, func() {
				broker.stop()
				time.Sleep(700 * time.Millisecond)
				broker.start(t)
			})
			require.Positive(t, fanoutBatches(t, relays[0], "pushed")+fanoutBatches(t, relays[1], "pushed"),
				"the broker carried batches after the restart")
		})
	}
}

// One replica loses its broker connection (a proxy between them cuts every
// connection and refuses new ones for a while, as a partition would) while
// the stamping relay's stays up, so stamps are still announced on the
// broker only: the replica reads the log on its short timer and loses
// nothing; once it is back, the broker carries its batches again.
func TestFanoutPartitionedReplicaLosesNothing(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	broker := startBroker(t, "nats")
	p := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", broker.port))
	stamper := b.fanoutRelay(t, broker.URL(), false)
	replica := b.fanoutRelay(t, "nats://"+p.addr(), true)
	var pushedBefore float64
	drillThroughFault(t, b, []*testRelay{stamper, replica}, func() {
		p.cut(true)
		time.Sleep(1500 * time.Millisecond)
		pushedBefore = fanoutBatches(t, replica, "pushed")
		p.cut(false)
	})
	require.Eventually(t, func() bool {
		b.send(t, outbox.User("late"), "after")
		return fanoutBatches(t, replica, "pushed") > pushedBefore
	}, 10*time.Second, 100*time.Millisecond, "the broker carries the replica's batches again")
}

// drillThroughFault writes to 6 recipients, each with a stream on every
// relay, in 4 writers for about 3 s, runs fault a second in, and checks
// that every stream got its recipient's events exactly once, in order.
func drillThroughFault(t *testing.T, b *testBundle, relays []*testRelay, fault func()) {
	t.Helper()
	var to []outbox.Recipient
	streams := map[outbox.Recipient][]*stream{}
	for i := range 6 {
		r := outbox.User(fmt.Sprintf("u%d", i))
		to = append(to, r)
		for _, rl := range relays {
			streams[r] = append(streams[r], openStream(t, rl.URL, r, -1))
		}
	}
	var mu sync.Mutex
	sent := map[outbox.Recipient][]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := to[rand.IntN(len(to))]
				id, err := b.ob.Send(context.Background(), b.db.Pool, r, outbox.Message{Kind: "drill", SSE: map[string]int{"n": 1}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sent[r] = append(sent[r], id)
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	fault()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	total := 0
	for _, r := range to {
		want := map[string]bool{}
		for _, id := range sent[r] {
			want[id] = true
		}
		total += len(want)
		for _, s := range streams[r] {
			got := map[string]bool{}
			var last int64
			for len(got) < len(want) {
				ev := s.next(t, 10*time.Second)
				require.True(t, want[ev.Data.ID], "an event of %s only", r.ID)
				require.False(t, got[ev.Data.ID], "once")
				require.Greater(t, ev.ID, last, "in order")
				got[ev.Data.ID], last = true, ev.ID
			}
			s.quiet(t, 200*time.Millisecond)
		}
	}
	require.Greater(t, total, 100, "the writers wrote through the fault")
}

// cutProxy forwards TCP connections to target until cut: then it closes
// every open one and refuses new ones until uncut.
type cutProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		l.Close()
		p.cut(true)
	})
	go p.serve()
	return p
}

func (p *cutProxy) addr() string { return p.l.Addr().String() }

func (p *cutProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *cutProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}

// failingBroker says it is up and fails every publish.
type failingBroker struct{ ch chan fanout.Message }

func (b failingBroker) Publish(context.Context, fanout.Batch) error {
	return fmt.Errorf("broker refused the publish")
}
func (failingBroker) Up() bool                          { return true }
func (failingBroker) Follow(string)                     {}
func (failingBroker) Unfollow(string)                   {}
func (b failingBroker) Messages() <-chan fanout.Message { return b.ch }
func (failingBroker) Close() error                      { return nil }

// A stamp whose publish fails (the broker looked up when the stamp began)
// is announced by NOTIFY after all: a replica that has no broker at all
// gets every event, once, in order, as fast as a NOTIFY brings it.
func TestFanoutFailedPublishIsAnnouncedByNotify(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	stamper := b.startRelay(t, func(c *relay.Config) { c.Fanout = failingBroker{ch: make(chan fanout.Message)} })
	replica := b.startReplica(t)
	bob := outbox.User("bob")
	s := openStream(t, replica.URL, bob, -1)
	tail0, _, _ := reads(t, replica)
	start := time.Now()
	// One at a time, so that each is a stamp of its own, announced on its
	// own (twenty sent at once may all go in one stamp).
	var last int64
	for i := range 20 {
		id := b.send(t, bob, fmt.Sprint("n", i))
		ev := s.next(t, 5*time.Second)
		require.Equal(t, id, ev.Data.ID)
		require.Greater(t, ev.ID, last)
		last = ev.ID
	}
	s.quiet(t, 200*time.Millisecond)
	require.Positive(t, metricValue(scrape(t, stamper.URL), `bellhop_fanout_published_total{result="error"}`))
	tail, _, _ := reads(t, replica)
	require.Greater(t, tail-tail0, time.Since(start).Seconds()+1,
		"the replica read the log on NOTIFYs (the bare head: a wake), not only on its one-second backstop")
}
