package fanout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// natsBroker is core NATS: one connection publishes and subscribes. Every
// subscription delivers to one channel, filled by the connection's read
// loop in the order the server sent, which for one publisher is the order
// it published.
type natsBroker struct {
	nc     *nats.Conn
	prefix string
	in     chan *nats.Msg
	out    chan Message

	mu   sync.Mutex
	subs map[string]*nats.Subscription

	done chan struct{}
	once sync.Once
}

func openNATS(ctx context.Context, rawURL, prefix string) (*natsBroker, error) {
	b := &natsBroker{
		prefix: prefix,
		in:     make(chan *nats.Msg, queue),
		out:    make(chan Message, queue),
		subs:   map[string]*nats.Subscription{},
		done:   make(chan struct{}),
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	nc, err := nats.Connect(rawURL,
		nats.Name("bellhop-relay"),
		// A process pushes what it stamps itself.
		nats.NoEcho(),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// Publishing while disconnected fails at once (the stamp is then
		// announced through PostgreSQL) instead of queuing stale batches.
		nats.ReconnectBufSize(-1),
		// A connection refused at start is an error, not a retry loop.
		nats.RetryOnFailedConnect(false),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	b.nc = nc
	if _, err := nc.ChanSubscribe(prefix+".head", b.in); err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe to NATS: %w", err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("subscribe to NATS: %w", err)
	}
	go b.read()
	return b, nil
}

func (b *natsBroker) subject(hash string) string { return b.prefix + ".r." + hash }

func (b *natsBroker) Publish(_ context.Context, batch Batch) error {
	hashes, bodies, head, err := split(batch)
	if err != nil {
		return err
	}
	for i, x := range hashes {
		if err := b.nc.Publish(b.subject(x), bodies[i]); err != nil {
			return fmt.Errorf("publish to NATS: %w", err)
		}
	}
	if err := b.nc.Publish(b.prefix+".head", head); err != nil {
		return fmt.Errorf("publish to NATS: %w", err)
	}
	return nil
}

func (b *natsBroker) Up() bool { return b.nc.IsConnected() }

func (b *natsBroker) Follow(hash string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[hash]; ok {
		return
	}
	// ChanSubscribe queues the SUB and returns; it fails only on a closed
	// connection, whose hub is going away.
	if s, err := b.nc.ChanSubscribe(b.subject(hash), b.in); err == nil {
		b.subs[hash] = s
	}
}

func (b *natsBroker) Unfollow(hash string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.subs[hash]; ok {
		_ = s.Unsubscribe()
		delete(b.subs, hash)
	}
}

func (b *natsBroker) Messages() <-chan Message { return b.out }

// read decodes what the subscriptions receive, in order.
func (b *natsBroker) read() {
	defer close(b.out)
	head := b.prefix + ".head"
	for {
		select {
		case <-b.done:
			return
		case msg := <-b.in:
			hash := ""
			if msg.Subject != head {
				hash = strings.TrimPrefix(msg.Subject, b.prefix+".r.")
			}
			m, err := decode(hash, msg.Data)
			if err != nil {
				continue // not ours, or garbled: the log has it
			}
			select {
			case b.out <- m:
			default: // the hub is far behind: it reads the log
			}
		}
	}
}

func (b *natsBroker) Close() error {
	b.once.Do(func() {
		b.nc.Close()
		close(b.done)
	})
	return nil
}

var _ Broker = (*natsBroker)(nil)
