package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

type prefsBody struct {
	Types map[string]map[string]bool `json:"types"`
}

// putPreferences sends body as to's preferences and returns the status and
// the JSON answer.
func putPreferences(t *testing.T, base string, to outbox.Recipient, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, base+"/notifications/preferences", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, to))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	return res.StatusCode, out
}

// GET and PUT /notifications/preferences: a PUT replaces the set and
// answers it, GET reads it back; bad bodies get 400, 413 or 415 with the
// problem named.
func TestPreferencesAPI(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startRelay(t)
	alice := outbox.User("alice")

	var got prefsBody
	res := api(t, http.MethodGet, r.URL+"/notifications/preferences", &alice, &got)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Empty(t, got.Types)

	status, out := putPreferences(t, r.URL, alice, "application/json", `{"types": {"*": {"sse": false}, "invoice.paid": {"sse": true, "database": true}}}`)
	require.Equal(t, http.StatusOK, status, out)
	res = api(t, http.MethodGet, r.URL+"/notifications/preferences", &alice, &got)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, map[string]map[string]bool{"*": {"sse": false}, "invoice.paid": {"sse": true, "database": true}}, got.Types)

	for _, c := range []struct {
		name, contentType, body string
		status                  int
		code, message           string
	}{
		{"no content type", "", `{"types": {}}`, 415, "unsupported_media_type", "application/json"},
		{"form", "application/x-www-form-urlencoded", `types=1`, 415, "unsupported_media_type", "application/json"},
		{"not json", "application/json", `{"types": `, 400, "bad_json", "JSON object"},
		{"unknown field", "application/json", `{"typez": {}}`, 400, "bad_json", "typez"},
		{"two objects", "application/json", `{} {}`, 400, "bad_json", "one JSON object"},
		{"unknown channel", "application/json", `{"types": {"a": {"email": false}}}`, 400, "bad_preferences", `unknown channel "email"`},
		{"empty type", "application/json", `{"types": {"": {"sse": false}}}`, 400, "bad_preferences", "1 to 255 bytes"},
		{"not a bool", "application/json", `{"types": {"a": {"sse": "no"}}}`, 400, "bad_json", "bool"},
		{"too large", "application/json", `{"types": {"` + strings.Repeat("x", 200<<10) + `": {}}}`, 413, "body_too_large", "limited"},
	} {
		status, out := putPreferences(t, r.URL, alice, c.contentType, c.body)
		require.Equal(t, c.status, status, c.name)
		require.Equal(t, c.code, out["error"], c.name)
		require.Contains(t, out["message"], c.message, c.name)
	}
	// A chunked body over the limit (no Content-Length to refuse it by).
	req, err := http.NewRequest(http.MethodPut, r.URL+"/notifications/preferences",
		io.MultiReader(strings.NewReader(`{"types": {"`), bytes.NewReader(bytes.Repeat([]byte("x"), 200<<10)), strings.NewReader(`": {}}}`)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, alice))
	req.Header.Set("Content-Type", "application/json")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)

	res = api(t, http.MethodGet, r.URL+"/notifications/preferences", &alice, &got)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Len(t, got.Types, 2, "no bad request changed anything")
	res = api(t, http.MethodPost, r.URL+"/notifications/preferences", &alice, nil)
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	require.Contains(t, res.Header.Get("Allow"), "GET, PUT")
}

// A type muted for sse is stored and listed but not pushed; a critical
// one is pushed anyway; what a reader does to a muted one (read) is still
// pushed, so tabs follow. A PUT on another relay reaches the open stream
// without reopening it (the preferences NOTIFY), and a resume replays
// what is not muted only.
func TestPreferencesMuteTheStream(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r1 := b.startRelay(t)
	r2 := b.startRelay(t)
	alice := outbox.User("alice")

	status, out := putPreferences(t, r2.URL, alice, "application/json", `{"types": {"promo": {"sse": false}}}`)
	require.Equal(t, http.StatusOK, status, out)
	s := openStream(t, r1.URL, alice, -1)

	promo := b.send(t, alice, "promo")
	_, err := b.ob.Send(ctx, b.db.Pool, alice, outbox.Message{Kind: "promo", IsCritical: true, Data: map[string]any{}})
	require.NoError(t, err)
	b.send(t, alice, "chat")
	ev := s.next(t, 5*time.Second)
	require.Equal(t, "promo", ev.Data.Type, "the critical promo")
	require.Equal(t, "created", ev.Data.Op)
	ev = s.next(t, 5*time.Second)
	require.Equal(t, "chat", ev.Data.Type)
	require.Equal(t, int64(3), b.unread(t, r1.URL, alice), "muted for sse only: still listed and counted")

	res := api(t, http.MethodPost, r1.URL+"/notifications/"+promo+"/read", &alice, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	ev = s.next(t, 5*time.Second)
	require.Equal(t, "read", ev.Data.Op)
	require.Equal(t, promo, ev.Data.ID)
	lastID := ev.ID

	// Everything muted, through the other relay: the open stream follows.
	status, out = putPreferences(t, r2.URL, alice, "application/json", `{"types": {"*": {"sse": false}}}`)
	require.Equal(t, http.StatusOK, status, out)
	time.Sleep(300 * time.Millisecond) // the NOTIFY's way to r1
	b.send(t, alice, "chat")
	b.send(t, alice, "promo")
	s.quiet(t, 500*time.Millisecond)

	// Unmuted again: pushed again.
	status, out = putPreferences(t, r2.URL, alice, "application/json", `{"types": {"promo": {"sse": false}}}`)
	require.Equal(t, http.StatusOK, status, out)
	time.Sleep(300 * time.Millisecond)
	b.send(t, alice, "promo")
	b.send(t, alice, "chat")
	ev = s.next(t, 5*time.Second)
	require.Equal(t, "chat", ev.Data.Type)

	// A resume from before the muted stretch replays only the chats.
	resumed := openStream(t, r2.URL, alice, lastID)
	for _, want := range []string{"chat", "chat"} {
		ev := resumed.next(t, 5*time.Second)
		require.Equal(t, want, ev.Data.Type)
	}
	resumed.quiet(t, 300*time.Millisecond)
}

// The one route that reads a body does not wait for it forever: a body
// announced and never sent is cut by the server's read timeout (the
// request timeout plus 5 s), and without a token it is not waited for at
// all.
func TestPreferencesBodyIsNotWaitedForever(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t, func(c *relay.Config) { c.RequestTimeout = time.Second })
	auth := "Authorization: Bearer " + token(t, alice) + "\r\n"
	got, took, err := rawExchange(t, r.URL, "PUT /notifications/preferences HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", 15*time.Second)
	require.NoError(t, err, "closed, not waited on (%s)", took)
	require.True(t, strings.HasPrefix(got, "HTTP/1.1 401"), got)
	require.Less(t, took, 3*time.Second)

	got, took, err = rawExchange(t, r.URL, "PUT /notifications/preferences HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"types\"", 15*time.Second)
	require.NoError(t, err, "the server must close the connection (%s)", took)
	require.Less(t, took, 9*time.Second, "cut by the read timeout: %q", got)
	require.Greater(t, took, 5*time.Second, "not before it")
}
