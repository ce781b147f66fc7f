package sseclient

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Ready waits for a resume point: a Bellhop stream's first frame is its
// retry:, and a client that counted that as connected could drop before
// the id: and come back as a fresh page, missing events.
func TestReadyWaitsForTheFirstID(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 50\n: connected\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "id: 41\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	es := &EventSource{URL: func(int) string { return srv.URL }}
	done := make(chan struct{})
	go func() { defer close(done); es.Run(ctx) }()

	require.Eventually(t, func() bool { return es.Stats().Connects == 1 }, 5*time.Second, 5*time.Millisecond)
	select {
	case <-es.Ready():
		t.Fatal("Ready closed on the retry: frame, before any id:")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-es.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("Ready did not close on the id: frame")
	}
	require.Equal(t, "41", es.LastID())
	cancel()
	<-done
}
