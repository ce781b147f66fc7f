package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	openapi "github.com/bellhophq/bellhop/api"
	"github.com/bellhophq/bellhop/internal/sseclient"
)

// The contract check: every answer a relay gives these tests is validated
// against api/openapi.yaml (kin-openapi: OpenAPI 3.1, JSON Schema
// 2020-12), so the document cannot drift from the code. TestMain wraps
// http.DefaultTransport, which every client here uses unless it has a
// transport of its own (wrap that one with checked). A relay's URL is
// handed to checkRelay, so a contract failure fails the test that made
// the request; an answer from any other server is checked too when its
// path is one the document lists, and a failure there, with no test to
// blame, ends the run. The tests that write raw bytes on a socket
// (rawExchange, the hardening tests) are not checked.
//
// What is checked:
//   - a documented operation: the request against its parameters and
//     security (a request the document refuses must not succeed), the
//     status (it must be documented), the headers, and the JSON body; on
//     text/event-stream, each event's data against the schema that
//     x-sse-events names for its event name, and its id: format;
//   - a HEAD on a GET route: the GET's statuses;
//   - a documented path with a method it does not list: 405 with Allow
//     naming the documented methods;
//   - a path the document lacks, on a relay: 404 (or a CORS preflight:
//     204, or 403 with a JSON error).
var contract = mustLoadContract()

type contractCheck struct {
	doc   *openapi3.T
	paths []docPath // concrete paths before templated ones, as OpenAPI matches
	// events are the schemas of the stream's event data, by event name.
	events    map[string]*openapi3.Schema
	eventID   *openapi3.Schema
	errSchema *openapi3.Schema

	mu    sync.Mutex
	hosts map[string]relayHost // host:port -> the relay listening there
}

// relayHost is a relay's listener, and the test it serves.
type relayHost struct {
	t *testing.T
	// serves is which paths it serves: all, or with BELLHOP_OPS_ADDR set,
	// the ops paths (x-ops-listener) on one listener and the rest on the
	// other.
	serves listener
}

type listener int

const (
	allPaths listener = iota
	apiPaths
	opsPaths
)

func (l listener) serves(p *docPath) bool {
	ops, _ := p.item.Extensions["x-ops-listener"].(bool)
	return l == allPaths || ops == (l == opsPaths)
}

type docPath struct {
	template string
	re       *regexp.Regexp
	names    []string
	item     *openapi3.PathItem
}

func mustLoadContract() *contractCheck {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.YAML)
	if err == nil {
		err = doc.Validate(context.Background())
	}
	if err != nil {
		panic(fmt.Sprintf("api/openapi.yaml: %v", err))
	}
	c := &contractCheck{doc: doc, hosts: map[string]relayHost{}, events: map[string]*openapi3.Schema{}}
	for _, p := range doc.Paths.InMatchingOrder() {
		dp := docPath{template: p, item: doc.Paths.Value(p)}
		segs := strings.Split(p, "/")
		for i, seg := range segs {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				dp.names = append(dp.names, strings.TrimSuffix(name, "}"))
				segs[i] = "([^/]+)"
			} else {
				segs[i] = regexp.QuoteMeta(seg)
			}
		}
		dp.re = regexp.MustCompile("^" + strings.Join(segs, "/") + "$")
		c.paths = append(c.paths, dp)
	}
	schema := func(ref string) *openapi3.Schema {
		s := doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")]
		if s == nil {
			panic("api/openapi.yaml: no schema " + ref)
		}
		return s.Value
	}
	stream := doc.Paths.Value("/notifications/stream").Get.Responses.Status(http.StatusOK).Value.Content.Get("text/event-stream")
	events, _ := stream.Extensions["x-sse-events"].(map[string]any)
	for name, v := range events {
		ref, _ := v.(map[string]any)["$ref"].(string)
		c.events[name] = schema(ref)
	}
	if len(c.events) == 0 {
		panic("api/openapi.yaml: the stream's x-sse-events names no event")
	}
	c.eventID = schema("#/components/schemas/EventID")
	c.errSchema = schema("#/components/schemas/Error")
	return c
}

// checkRelay makes contract failures of the relay at base fail t, for as
// long as t runs.
func checkRelay(t *testing.T, base string) { checkListener(t, base, allPaths) }

// checkListener is checkRelay for a listener that serves only some paths
// (Config.OpsAddr).
func checkListener(t *testing.T, base string, serves listener) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	contract.mu.Lock()
	contract.hosts[u.Host] = relayHost{t, serves}
	contract.mu.Unlock()
	t.Cleanup(func() {
		contract.mu.Lock()
		delete(contract.hosts, u.Host)
		contract.mu.Unlock()
	})
}

