package demo

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// The demo answers only to localhost and IP addresses (DNS rebinding uses
// a name that resolves to the machine), and its buttons only to its own
// page.
func TestGuard(t *testing.T) {
	h := guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	do := func(method, host, path string, header map[string]string) int {
		req := httptest.NewRequest(method, "http://"+host+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, host := range []string{"127.0.0.1:8080", "localhost:8080", "LOCALHOST", "app.localhost:3000", "[::1]:8080", "192.168.1.20:8081"} {
		require.Equal(t, http.StatusOK, do("GET", host, "/", nil), host)
	}
	for _, host := range []string{"rebind.evil.example:8080", "evil.example", "localhost.evil.example"} {
		require.Equal(t, http.StatusForbidden, do("GET", host, "/", nil), host)
	}

	require.Equal(t, http.StatusOK, do("POST", "127.0.0.1:8080", "/demo/send", map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}))
	require.Equal(t, http.StatusOK, do("POST", "127.0.0.1:8080", "/demo/send", nil), "curl sends neither header")
	require.Equal(t, http.StatusForbidden, do("POST", "127.0.0.1:8080", "/demo/send", map[string]string{"Origin": "https://evil.example"}))
	require.Equal(t, http.StatusForbidden, do("POST", "127.0.0.1:8080", "/demo/progress", map[string]string{"Sec-Fetch-Site": "cross-site"}))
	require.Equal(t, http.StatusForbidden, do("POST", "127.0.0.1:8080", "/demo/send", map[string]string{"Origin": "null"}))
}
