package main

import (
	"encoding/json"
	mrand "math/rand/v2"
	"net/http"
	"time"

	"github.com/bellhophq/bellhop/internal/sseclient"
	"github.com/bellhophq/bellhop/relay"
)

// client is one browser tab's EventSource (internal/sseclient): it
// reconnects after the relay's retry: hint whenever its stream ends, breaks
// or cannot connect, with Last-Event-ID, to a replica picked at random each
// time (as behind a load balancer, so the streams do not pile up on the one
// replica that is never restarted). Tabs come and go too: a stream lives
// 15-45 s, then its client reconnects. It keeps a count per notification,
// not every event: an hour's run holds one entry per notification.
type client struct {
	*sseclient.EventSource
	to string
}

func newClient(to, token string, urls []string, first int, hc *http.Client, retry time.Duration) *client {
	c := &client{to: to}
	c.EventSource = &sseclient.EventSource{
		Client: hc,
		Header: http.Header{"Authorization": {"Bearer " + token}},
		URL: func(n int) string {
			i := first
			if n > 0 {
				i = mrand.IntN(len(urls))
			}
			return urls[i%len(urls)] + "/notifications/stream"
		},
		Retry:   retry,
		Session: func() time.Duration { return time.Duration(15+mrand.IntN(30)) * time.Second },
		OnFrame: c.check,
		CountBy: func(f sseclient.Frame) string {
			var ev relay.Event
			_ = json.Unmarshal([]byte(f.Data), &ev)
			return ev.ID
		},
	}
	return c
}

// check holds a frame with data to Bellhop's event format; a bad one is a
// problem, left out of the counts.
func (c *client) check(f sseclient.Frame, _ time.Time) bool {
	if !f.HasData {
		return true
	}
	var ev relay.Event
	err := json.Unmarshal([]byte(f.Data), &ev)
	seq, _ := f.Seq()
	if err != nil || !f.HasID || ev.Seq != seq || ev.Op != "created" {
		c.ProblemLocked("bad event %q (id %q, err %v)", f.Data, f.ID, err)
		return false
	}
	return true
}

// problems are the stream's problems, each naming the recipient.
func (c *client) problems() []string {
	var out []string
	for _, p := range c.Problems() {
		out = append(out, c.to+": "+p)
	}
	return out
}
