package relay

import (
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/api"
)

// Every route the relay registers is in api/openapi.yaml, and every
// operation there is a route, on either listener layout: the document
// cannot gain or miss a route unnoticed. (The integration tests check
// what each route answers against it.)
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	b, err := api.JSON()
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	var documented []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(documented)

	for _, opsAddr := range []string{"", "127.0.0.1:9090"} {
		cfg := Config{DatabaseURL: "postgres://unused", JWTSecret: strings.Repeat("s", MinSecretBytes), OpsAddr: opsAddr}
		require.NoError(t, cfg.validate())
		r, err := build(nil, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.NoError(t, err)
		routes := slices.Clone(r.patterns)
		slices.Sort(routes)
		require.Equal(t, documented, routes, "OpsAddr %q: the relay's routes (left: api/openapi.yaml)", opsAddr)
	}
}
