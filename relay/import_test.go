package relay_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	_ "github.com/bellhophq/bellhop/relay"
)

// Importing the relay registers nothing on http.DefaultServeMux: it used to
// import net/http/pprof, which put the profiles on the default mux of every
// program that embedded it. cmd/relay serves them on a mux of its own.
func TestImportRegistersNoHandlers(t *testing.T) {
	t.Parallel()
	_, pattern := http.DefaultServeMux.Handler(httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	require.Empty(t, pattern, "importing relay registered %q on http.DefaultServeMux", pattern)
}
