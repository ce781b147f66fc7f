package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// servedRelay is a relay behind the http.Server it builds for itself
// (NewServer: its timeouts), on loopback.
type servedRelay struct {
	*relay.Relay
	URL    string
	OpsURL string // "" unless Config.OpsAddr is set
	stop   func()
}

// startServed runs a relay in this process as startRelay does, but behind
// the relay's own server configuration, and lets the test stop the relay
// (r.stop) while the server still answers.
func (b *testBundle) startServed(t *testing.T, mutate ...func(*relay.Config)) *servedRelay {
	t.Helper()
	cfg := b.relayConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	ctx := context.Background()
	r, err := relay.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	serve := func(h http.Handler) *httptest.Server {
		srv := httptest.NewUnstartedServer(h)
		srv.Config = r.NewServer("", h)
		srv.Start()
		t.Cleanup(srv.Close)
		return srv
	}
	var once sync.Once
	s := &servedRelay{Relay: r, stop: func() { once.Do(func() { _ = r.Stop(context.Background()) }) }}
	t.Cleanup(s.stop) // runs before the servers close
	s.URL = serve(r.Handler()).URL
	ready := s.URL
	if cfg.OpsAddr == "" {
		checkRelay(t, s.URL)
	} else {
		s.OpsURL = serve(r.OpsHandler()).URL
		ready = s.OpsURL
		checkListener(t, s.URL, apiPaths)
		checkListener(t, s.OpsURL, opsPaths)
	}
	waitReady(t, ready)
	return s
}

// do sends a request with the given headers and returns the status and the
// body.
func do(t *testing.T, method, url string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

func TestHTTPCookieIsRefusedCrossSite(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	const allowed = "https://app.example"
	r := b.startServed(t, func(c *relay.Config) { c.AllowedOrigins = []string{allowed} })
	cookie := "bellhop_token=" + token(t, alice)
	id := b.send(t, alice, "one")
	b.send(t, alice, "two")

	// Every route that changes state, and the stream, as a page on another
	// site can send them with the cookie and no preflight (a form, or a
	// text/plain fetch): refused, whatever the Origin or, without one,
	// Sec-Fetch-Site says.
	routes := []struct{ method, path string }{
		{http.MethodPost, "/notifications/read-all"},
		{http.MethodPost, "/notifications/" + id + "/read"},
		{http.MethodPost, "/notifications/" + id + "/unread"},
		{http.MethodPost, "/notifications/seen"},
		{http.MethodPost, "/notifications/" + id + "/archive"},
		{http.MethodPost, "/notifications/" + id + "/unarchive"},
		{http.MethodDelete, "/notifications/" + id},
		{http.MethodGet, "/notifications/stream"},
	}
	crossSite := []http.Header{
		{"Origin": {"https://evil.example"}},
		{"Origin": {"null"}}, // a sandboxed frame, a data: URL
		{"Origin": {"https://app.example.evil.example"}},
		{"Sec-Fetch-Site": {"cross-site"}},
	}
	for _, rt := range routes {
		for _, h := range crossSite {
			h = h.Clone()
			h.Set("Cookie", cookie)
			h.Set("Content-Type", "text/plain")
			h.Set("Accept", "text/event-stream")
			res, body := do(t, rt.method, r.URL+rt.path, h)
			require.Equal(t, http.StatusForbidden, res.StatusCode, "%s %s %v: %s", rt.method, rt.path, h, body)
			requireAPIError(t, body, "cross_site_request", "allowed origins")
		}
	}
	require.EqualValues(t, 2, b.unread(t, r.URL, alice), "nothing was marked read")
	var c struct{ Unseen int64 }
	require.Equal(t, http.StatusOK, api(t, http.MethodGet, r.URL+"/notifications/unread/count", &alice, &c).StatusCode)
	require.EqualValues(t, 2, c.Unseen, "nothing was marked seen (or archived)")
	var page struct{ Notifications []struct{ ID string } }
	require.Equal(t, http.StatusOK, api(t, http.MethodGet, r.URL+"/notifications", &alice, &page).StatusCode)
	require.Len(t, page.Notifications, 2, "nothing was deleted")

	// The cookie keeps working from the relay's own origin, from an allowed
	// one, and from a same-origin or direct request; a bearer token from
	// anywhere (a page cannot send one cross-site without a preflight).
	u, err := url.Parse(r.URL)
	require.NoError(t, err)
	legit := []http.Header{
		{"Origin": {allowed}, "Cookie": {cookie}},
		{"Origin": {"http://" + u.Host}, "Cookie": {cookie}},
		{"Sec-Fetch-Site": {"same-origin"}, "Cookie": {cookie}},
		{"Cookie": {cookie}},
		{"Origin": {"https://evil.example"}, "Authorization": {"Bearer " + token(t, alice)}},
	}
	for i, h := range legit {
		res, body := do(t, http.MethodPost, r.URL+"/notifications/"+id+"/unread", h)
		require.Equal(t, http.StatusOK, res.StatusCode, "case %d: %s", i, body)
	}
	h := http.Header{"Origin": {allowed}, "Cookie": {cookie}, "Content-Type": {"text/plain"}}
	res, body := do(t, http.MethodPost, r.URL+"/notifications/read-all", h)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.JSONEq(t, `{"updated":2}`, string(body))

	// The stream, with the cookie, from the allowed origin.
	req, err := http.NewRequest(http.MethodGet, r.URL+"/notifications/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Origin", allowed)
	sres, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	sres.Body.Close()
	require.Equal(t, http.StatusOK, sres.StatusCode)
	require.Equal(t, "text/event-stream", sres.Header.Get("Content-Type"))
}

func TestHTTPDuplicateCookieIsRefused(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t)
	b.send(t, alice, "mine")
	// A sibling domain can plant a second cookie of the same name, with
	// its own token: which one comes first is up to the browser.
	h := http.Header{"Cookie": {"bellhop_token=" + token(t, bob) + "; bellhop_token=" + token(t, alice)}}
	res, body := do(t, http.MethodGet, r.URL+"/notifications/unread/count", h)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "%s", body)
	requireAPIError(t, body, "invalid_request", "2 bellhop_token cookies")
	require.Contains(t, res.Header.Get("WWW-Authenticate"), `error="invalid_request"`)

	h = http.Header{"Cookie": {"bellhop_token=" + token(t, alice), "bellhop_token=" + token(t, alice)}}
	res, _ = do(t, http.MethodGet, r.URL+"/notifications/unread/count", h)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "two Cookie headers count too")

	h = http.Header{"Cookie": {"other=1; bellhop_token=" + token(t, alice)}}
	res, body = do(t, http.MethodGet, r.URL+"/notifications/unread/count", h)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
}

