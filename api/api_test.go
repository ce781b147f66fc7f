package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/api"
)

// The document is valid OpenAPI 3.1, and its JSON is the YAML as written.
func TestDocumentIsValid(t *testing.T) {
	t.Parallel()
	fromYAML, err := openapi3.NewLoader().LoadFromData(api.YAML)
	require.NoError(t, err)
	require.True(t, fromYAML.IsOpenAPI31OrLater())
	require.NoError(t, fromYAML.Validate(context.Background()))

	b, err := api.JSON()
	require.NoError(t, err)
	fromJSON, err := openapi3.NewLoader().LoadFromData(b)
	require.NoError(t, err)
	require.NoError(t, fromJSON.Validate(context.Background()))
	y, err := fromYAML.MarshalJSON()
	require.NoError(t, err)
	j, err := fromJSON.MarshalJSON()
	require.NoError(t, err)
	require.JSONEq(t, string(y), string(j))
}

func TestHandlerRevalidates(t *testing.T) {
	t.Parallel()
	h, err := api.Handler()
	require.NoError(t, err)
	doc, err := api.JSON()
	require.NoError(t, err)

	res := serve(h, http.MethodGet, "")
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "application/json", res.Header().Get("Content-Type"))
	require.Equal(t, "no-cache", res.Header().Get("Cache-Control"))
	require.Equal(t, doc, res.Body.Bytes())
	etag := res.Header().Get("ETag")
	require.Regexp(t, `^"[0-9a-f]{32}"$`, etag)

	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		res = serve(h, http.MethodGet, inm)
		require.Equal(t, http.StatusNotModified, res.Code, inm)
		require.Empty(t, res.Body.Bytes())
		require.Equal(t, etag, res.Header().Get("ETag"))
	}
	require.Equal(t, http.StatusOK, serve(h, http.MethodGet, `"other"`).Code)
	res = serve(h, http.MethodHead, "")
	require.Equal(t, http.StatusOK, res.Code)
	require.Empty(t, res.Body.Bytes())
}

func serve(h http.Handler, method, ifNoneMatch string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/openapi.json", nil)
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	res := httptest.NewRecorder()
	h.ServeHTTP(res, req)
	return res
}
