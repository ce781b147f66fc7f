package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// tryStream requests a stream as to and returns the answer whatever its
// status; a 200 stream is closed when the test ends.
func tryStream(t *testing.T, base string, to outbox.Recipient) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/notifications/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, to))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	if res.StatusCode == http.StatusOK {
		t.Cleanup(func() { cancel(); res.Body.Close() })
		return res, nil
	}
	defer cancel()
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

func requireAPIError(t *testing.T, body []byte, code string, contains string) {
	t.Helper()
	var e struct{ Error, Message string }
	require.NoError(t, json.Unmarshal(body, &e), "the body is JSON: %q", body)
	require.Equal(t, code, e.Error)
	require.Contains(t, e.Message, contains)
}

func TestLimitsStreamsOutliveRequestTimeout(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) { c.RequestTimeout = 200 * time.Millisecond })
	s := openStream(t, r.URL, alice, -1)

	// Five request timeouts later the stream is still open and live.
	time.Sleep(time.Second)
	id := b.send(t, alice, "after.a.second")
	ev := s.next(t, 5*time.Second)
	require.Equal(t, id, ev.Data.ID)
	require.EqualValues(t, 1, b.unread(t, r.URL, alice), "an API call still gets its answer")
	var page struct{ Notifications []struct{ ID string } }
	res := api(t, http.MethodGet, r.URL+"/notifications", &alice, &page)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Len(t, page.Notifications, 1)

	// The timeout does bound API calls: one stuck behind a lock is cut with
	// the documented JSON 503, while the stream stays open.
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LOCK TABLE "+b.db.Table("notifications")+" IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	var timeout struct{ Error, Message string }
	res = api(t, http.MethodGet, r.URL+"/notifications/unread/count", &alice, &timeout)
	require.NoError(t, tx.Rollback(ctx))
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Equal(t, "timeout", timeout.Error)

	time.Sleep(time.Second)
	id2 := b.send(t, alice, "after.the.timeout")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, id2, ev.Data.ID)
	require.EqualValues(t, 2, b.unread(t, r.URL, alice))
}

func TestLimitsStreamsPerRecipient(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) { c.MaxStreamsPerRecipient = 2 })
	first := openStream(t, r.URL, alice, -1)
	second := openStream(t, r.URL, alice, -1)

	res, body := tryStream(t, r.URL, alice)
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	requireAPIError(t, body, "too_many_streams", "limit per recipient")

	// Others are unaffected, including alice's namesake in another tenant
	// and another notifiable type with her id.
	others := []outbox.Recipient{bob, aliceOther, {Type: "Team", ID: "alice"}}
	var streams []*stream
	for _, o := range others {
		streams = append(streams, openStream(t, r.URL, o, -1), openStream(t, r.URL, o, -1))
	}
	require.EqualValues(t, 0, b.unread(t, r.URL, alice), "the API is not limited")

	// Alice's two streams still work, and the refused one did not count.
	id := b.send(t, alice, "for.both.tabs")
	require.Equal(t, id, first.next(t, 5*time.Second).Data.ID)
	require.Equal(t, id, second.next(t, 5*time.Second).Data.ID)
	for i, o := range others {
		oid := b.send(t, o, "for.others")
		require.Equal(t, oid, streams[2*i].next(t, 5*time.Second).Data.ID)
		require.Equal(t, oid, streams[2*i+1].next(t, 5*time.Second).Data.ID)
	}

	// A closed tab frees its place.
	first.Close()
	require.Eventually(t, func() bool {
		res, _ := tryStream(t, r.URL, alice)
		return res.StatusCode == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)
	res, body = tryStream(t, r.URL, alice)
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the new tab took the freed place")
	requireAPIError(t, body, "too_many_streams", "2 open streams")
}

func TestLimitsStreamsPerRecipientUnderABurst(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	const limit, tries = 2, 40
	r := b.startRelay(t, func(c *relay.Config) { c.MaxStreamsPerRecipient = limit })
	// Every request at once: the limit is checked where the stream is
	// counted, so none passes while another is between the two.
	statuses := make(chan int, tries)
	var wg sync.WaitGroup
	for range tries {
		wg.Go(func() {
			res, _ := tryStream(t, r.URL, alice)
			statuses <- res.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	admitted := 0
	for s := range statuses {
		if s == http.StatusOK {
			admitted++
		} else {
			require.Equal(t, http.StatusTooManyRequests, s)
		}
	}
	require.Equal(t, limit, admitted)
}

func TestLimitsMaxStreams(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t, func(c *relay.Config) { c.MaxStreams = 3 })
	open := []outbox.Recipient{alice, bob, aliceOther}
	var streams []*stream
	for _, o := range open {
		streams = append(streams, openStream(t, r.URL, o, -1))
	}
	carol := outbox.User("carol")
	res, body := tryStream(t, r.URL, carol)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	requireAPIError(t, body, "too_many_streams", "limit of open streams")
	res, _ = tryStream(t, r.URL, alice)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "the relay's limit applies to a recipient with a stream too")

	// The API and the open streams are unaffected.
	require.EqualValues(t, 0, b.unread(t, r.URL, carol))
	for i, o := range open {
		id := b.send(t, o, "still.live")
		require.Equal(t, id, streams[i].next(t, 5*time.Second).Data.ID)
	}

	streams[1].Close()
	require.Eventually(t, func() bool {
		res, _ := tryStream(t, r.URL, carol)
		return res.StatusCode == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)
	res, _ = tryStream(t, r.URL, bob)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
}