// rawExchange sends head on a fresh connection, sends nothing more, and
// reads until the server closes the connection. It returns what came back
// and how long the close took (the read gives up after limit).
func rawExchange(t *testing.T, base, head string, limit time.Duration) (string, time.Duration, error) {
	u, err := url.Parse(base)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(start.Add(limit)))
	got, err := io.ReadAll(conn)
	return string(got), time.Since(start), err
}

func TestHTTPConnectionsWithoutTokenAreCut(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t)
	auth := "Authorization: Bearer " + token(t, alice) + "\r\n"
	cases := []struct {
		name, head, status string
	}{
		// A body announced and never sent, to a route that takes none.
		{"healthz body", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", "HTTP/1.1 405"},
		{"no token, body", "POST /notifications/read-all HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n", "HTTP/1.1 401"},
		{"no token, chunked stream", "GET /notifications/stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 401"},
		{"no token, expect 100", "POST /notifications/read-all HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n", "HTTP/1.1 401"},
		// With a token the body is not waited for either.
		{"token, body", "POST /notifications/read-all HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 1000\r\n\r\n", "HTTP/1.1 200"},
		{"token, chunked", "POST /notifications/read-all HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 200"},
		{"too large", "POST /notifications/read-all HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", "HTTP/1.1 413"},
	}
	const each = 20
	var wg sync.WaitGroup
	type result struct {
		name, got string
		took      time.Duration
		err       error
	}
	results := make(chan result, len(cases)*each+1)
	for _, c := range cases {
		for range each {
			wg.Go(func() {
				got, took, err := rawExchange(t, r.URL, c.head, 15*time.Second)
				results <- result{c.name, got, took, err}
			})
		}
	}
	// Headers never finished: cut by the header timeout (5 s).
	wg.Go(func() {
		got, took, err := rawExchange(t, r.URL, "GET /notifications/stream HTTP/1.1\r\nHost: x\r\n", 15*time.Second)
		results <- result{"unfinished headers", got, took, err}
	})
	wg.Wait()
	close(results)
	want := map[string]string{}
	for _, c := range cases {
		want[c.name] = c.status
	}
	for res := range results {
		require.NoError(t, res.err, "%s: the server must close the connection, not wait (%s)", res.name, res.took)
		if res.name == "unfinished headers" {
			require.Less(t, res.took, 8*time.Second, "unfinished headers are cut after the header timeout")
			continue
		}
		require.True(t, strings.HasPrefix(res.got, want[res.name]), "%s: %q", res.name, res.got)
		require.Less(t, res.took, 3*time.Second, "%s: answered and closed at once", res.name)
		head, _, _ := strings.Cut(res.got, "\r\n\r\n")
		require.Contains(t, strings.ToLower(head), "connection: close", "%s", res.name)
	}

	// A client that does send a small body (fetch with body: '{}') gets
	// its answer: the body is ignored, not a reason to reset.
	for range 20 {
		req, err := http.NewRequest(http.MethodPost, r.URL+"/notifications/read-all", strings.NewReader(`{"all":true}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token(t, alice))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
		require.JSONEq(t, `{"updated":0}`, string(body))
	}
}

// rawStream opens alice's stream on a connection of its own, the request
// written by hand with extraHeaders (each ending in \r\n), and returns
// once the relay answered 200; reads time out after 15 s.
func rawStream(t *testing.T, base, extraHeaders string) (net.Conn, *bufio.Reader) {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	_, err = io.WriteString(conn, "GET /notifications/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token(t, alice)+"\r\nAccept: text/event-stream\r\n"+extraHeaders+"\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(15*time.Second)))
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 200 OK\r\n", status)
	return conn, br
}

// requireData reads br up to its next data: line, which must name id.
func requireData(t *testing.T, br *bufio.Reader, id string) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err, "the stream must stay open")
		if strings.HasPrefix(line, "data: ") {
			require.Contains(t, line, id)
			return
		}
	}
}

func TestHTTPStreamWithAnnouncedBodyStaysOpen(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t)
	// An authenticated stream that announces a body it never sends: the
	// body is ignored, and the bound on draining it must not cut the stream
	// once it has its connection.
	_, br := rawStream(t, r.URL, "Content-Length: 5\r\n")
	time.Sleep(2 * time.Second)
	requireData(t, br, b.send(t, alice, "after.two.seconds"))
}

func TestHTTPStreamClientThatKeepsSendingIsCut(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t)
	conn, br := rawStream(t, r.URL, "")

	// A few stray bytes (a body the request did not announce) are
	// ignored: the stream stays live.
	_, err := io.WriteString(conn, "stray")
	require.NoError(t, err)
	requireData(t, br, b.send(t, alice, "after.stray.bytes"))

	// A client that keeps sending is cut: each read would cost the relay
	// a system call for as long as it went on.
	junk := strings.Repeat("x", 1024)
	for range 8 {
		if _, err := io.WriteString(conn, junk); err != nil {
			break // already cut
		}
	}
	// It closes the connection before the read deadline: EOF, or a reset
	// where the junk it did not read was still queued.
	_, err = io.Copy(io.Discard, br)
	if err != nil {
		require.ErrorIs(t, err, syscall.ECONNRESET, "the relay must close the connection")
	}
}

func TestHTTPBadTextIs400(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t)
	b.send(t, alice, "mine")
	bearer := http.Header{"Authorization": {"Bearer " + token(t, alice)}}
	many := strings.Repeat("type=nothing.matches&", 10001)
	cases := []struct{ path, code string }{
		{"/notifications?type=%00", "bad_parameter"},
		{"/notifications?type=%FF", "bad_parameter"},
		{"/notifications?type=%C3%28", "bad_parameter"},
		{"/notifications?type=a%00b", "bad_parameter"},
		{"/notifications?%FF=1", "bad_parameter"},
		{"/notifications?cursor=%00", "bad_parameter"},
		{"/notifications/stream?last_event_id=%00", "bad_parameter"},
		{"/notifications?type=%zz", "bad_query"},
		{"/notifications?type=a;b", "bad_query"},
		// Past 10,000 parameters Go's parser stops: the filter would vanish
		// and an unfiltered page come back.
		{"/notifications?" + many, "bad_query"},
		{"/notifications/%00/read", "bad_id"},
	}
	for _, c := range cases {
		method := http.MethodGet
		if strings.HasSuffix(c.path, "/read") {
			method = http.MethodPost
		}
		res, body := do(t, method, r.URL+c.path, bearer)
		show := c.path[:min(len(c.path), 60)]
		require.Equal(t, http.StatusBadRequest, res.StatusCode, "%s: %s", show, body)
		requireAPIError(t, body, c.code, "")
	}

	// A token whose recipient PostgreSQL cannot take as text.
	hour := time.Now().Add(time.Hour)
	for _, cl := range []relay.Claims{
		claims("ali\x00ce", "", hour),
		claims("alice", "t\x00", hour),
		{RegisteredClaims: jwt.RegisteredClaims{Subject: "alice", ExpiresAt: jwt.NewNumericDate(hour)}, NotifiableType: "\x00"},
	} {
		tok := sign(t, jwt.SigningMethodHS256, []byte(secret), cl)
		for _, path := range []string{"/notifications", "/notifications/unread/count", "/notifications/stream"} {
			res, body := do(t, http.MethodGet, r.URL+path, http.Header{"Authorization": {"Bearer " + tok}})
			require.Equal(t, http.StatusUnauthorized, res.StatusCode, "%s: %s", path, body)
			requireAPIError(t, body, "invalid_token", "NUL")
		}
	}
	require.EqualValues(t, 1, b.unread(t, r.URL, alice))
}

func TestHTTPResumeHeaderWinsOverQuery(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t)
	s := openStream(t, r.URL, alice, -1)
	var ids []int64
	for i := range 3 {
		b.send(t, alice, fmt.Sprintf("n.%d", i))
		ids = append(ids, s.next(t, 5*time.Second).ID)
	}
	s.Close()

	// What EventSource sends when it reconnects to a URL that carried
	// ?last_event_id=: the URL's old position and the header's newer one.
	resumed := openStream(t, fmt.Sprintf("%s/notifications/stream?last_event_id=%d", r.URL, ids[0]), alice, ids[1])
	require.Equal(t, ids[2], resumed.next(t, 5*time.Second).ID, "replayed from the header's id, not the query's")
	resumed.quiet(t, 300*time.Millisecond)
}

// refusedStream reads a refused event stream to its end and returns its
// retry and the refused event's data.
func refusedStream(t *testing.T, res *http.Response) (int64, map[string]any) {
	t.Helper()
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(res.Body)
		done <- b
	}()
	var body []byte
	select {
	case body = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a refused stream must end")
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	retry, name := int64(-1), ""
	var data map[string]any
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "retry: "):
			var err error
			retry, err = strconv.ParseInt(line[7:], 10, 64)
			require.NoError(t, err)
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: "):
			require.NoError(t, json.Unmarshal([]byte(line[6:]), &data))
		case strings.HasPrefix(line, "id:"):
			t.Fatalf("a refused stream must not move the client's Last-Event-ID: %q", body)
		}
	}
	require.Equal(t, "refused", name, "%q", body)
	require.EqualValues(t, retry, data["retry_ms"])
	return retry, data
}

func TestHTTPRefusedEventStreamsRetry(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t, func(c *relay.Config) {
		c.MaxStreamsPerRecipient, c.MaxStreams = 1, 2
		c.AllowedOrigins = []string{"https://app.example"}
	})
	openStream(t, r.URL, alice, -1)
	streamReq := func(to outbox.Recipient, accept string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, r.URL+"/notifications/stream", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token(t, to))
		req.Header.Set("Last-Event-ID", "0")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		req.Header.Set("Origin", "https://app.example")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return res
	}

	// Over the recipient's limit: EventSource (Accept: text/event-stream)
	// gets a 200 stream that says why and when to come back; a client that
	// does not ask for an event stream gets 429.
	var retries []int64
	for range 5 {
		retry, data := refusedStream(t, streamReq(alice, "text/event-stream"))
		require.GreaterOrEqual(t, retry, int64(10000))
		require.Less(t, retry, int64(20000))
		require.Equal(t, "too_many_streams", data["reason"])
		require.EqualValues(t, http.StatusTooManyRequests, data["status"])
		retries = append(retries, retry)
	}
	require.NotEqual(t, []int64{retries[0], retries[0], retries[0], retries[0], retries[0]}, retries, "the retry is jittered")
	_, data := refusedStream(t, streamReq(alice, "application/json, text/event-stream;q=0.9"))
	require.Equal(t, "too_many_streams", data["reason"])
	res := streamReq(alice, "")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	require.Contains(t, res.Header.Get("Access-Control-Expose-Headers"), "Retry-After", "a page on an allowed origin may read it")
	requireAPIError(t, body, "too_many_streams", "limit per recipient")

	// Over the relay's limit.
	openStream(t, r.URL, bob, -1)
	_, data = refusedStream(t, streamReq(aliceOther, "text/event-stream"))
	require.Equal(t, "too_many_streams", data["reason"])
	require.EqualValues(t, http.StatusServiceUnavailable, data["status"])
	res = streamReq(aliceOther, "")
	res.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)

	// A refusal retrying cannot heal keeps its status: no token.
	req, err := http.NewRequest(http.MethodGet, r.URL+"/notifications/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	// Shutting down: the hub is closed, the server still answers.
	r.stop()
	retry, data := refusedStream(t, streamReq(outbox.User("carol"), "text/event-stream"))
	require.Equal(t, "shutting_down", data["reason"])
	require.GreaterOrEqual(t, retry, int64(1000))
	require.Less(t, retry, int64(2000))
	res = streamReq(outbox.User("carol"), "")
	res.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
}

func TestHTTPMethodsAndReadiness(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t, func(c *relay.Config) { c.MaxStreamsPerRecipient = 1 })
	bearer := http.Header{"Authorization": {"Bearer " + token(t, alice)}}
	cases := []struct{ method, path, allow string }{
		{http.MethodPost, "/notifications/stream", "GET"},
		{http.MethodDelete, "/notifications/stream", "GET"},
		{http.MethodPut, "/notifications/stream", "GET"},
		{http.MethodHead, "/notifications/stream", "GET"},
		{http.MethodPut, "/notifications", "GET"},
		{http.MethodDelete, "/notifications", "GET"},
		{http.MethodGet, "/notifications/00000000-0000-0000-0000-000000000000/read", "POST"},
		{http.MethodGet, "/notifications/00000000-0000-0000-0000-000000000000/archive", "POST"},
		{http.MethodDelete, "/notifications/00000000-0000-0000-0000-000000000000/unarchive", "POST"},
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, r.URL+c.path, nil)
		require.NoError(t, err)
		req.Header = bearer.Clone()
		req.Header.Set("Accept", "text/event-stream")
		res, err := noRedirect.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, "%s %s: %s", c.method, c.path, body)
		require.Equal(t, c.allow, res.Header.Get("Allow"), "%s %s", c.method, c.path)
		if c.method != http.MethodHead {
			requireAPIError(t, body, "method_not_allowed", "use "+c.allow)
		}
	}
	// HEAD opened nothing: alice's one stream is still free.
	openStream(t, r.URL, alice, -1)

	// /readyz says that the relay is not ready, not who its database
	// user is or where the database runs.
	r.stop()
	res, body := do(t, http.MethodGet, r.URL+"/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	requireAPIError(t, body, "not_ready", "log")
	var e struct{ Message string }
	require.NoError(t, json.Unmarshal(body, &e))
	require.Equal(t, "the relay is not ready; its log says why", e.Message)
}

// freeAddr is a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestHTTPOpsListener(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	cfg := b.relayConfig()
	cfg.ListenAddr, cfg.OpsAddr = freeAddr(t), freeAddr(t)
	r, err := relay.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.ListenAndServe(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	main, ops := "http://"+cfg.ListenAddr, "http://"+cfg.OpsAddr
	checkListener(t, main, apiPaths)
	checkListener(t, ops, opsPaths)
	waitReady(t, ops)

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		res, body := do(t, http.MethodGet, ops+path, nil)
		require.Equal(t, http.StatusOK, res.StatusCode, "%s on the ops listener: %s", path, body)
		res, _ = do(t, http.MethodGet, main+path, nil)
		require.Equal(t, http.StatusNotFound, res.StatusCode, "%s is not on the public listener", path)
	}
	res, body := do(t, http.MethodGet, ops+"/metrics", nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, string(body), "bellhop_")
	// The API is on the public listener only.
	require.EqualValues(t, 0, b.unread(t, main, alice))
	res, _ = do(t, http.MethodGet, ops+"/notifications/unread/count", http.Header{"Authorization": {"Bearer " + token(t, alice)}})
	require.Equal(t, http.StatusNotFound, res.StatusCode)

}