// checked wraps a client's transport with the contract check.
func checked(base http.RoundTripper) http.RoundTripper { return checkedTransport{base} }

type checkedTransport struct{ base http.RoundTripper }

func (c checkedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := c.base.RoundTrip(req)
	if err != nil {
		return res, err
	}
	contract.answer(req, res)
	return res, nil
}

// fail reports a contract failure: to the test the relay at host serves,
// or, without one, by ending the run.
func (c *contractCheck) fail(host, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.hosts[host]; ok {
		h.t.Errorf("api/openapi.yaml: %s", what)
		return
	}
	panic("api/openapi.yaml (no test to report to): " + what)
}

func (c *contractCheck) relay(host string) (relayHost, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hosts[host]
	return h, ok
}

func (c *contractCheck) match(path string) (*docPath, map[string]string) {
	for i := range c.paths {
		p := &c.paths[i]
		if m := p.re.FindStringSubmatch(path); m != nil {
			params := map[string]string{}
			for j, name := range p.names {
				params[name] = m[j+1]
			}
			return p, params
		}
	}
	return nil, nil
}

// answer checks res, the answer to req; it leaves res as it found it for
// the caller to read.
func (c *contractCheck) answer(req *http.Request, res *http.Response) {
	host := req.URL.Host
	p, params := c.match(req.URL.Path)
	h, relay := c.relay(host)
	if p == nil && !relay {
		return // not a relay's
	}
	if p != nil && !h.serves.serves(p) {
		p = nil // the other listener's
	}
	what := fmt.Sprintf("%s %s answered %d", req.Method, truncate(req.URL.RequestURI(), 80), res.StatusCode)
	var problems []string
	switch op := opOf(p, req.Method); {
	case req.Method == http.MethodOptions && req.Header.Get("Origin") != "":
		// A CORS preflight, answered for every path.
		if res.StatusCode != http.StatusNoContent {
			problems = append(problems, c.errorBody(res, http.StatusForbidden)...)
		}
	case p == nil:
		if res.StatusCode != http.StatusNotFound {
			problems = append(problems, "a path the document lacks must answer 404")
		}
	case op != nil:
		problems = c.operation(req, res, p, params, op)
	case req.Method == http.MethodHead && p.item.Get != nil:
		if p.item.Get.Responses.Status(res.StatusCode) == nil {
			problems = append(problems, "HEAD answers as GET does, and GET does not document that status")
		}
	default:
		var want []string
		for m := range p.item.Operations() {
			if m != http.MethodHead {
				want = append(want, m)
			}
		}
		var allow []string
		for m := range strings.SplitSeq(res.Header.Get("Allow"), ",") {
			if m = strings.TrimSpace(m); m != http.MethodHead && m != "" {
				allow = append(allow, m)
			}
		}
		slices.Sort(want)
		slices.Sort(allow)
		if res.StatusCode != http.StatusMethodNotAllowed || !slices.Equal(want, allow) {
			problems = append(problems, fmt.Sprintf("a method %s does not list must answer 405 with Allow: %s (Allow: %q)", p.template, strings.Join(want, ", "), res.Header.Get("Allow")))
		}
	}
	for _, pr := range problems {
		c.fail(host, what+": "+pr)
	}
}

func opOf(p *docPath, method string) *openapi3.Operation {
	if p == nil {
		return nil
	}
	return p.item.GetOperation(method)
}

// options are the validator's: every status must be documented; the
// security schemes are checked for presence (the relay checks the token).
var options = &openapi3filter.Options{
	IncludeResponseStatus: true,
	MultiError:            true,
	AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		req, s := in.RequestValidationInput.Request, in.SecurityScheme
		switch {
		case s.Type == "http" && s.Scheme == "bearer":
			if h := req.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
				return nil
			}
			return fmt.Errorf("no bearer token")
		case s.Type == "apiKey" && s.In == "cookie":
			if _, err := req.Cookie(s.Name); err == nil {
				return nil
			}
			return fmt.Errorf("no %s cookie", s.Name)
		}
		return fmt.Errorf("security scheme %s/%s is not checked here", s.Type, s.Scheme)
	},
}

