package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBroker is Redis pub/sub: a pipeline of PUBLISHes on one connection
// per batch, and one subscribing connection per process, which Redis
// writes to in the order it ran the PUBLISHes.
type redisBroker struct {
	client *redis.Client
	ps     *redis.PubSub
	prefix string
	out    chan Message
	up     atomic.Bool

	// ops are Follow and Unfollow, applied in order by follow (SUBSCRIBE
	// waits for the network).
	mu   sync.Mutex
	ops  []op
	kick chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type op struct {
	hash   string
	follow bool
}

func openRedis(ctx context.Context, rawURL, prefix string) (*redisBroker, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("fan-out URL: %w", err)
	}
	opts.ClientName = "bellhop-relay"
	// A publish that cannot go out in time is announced through
	// PostgreSQL instead.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, time.Second, time.Second
	opts.MaxRetries = -1
	client := redis.NewClient(opts)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("connect to Redis: %w", err)
	}
	b := &redisBroker{client: client, prefix: prefix, out: make(chan Message, queue), kick: make(chan struct{}, 1)}
	b.ps = client.Subscribe(ctx, prefix+".head")
	if _, err := b.ps.Receive(ctx); err != nil { // the subscription's confirmation
		_ = b.ps.Close()
		_ = client.Close()
		return nil, fmt.Errorf("subscribe to Redis: %w", err)
	}
	b.up.Store(true)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(2)
	go b.read()
	go b.follow()
	return b, nil
}

func (b *redisBroker) channel(hash string) string { return b.prefix + ".r." + hash }

func (b *redisBroker) Publish(ctx context.Context, batch Batch) error {
	hashes, bodies, head, err := split(batch)
	if err != nil {
		return err
	}
	_, err = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, x := range hashes {
			p.Publish(ctx, b.channel(x), bodies[i])
		}
		p.Publish(ctx, b.prefix+".head", head)
		return nil
	})
	if err != nil {
		b.up.Store(false)
		return fmt.Errorf("publish to Redis: %w", err)
	}
	return nil
}

func (b *redisBroker) Up() bool { return b.up.Load() }

func (b *redisBroker) Follow(hash string)   { b.queue(op{hash, true}) }
func (b *redisBroker) Unfollow(hash string) { b.queue(op{hash, false}) }

func (b *redisBroker) queue(o op) {
	b.mu.Lock()
	b.ops = append(b.ops, o)
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// follow applies the queued Follows and Unfollows, in order, a run of
// one kind per command.
func (b *redisBroker) follow() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.kick:
		}
		b.mu.Lock()
		ops := b.ops
		b.ops = nil
		b.mu.Unlock()
		for len(ops) > 0 {
			n := 1
			for n < len(ops) && ops[n].follow == ops[0].follow {
				n++
			}
			names := make([]string, n)
			for i := range n {
				names[i] = b.channel(ops[i].hash)
			}
			var err error
			if ops[0].follow {
				err = b.ps.Subscribe(b.ctx, names...)
			} else {
				err = b.ps.Unsubscribe(b.ctx, names...)
			}
			if err != nil && b.ctx.Err() == nil {
				// The connection is down: go-redis subscribes again to
				// every channel it was told of when it reconnects.
				b.up.Store(false)
			}
			ops = ops[n:]
		}
	}
}

func (b *redisBroker) Messages() <-chan Message { return b.out }

// read receives in order; a quiet second is checked with a PING, so a
// connection that died without a word is noticed and redialled.
func (b *redisBroker) read() {
	defer b.wg.Done()
	defer close(b.out)
	head := b.prefix + ".head"
	for {
		msg, err := b.ps.ReceiveTimeout(b.ctx, time.Second)
		if b.ctx.Err() != nil {
			return
		}
		if err != nil {
			var nerr interface{ Timeout() bool }
			if errors.As(err, &nerr) && nerr.Timeout() {
				if err := b.ps.Ping(b.ctx); err == nil {
					continue
				}
			}
			b.up.Store(false)
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch msg := msg.(type) {
		case *redis.Subscription, *redis.Pong:
			// Confirmations, and the answer to a PING: the connection is
			// up (after a reconnect, go-redis subscribed again).
			b.up.Store(true)
		case *redis.Message:
			b.up.Store(true)
			hash := ""
			if msg.Channel != head {
				hash = strings.TrimPrefix(msg.Channel, b.prefix+".r.")
			}
			m, err := decode(hash, []byte(msg.Payload))
			if err != nil {
				continue
			}
			select {
			case b.out <- m:
			default:
			}
		}
	}
}

func (b *redisBroker) Close() error {
	b.cancel()
	err := errors.Join(b.ps.Close(), b.client.Close())
	b.wg.Wait()
	return err
}

var _ Broker = (*redisBroker)(nil)
