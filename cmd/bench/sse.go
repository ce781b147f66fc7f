package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bellhophq/bellhop/internal/sseclient"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// rec is one event as a client received it.
type rec struct {
	seq int64
	id  string // the notification's uuid
	t   time.Time
}

// sseClient is one browser-like stream: a raw TCP connection speaking
// HTTP/1.1, its SSE body read by internal/sseclient's Reader. One goroutine per stream and
// two small buffers keep 10,000 of them cheap.
type sseClient struct {
	user  string
	conn  net.Conn
	fleet *fleet

	mu      sync.Mutex
	recs    []rec
	lastSeq int64
	bad     []string
	closing atomic.Bool
	done    chan struct{}
}

// fleet is a set of streams and their counters.
type fleet struct {
	addr    string
	clients []*sseClient
	total   atomic.Int64 // events received by every client
	broken  atomic.Int64 // streams that ended or misbehaved
	// local, if set, gives each dial its source address.
	local func() net.Addr
}

func token(user string) string {
	t, err := relay.Mint(jwtSecret, outbox.User(user), 2*time.Hour)
	if err != nil {
		panic(err)
	}
	return t
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (not in package
// syscall).
const ipBindAddressNoPort = 24

// dial opens one stream for user; lastEventID < 0 sends no Last-Event-ID. It
// returns once the relay answered 200 (the stream is subscribed by then).
func (f *fleet) dial(ctx context.Context, user string, lastEventID int64) (*sseClient, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if f.local != nil {
		d.LocalAddr = f.local()
		// The port is picked at connect, by the whole 4-tuple: a bind to
		// port 0 would shun every port in use by any source address
		// (the earlier scenarios' sockets, some in TIME_WAIT) and run out.
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			return errors.Join(err, serr)
		}
	}
	conn, err := d.DialContext(ctx, "tcp", f.addr)
	if err != nil {
		return nil, err
	}
	var req bytes.Buffer
	req.WriteString("GET /notifications/stream HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\nAuthorization: Bearer ")
	req.WriteString(token(user))
	req.WriteString("\r\n")
	if lastEventID >= 0 {
		req.WriteString("Last-Event-ID: " + strconv.FormatInt(lastEventID, 10) + "\r\n")
	}
	req.WriteString("\r\n")
	if _, err := conn.Write(req.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(conn, 2048)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("stream for %s: %w", user, err)
	}
	if resp.StatusCode != 200 {
		conn.Close()
		return nil, fmt.Errorf("stream for %s: status %s", user, resp.Status)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c := &sseClient{user: user, conn: conn, fleet: f, lastSeq: lastEventID, done: make(chan struct{})}
	go c.read(sseclient.NewReader(resp.Body, 2048))
	return c, nil
}

// uuidKey precedes the notification's id in an event's data.
const uuidKey = `"id":"`

func (c *sseClient) read(r *sseclient.Reader) {
	defer close(c.done)
	for {
		f, err := r.Next()
		if err != nil {
			if !c.closing.Load() {
				c.problem(fmt.Sprintf("stream of %s ended: %v", c.user, err))
			}
			return
		}
		if !f.HasData {
			continue
		}
		t := time.Now()
		seq, _ := f.Seq()
		id := ""
		if i := strings.Index(f.Data, uuidKey); i >= 0 && len(f.Data) >= i+len(uuidKey)+36 {
			id = f.Data[i+len(uuidKey) : i+len(uuidKey)+36]
		}
		c.mu.Lock()
		if seq <= c.lastSeq {
			c.bad = append(c.bad, fmt.Sprintf("%s: seq %d after %d (duplicate or out of order)", c.user, seq, c.lastSeq))
			c.fleet.broken.Add(1)
		}
		c.lastSeq = seq
		c.recs = append(c.recs, rec{seq: seq, id: id, t: t})
		c.mu.Unlock()
		c.fleet.total.Add(1)
	}
}

func (c *sseClient) problem(s string) {
	c.mu.Lock()
	c.bad = append(c.bad, s)
	c.mu.Unlock()
	c.fleet.broken.Add(1)
}

// take returns and clears what the client received.
func (c *sseClient) take() []rec {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.recs
	c.recs = nil
	return r
}

func (c *sseClient) close() {
	c.closing.Store(true)
	c.conn.Close()
	<-c.done
}

// connectFleet opens one stream per user, conc at a time.
func connectFleet(ctx context.Context, addr string, users []string, conc int) (*fleet, error) {
	return connectFleetWith(ctx, addr, users, conc, nil)
}

// connectFleetWith is connectFleet with the source addresses local gives.
func connectFleetWith(ctx context.Context, addr string, users []string, conc int, local func() net.Addr) (*fleet, error) {
	f := &fleet{addr: addr, clients: make([]*sseClient, len(users)), local: local}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i, u := range users {
		g.Go(func() error {
			c, err := f.dial(gctx, u, -1)
			if err != nil {
				return err
			}
			f.clients[i] = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, c := range f.clients {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.close() }()
		}
	}
	wg.Wait()
}

// wait waits until the fleet received n events in all, or timeout.
func (f *fleet) wait(n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for f.total.Load() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// sent is one committed notification as its writer saw it.
type sent struct {
	to       string
	commitAt time.Time // before COMMIT was sent
	doneAt   time.Time // when COMMIT returned
}

// ledger records every committed notification, by uuid.
type ledger struct {
	mu sync.Mutex
	m  map[string]sent
}

func newLedger() *ledger { return &ledger{m: map[string]sent{}} }

func (l *ledger) addMany(ids []string, to []string, commitAt, doneAt time.Time) {
	l.mu.Lock()
	for i, id := range ids {
		l.m[id] = sent{to: to[i], commitAt: commitAt, doneAt: doneAt}
	}
	l.mu.Unlock()
}

func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// delivery is one received event joined with its commit.
type delivery struct {
	sent
	recv time.Time
	seq  int64 // the event id
}

// verify takes what every client received and checks it against the
// ledger: each client got exactly the events committed for its user, none
// twice, ids increasing. It returns the deliveries and the problems found.
func (f *fleet) verify(l *ledger) ([]delivery, []string) {
	var problems []string
	note := func(s string) {
		if len(problems) < 10 {
			problems = append(problems, s)
		} else if len(problems) == 10 {
			problems = append(problems, "...")
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := make(map[string]bool, len(l.m))
	out := make([]delivery, 0, len(l.m))
	perUser := map[string]int{}
	for _, c := range f.clients {
		c.mu.Lock()
		for _, b := range c.bad {
			note(b)
		}
		c.bad = nil
		c.mu.Unlock()
		for _, r := range c.take() {
			s, ok := l.m[r.id]
			switch {
			case !ok:
				note(fmt.Sprintf("%s got event %q (seq %d) nobody sent", c.user, r.id, r.seq))
			case s.to != c.user:
				note(fmt.Sprintf("%s got %s's event %s", c.user, s.to, r.id))
			case seen[r.id]:
				note(fmt.Sprintf("%s got event %s twice", c.user, r.id))
			default:
				seen[r.id] = true
				perUser[c.user]++
				out = append(out, delivery{sent: s, recv: r.t, seq: r.seq})
			}
		}
	}
	lost := 0
	for id, s := range l.m {
		if !seen[id] {
			lost++
			if lost <= 3 {
				note(fmt.Sprintf("event %s for %s committed but never received", id, s.to))
			}
		}
	}
	if lost > 0 {
		note(fmt.Sprintf("%d of %d committed events lost", lost, len(l.m)))
	}
	f.broken.Store(0)
	f.total.Store(0)
	return out, problems
}
