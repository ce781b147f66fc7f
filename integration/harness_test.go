package integration

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/internal/sseclient"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	"github.com/bellhophq/bellhop/worker"
)

func TestMain(m *testing.M) {
	// Every answer is held against api/openapi.yaml (contract_test.go).
	unchecked = &http.Client{Transport: http.DefaultTransport}
	http.DefaultTransport = checked(http.DefaultTransport)
	// The relay binary the process tests built, once for the run.
	pgtest.Main(m, func() { _ = relayBin.Remove() })
}

const secret = "integration-test-secret-0123456789abcdef"

type testBundle struct {
	db *pgtest.DB
	ob *outbox.Outbox
	// logs, if set, gets the warnings of the relays startRelay runs.
	logs io.Writer
}

func setup(t *testing.T) (context.Context, *testBundle) {
	t.Helper()
	db := pgtest.New(t)
	ob, err := outbox.New(outbox.Config{Schema: db.Schema})
	require.NoError(t, err)
	return context.Background(), &testBundle{db: db, ob: ob}
}

// relayConfig is the configuration the tests run relays with.
func (b *testBundle) relayConfig() relay.Config {
	return relay.Config{
		DatabaseURL:            b.db.URL,
		Schema:                 b.db.Schema,
		JWTSecret:              secret,
		CookieName:             "bellhop_token",
		Heartbeat:              25 * time.Second,
		StreamBuffer:           128,
		MaxStreamsPerRecipient: 16,
		UnreadCountCap:         1000,
		Worker:                 worker.Config{WakeMode: worker.WakeAdaptive, SweepInterval: time.Second},
		MaxConns:               6,
	}
}

type testRelay struct {
	*relay.Relay
	URL string
}

// startRelay runs a relay in this process on a loopback HTTP server.
func (b *testBundle) startRelay(t *testing.T, mutate ...func(*relay.Config)) *testRelay {
	t.Helper()
	cfg := b.relayConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if b.logs != nil {
		log = slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	} else if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	r, err := relay.New(ctx, cfg, log)
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		_ = r.Stop(context.Background())
		srv.Close()
	})
	checkRelay(t, srv.URL)
	waitReady(t, srv.URL)
	return &testRelay{Relay: r, URL: srv.URL}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	require.Eventually(t, func() bool {
		res, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "relay at %s never became ready", url)
}

func token(t *testing.T, to outbox.Recipient) string {
	t.Helper()
	tok, err := relay.Mint(secret, to, time.Hour)
	require.NoError(t, err)
	return tok
}

// event is one SSE event as a client sees it.
type event struct {
	ID   int64
	Name string
	Data relay.Event
	At   time.Time
}

// stream is an open SSE connection.
type stream struct {
	Events chan event
	s      *sseclient.Stream
}

// openStream connects to the relay's stream as to, resuming after lastID
// if it is >= 0, and returns once the response headers arrived (from then
// on the stream is subscribed). base is the relay's URL, or a full stream URL.
func openStream(t *testing.T, base string, to outbox.Recipient, lastID int64) *stream {
	t.Helper()
	return openStreamWith(t, nil, base, to, lastID)
}

// openStreamWith is openStream on hc (nil: http.DefaultClient).
func openStreamWith(t *testing.T, hc *http.Client, base string, to outbox.Recipient, lastID int64) *stream {
	t.Helper()
	url := base
	if !strings.Contains(base, "/notifications/stream") {
		url += "/notifications/stream"
	}
	last := ""
	if lastID >= 0 {
		last = strconv.FormatInt(lastID, 10)
	}
	s, err := sseclient.Connect(context.Background(), hc, url, http.Header{"Authorization": {"Bearer " + token(t, to)}}, last)
	require.NoError(t, err)
	require.Equal(t, "text/event-stream", s.Response.Header.Get("Content-Type"))
	st := &stream{Events: make(chan event, 10000), s: s}
	go st.read()
	t.Cleanup(st.Close)
	return st
}

func (s *stream) Close() { s.s.Close() }

// read passes on the frames with data; the data-less id: frame that opens
// a stream only sets EventSource's resume point.
func (s *stream) read() {
	defer close(s.Events)
	for {
		f, err := s.s.Next()
		if err != nil {
			return
		}
		if !f.HasData {
			continue
		}
		ev := event{Name: f.Event, At: time.Now()}
		ev.ID, _ = f.Seq()
		_ = json.Unmarshal([]byte(f.Data), &ev.Data)
		s.Events <- ev
	}
}

// next waits for the next event.
func (s *stream) next(t *testing.T, within time.Duration) event {
	t.Helper()
	select {
	case ev, ok := <-s.Events:
		require.True(t, ok, "stream closed")
		require.Equal(t, "notification", ev.Name)
		require.Equal(t, ev.ID, ev.Data.Seq, "the SSE id is the event's seq")
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	return event{}
}

// inOrder waits for the events of ids, in that order, under increasing
// event ids.
func (s *stream) inOrder(t *testing.T, ids []string) {
	t.Helper()
	var last int64
	for _, id := range ids {
		ev := s.next(t, 5*time.Second)
		require.Equal(t, id, ev.Data.ID)
		require.Greater(t, ev.ID, last)
		last = ev.ID
	}
}

// quiet asserts no event arrives for d.
func (s *stream) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-s.Events:
		if ok {
			t.Fatalf("unexpected event %+v", ev.Data)
		}
	case <-time.After(d):
	}
}

// api calls the inbox API as to and decodes the JSON answer into out.
func api(t *testing.T, method, url string, to *outbox.Recipient, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if to != nil {
		req.Header.Set("Authorization", "Bearer "+token(t, *to))
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	if out != nil && res.StatusCode != http.StatusNoContent {
		require.NoError(t, json.NewDecoder(res.Body).Decode(out))
	}
	return res
}

func (b *testBundle) unread(t *testing.T, base string, to outbox.Recipient) int64 {
	t.Helper()
	var c struct{ Count int64 }
	res := api(t, http.MethodGet, base+"/notifications/unread/count", &to, &c)
	require.Equal(t, http.StatusOK, res.StatusCode)
	return c.Count
}

func (b *testBundle) send(t *testing.T, to outbox.Recipient, kind string) string {
	t.Helper()
	id, err := b.ob.Send(context.Background(), b.db.Pool, to, outbox.Message{Kind: kind, Data: map[string]string{"k": kind}, SSE: map[string]string{"k": kind}})
	require.NoError(t, err)
	return id
}
