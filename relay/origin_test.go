package relay

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// The relay's own origin is its host; over TLS, also its scheme: an http
// page on the same host (written by anyone on the network path) may not
// use the cookie of an https relay.
func TestSameOrigin(t *testing.T) {
	plain := httptest.NewRequest("POST", "http://relay.example/notifications/read-all", nil)
	require.True(t, sameOrigin("http://relay.example", plain))
	require.True(t, sameOrigin("https://relay.example", plain), "behind a TLS-terminating proxy the relay sees http")
	require.False(t, sameOrigin("https://other.example", plain))
	require.False(t, sameOrigin("null", plain))

	overTLS := httptest.NewRequest("POST", "https://relay.example/notifications/read-all", nil)
	overTLS.TLS = &tls.ConnectionState{}
	require.True(t, sameOrigin("https://relay.example", overTLS))
	require.False(t, sameOrigin("http://relay.example", overTLS))
}
