// Package api is the relay's HTTP contract: openapi.yaml, an OpenAPI 3.1
// document of every route, parameter, status code and body (the error
// shape and the stream's event data included). The relay serves it as JSON
// at GET /openapi.json (Handler), and the integration tests validate every
// answer they get against it, so it cannot drift from the code.
package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// YAML is the document as written.
//
//go:embed openapi.yaml
var YAML []byte

// JSON returns the document as JSON, converted from YAML once.
var JSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(YAML, &doc); err != nil {
		return nil, fmt.Errorf("api: openapi.yaml: %w", err)
	}
	// A mapping with a key that is not a string (an unquoted status code)
	// decodes to a map JSON cannot hold: Marshal says so.
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("api: openapi.yaml as JSON: %w", err)
	}
	return b, nil
})

// Handler serves the document as JSON, with a strong ETag: clients
// revalidate (Cache-Control: no-cache) and get 304 until the relay is
// upgraded.
func Handler() (http.Handler, error) {
	doc, err := JSON()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(doc)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Set("ETag", etag)
		h.Set("Cache-Control", "no-cache")
		if matches(req.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", fmt.Sprint(len(doc)))
		w.WriteHeader(http.StatusOK)
		if req.Method != http.MethodHead {
			_, _ = w.Write(doc)
		}
	}), nil
}

// matches reports whether an If-None-Match value names etag (RFC 9110
// §13.1.2: a list of entity tags, weak ones compared weakly, or *).
func matches(inm, etag string) bool {
	for tag := range strings.SplitSeq(inm, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}