func (c *contractCheck) operation(req *http.Request, res *http.Response, p *docPath, params map[string]string, op *openapi3.Operation) []string {
	var problems []string
	route := &routers.Route{Spec: c.doc, Path: p.template, PathItem: p.item, Method: req.Method, Operation: op}
	// The validator reads the body it is given: give it none (no route
	// takes one), and leave the caller's request alone.
	probe := req.Clone(context.Background())
	probe.Body, probe.ContentLength = http.NoBody, 0
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route, Options: options}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err == nil {
		// fine
	} else if res.StatusCode < 400 {
		problems = append(problems, "the document refuses this request, the relay served it: "+oneLine(err))
	}

	if req.Method == http.MethodHead {
		// The validator skips HEAD answers: their status is all there is.
		if op.Responses.Status(res.StatusCode) == nil {
			problems = append(problems, "status not documented")
		}
		return problems
	}
	stream := isEventStream(res.Header.Get("Content-Type"))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header, Options: options}
	if stream {
		o := *options
		o.ExcludeResponseBody = true
		out.Options = &o
		out.Body = http.NoBody
	} else {
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return append(problems, "reading the body: "+err.Error())
		}
		out.SetBodyBytes(body)
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		problems = append(problems, oneLine(err))
	}
	if stream {
		if mt := op.Responses.Status(res.StatusCode); mt == nil || mt.Value.Content.Get("text/event-stream") == nil {
			problems = append(problems, "the document has no text/event-stream answer for this status")
		}
		res.Body = c.stream(req.URL.Host, req.Method+" "+p.template, res.Body)
	}
	return problems
}

// errorBody checks that res is status with a JSON Error, reading its body
// and putting it back.
func (c *contractCheck) errorBody(res *http.Response, status int) []string {
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return []string{"reading the body: " + err.Error()}
	}
	if res.StatusCode != status {
		return []string{fmt.Sprintf("want %d", status)}
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []string{"the body is not JSON: " + err.Error()}
	}
	if err := c.errSchema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return []string{"the body is not an Error: " + oneLine(err)}
	}
	return nil
}

func isEventStream(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/event-stream"
}

// stream checks the event stream that body carries as the caller reads
// it: the bytes pass through to a parser (sseclient's, as EventSource
// reads) on a goroutine of its own, which checks each frame.
func (c *contractCheck) stream(host, route string, body io.ReadCloser) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		r := sseclient.NewReader(pr, 0)
		for {
			f, err := r.Next()
			if err != nil {
				// A frame cut by the end of the stream is no frame.
				_, _ = io.Copy(io.Discard, pr)
				return
			}
			for _, pr := range c.frame(f) {
				c.fail(host, fmt.Sprintf("%s: frame %+v: %s", route, f, pr))
			}
		}
	}()
	return &teeBody{ReadCloser: body, pw: pw}
}

func (c *contractCheck) frame(f sseclient.Frame) []string {
	var problems []string
	if f.Malformed != "" {
		problems = append(problems, "malformed line")
	}
	if f.HasID {
		if err := c.eventID.VisitJSON(f.ID, openapi3.EnableJSONSchema2020()); err != nil {
			problems = append(problems, "id: is not an EventID: "+oneLine(err))
		}
	}
	if !f.HasData {
		return problems
	}
	schema := c.events[f.Event]
	if schema == nil {
		return append(problems, fmt.Sprintf("event %q is not in x-sse-events", f.Event))
	}
	var v any
	if err := json.Unmarshal([]byte(f.Data), &v); err != nil {
		return append(problems, "data is not JSON: "+err.Error())
	}
	if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		problems = append(problems, "data does not match its schema: "+oneLine(err))
	}
	// What the document says in words.
	var d struct {
		Seq     *int64 `json:"seq"`
		RetryMS int64  `json:"retry_ms"`
	}
	_ = json.Unmarshal([]byte(f.Data), &d)
	switch f.Event {
	case "notification":
		if id, err := f.Seq(); err != nil || d.Seq == nil || *d.Seq != id {
			problems = append(problems, "an event's id: is its seq")
		}
	case "refused":
		if f.HasID {
			problems = append(problems, "a refused event has no id:")
		}
		if f.Retry.Milliseconds() != d.RetryMS {
			problems = append(problems, "a refused event's retry: is its retry_ms")
		}
	}
	return problems
}

// teeBody passes what the caller reads on to the events' parser.
type teeBody struct {
	io.ReadCloser
	pw *io.PipeWriter
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		_, _ = b.pw.Write(p[:n])
	}
	if err != nil {
		b.pw.Close()
	}
	return n, err
}

func (b *teeBody) Close() error {
	err := b.ReadCloser.Close()
	b.pw.Close()
	return err
}

func oneLine(err error) string {
	return truncate(strings.Join(strings.Fields(err.Error()), " "), 600)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// CloseIdleConnections passes on to the transport it wraps
// (http.Client.CloseIdleConnections looks for it).
func (c checkedTransport) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
