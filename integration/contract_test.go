package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	openapi "github.com/bellhophq/bellhop/api"
	"github.com/bellhophq/bellhop/internal/sseclient"
	"github.com/bellhophq/bellhop/relay"
)

// The contract check: every answer a relay gives these tests is validated
// against api/openapi.yaml, so the document cannot drift from the code.
// TestMain wraps http.DefaultTransport, which every client here uses
// unless it has a transport of its own (wrap that one with checked). A
// relay's URL is handed to checkRelay, so that a contract failure fails
// the test that made the request; an answer from any other server is
// checked too when its path is one the document lists, and a failure
// there, with no test to blame, ends the run. The tests that write raw
// bytes on a socket (rawExchange, TestSlowReaderIsDropped's reader, the
// relay package's hardening tests) are not checked, nor the answers to
// the unchecked client.
//
// kin-openapi (OpenAPI 3.1) validates each request against its operation's
// parameters and security, and each answer's status (it must be
// documented) and headers. Bodies, and the stream's event data, are
// validated by JSON Schema 2020-12 (santhosh-tekuri/jsonschema, which
// kin-openapi validates 3.1 schemas with) against the schemas of the
// document, each compiled once: kin-openapi compiles a schema on every
// call (milliseconds), which slowed a stream of 100,000 events below what
// the drills need.
//
// The rules:
//   - a documented operation: a request the document refuses must not
//     succeed; the status must be documented, with its headers; the body
//     must have a documented media type and match its schema; on
//     text/event-stream, each event's data must match the schema that
//     x-sse-events names for its event name, its id: must be an EventID,
//     and what the document says in words holds (a notification's id: is
//     its seq; a refused event has no id: and a retry: of its retry_ms);
//   - HEAD on a GET route: one of the GET's statuses;
//   - a documented path with a method it does not list: 405 with an Allow
//     that names the documented methods;
//   - a path the document lacks (or the other listener's, with
//     BELLHOP_OPS_ADDR): 404; a CORS preflight, 204 or 403 with an Error.
var contract = mustLoadContract()

// unchecked is a client whose answers are not checked, for a test whose
// timing the check's work would change (say why where it is used).
var unchecked *http.Client

type contractCheck struct {
	doc   *openapi3.T
	paths []docPath // concrete paths before templated ones, as OpenAPI matches

	// schemas compiles the document's schemas, by JSON pointer, once.
	schemas  *jsonschema.Compiler
	compiled sync.Map // pointer -> *jsonschema.Schema
	// events are the pointers of the stream's event data schemas, by
	// event name (x-sse-events).
	events map[string]string

	mu    sync.Mutex
	hosts map[string]relayHost // host:port -> the relay listening there
	// compiling guards schemas: a compiler is not safe for concurrent use.
	compiling sync.Mutex
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

// docURL is where the compiler finds the document.
const docURL = "file:///openapi.json"

func mustLoadContract() *contractCheck {
	c, err := loadContract()
	if err != nil {
		panic("api/openapi.yaml: " + err.Error())
	}
	return c
}

func loadContract() (*contractCheck, error) {
	doc, err := openapi3.NewLoader().LoadFromData(openapi.YAML)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	c := &contractCheck{doc: doc, hosts: map[string]relayHost{}, events: map[string]string{}}
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

	b, err := openapi.JSON()
	if err != nil {
		return nil, err
	}
	root, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c.schemas = jsonschema.NewCompiler()
	c.schemas.DefaultDraft(jsonschema.Draft2020)
	c.schemas.AssertFormat()
	if err := c.schemas.AddResource(docURL, root); err != nil {
		return nil, err
	}
	stream := doc.Paths.Value("/notifications/stream").Get.Responses.Status(http.StatusOK).Value.Content.Get("text/event-stream")
	events, _ := stream.Extensions["x-sse-events"].(map[string]any)
	for name, v := range events {
		ref, _ := v.(map[string]any)["$ref"].(string)
		if _, err := c.schema(ref); err != nil {
			return nil, fmt.Errorf("x-sse-events %s: %w", name, err)
		}
		c.events[name] = ref
	}
	if len(c.events) == 0 {
		return nil, fmt.Errorf("the stream's x-sse-events names no event")
	}
	return c, nil
}

// schema is the document's schema at pointer ("#/components/schemas/X").
func (c *contractCheck) schema(pointer string) (*jsonschema.Schema, error) {
	if s, ok := c.compiled.Load(pointer); ok {
		return s.(*jsonschema.Schema), nil
	}
	c.compiling.Lock()
	s, err := c.schemas.Compile(docURL + pointer)
	c.compiling.Unlock()
	if err != nil {
		return nil, err
	}
	c.compiled.Store(pointer, s)
	return s, nil
}

// validate checks the JSON in data against the schema at pointer, and
// returns it decoded (numbers as json.Number).
func (c *contractCheck) validate(pointer string, data []byte) (any, error) {
	s, err := c.schema(pointer)
	if err != nil {
		return nil, err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return v, s.Validate(v)
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
	host := req.URL.Host
	h, isRelay := contract.relay(host)
	what := fmt.Sprintf("%s %s answered %d", req.Method, truncate(req.URL.RequestURI(), 80), res.StatusCode)
	for _, p := range contract.check(req, res, h.serves, isRelay, func(p string) { contract.fail(host, what+": "+p) }) {
		contract.fail(host, what+": "+p)
	}
	return res, nil
}

// CloseIdleConnections passes on to the transport it wraps
// (http.Client.CloseIdleConnections looks for it).
func (c checkedTransport) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
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

// check returns what is wrong with res, the answer to req from a listener
// that serves those paths (relay: a listener of a relay; otherwise only a
// documented path is checked). It leaves res for the caller to read; an
// event stream's events are checked as they are read, and what is wrong
// with them goes to streamFail.
func (c *contractCheck) check(req *http.Request, res *http.Response, serves listener, relay bool, streamFail func(string)) []string {
	p, params := c.match(req.URL.Path)
	if p == nil && !relay {
		return nil // not a relay's
	}
	if p != nil && !serves.serves(p) {
		p = nil // the other listener's
	}
	var op *openapi3.Operation
	if p != nil {
		op = p.item.GetOperation(req.Method)
	}
	switch {
	case req.Method == http.MethodOptions && req.Header.Get("Origin") != "":
		// A CORS preflight, answered for every path.
		if res.StatusCode == http.StatusNoContent {
			return nil
		}
		if res.StatusCode != http.StatusForbidden {
			return []string{"a preflight answers 204 or 403"}
		}
		return c.body(res, "#/components/schemas/Error")
	case p == nil:
		if res.StatusCode != http.StatusNotFound {
			return []string{"a path the document lacks must answer 404"}
		}
		return nil
	case op != nil:
		return c.operation(req, res, p, params, op, streamFail)
	case req.Method == http.MethodHead && p.item.Get != nil:
		if p.item.Get.Responses.Status(res.StatusCode) == nil {
			return []string{"HEAD answers as GET does, and GET does not document that status"}
		}
		return nil
	}
	var want, allow []string
	for m := range p.item.Operations() {
		if m != http.MethodHead {
			want = append(want, m)
		}
	}
	for m := range strings.SplitSeq(res.Header.Get("Allow"), ",") {
		if m = strings.TrimSpace(m); m != http.MethodHead && m != "" {
			allow = append(allow, m)
		}
	}
	slices.Sort(want)
	slices.Sort(allow)
	if res.StatusCode != http.StatusMethodNotAllowed || !slices.Equal(want, allow) {
		return []string{fmt.Sprintf("a method %s does not list must answer 405 with Allow: %s (Allow: %q)",
			p.template, strings.Join(want, ", "), res.Header.Get("Allow"))}
	}
	return nil
}

// options are kin-openapi's: every status must be documented; bodies are
// left to the compiled schemas; the security schemes are checked for
// presence only (the relay checks the token).
var options = &openapi3filter.Options{
	IncludeResponseStatus: true,
	ExcludeResponseBody:   true,
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

func (c *contractCheck) operation(req *http.Request, res *http.Response, p *docPath, params map[string]string,
	op *openapi3.Operation, streamFail func(string)) []string {
	var problems []string
	route := &routers.Route{Spec: c.doc, Path: p.template, PathItem: p.item, Method: req.Method, Operation: op}
	// The validator reads the body it is given: give it a copy of the one
	// sent (only PUT /notifications/preferences takes one; requests built
	// from a bytes or strings reader can make it again), and leave the
	// caller's request alone.
	probe := req.Clone(context.Background())
	probe.Body, probe.ContentLength = http.NoBody, 0
	if req.GetBody != nil && req.ContentLength != 0 {
		if body, err := req.GetBody(); err == nil {
			probe.Body, probe.ContentLength = body, req.ContentLength
		}
	}
	in := &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route, Options: options}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && res.StatusCode < 400 {
		problems = append(problems, "the document refuses this request, the relay served it: "+oneLine(err))
	}
	ref := op.Responses.Status(res.StatusCode)
	if ref == nil {
		return append(problems, "status not documented")
	}
	if req.Method == http.MethodHead {
		return problems // no headers or body to speak of
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header, Body: http.NoBody, Options: options}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		problems = append(problems, oneLine(err))
	}

	// Where the response is in the document: a component, or inline.
	at := ref.Ref
	if at == "" {
		at = "#/paths/" + escape(p.template) + "/" + strings.ToLower(req.Method) + "/responses/" + fmt.Sprint(res.StatusCode)
	}
	content := ref.Value.Content
	ct := res.Header.Get("Content-Type")
	if len(content) == 0 {
		if res.ContentLength > 0 || ct != "" {
			problems = append(problems, "the document gives this answer no body")
		}
		return problems
	}
	mt, _, _ := mime.ParseMediaType(ct)
	media := content.Get(mt)
	if media == nil {
		return append(problems, fmt.Sprintf("Content-Type %q is not documented", ct))
	}
	switch {
	case mt == "text/event-stream":
		res.Body = c.stream(res.Body, streamFail)
	case mt == "application/json" && media.Schema != nil:
		problems = append(problems, c.body(res, at+"/content/"+escape(mt)+"/schema")...)
	}
	return problems
}

// escape is a JSON pointer's escaping of one token.
func escape(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}

// body checks res's JSON body against the schema at pointer, reading it
// and putting it back.
func (c *contractCheck) body(res *http.Response, pointer string) []string {
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return []string{"reading the body: " + err.Error()}
	}
	if _, err := c.validate(pointer, body); err != nil {
		return []string{"the body does not match " + pointer + ": " + oneLine(err)}
	}
	return nil
}

// stream checks the event stream that body carries as the caller reads
// it: what the caller reads is queued for a parser (sseclient's, as
// EventSource reads) on a goroutine of its own, which checks each frame.
func (c *contractCheck) stream(body io.ReadCloser, fail func(string)) io.ReadCloser {
	t := &tap{ready: make(chan struct{}, 1)}
	go func() {
		r := sseclient.NewReader(t, 0)
		for {
			f, err := r.Next()
			if err != nil {
				return // a frame cut by the end of the stream is no frame
			}
			for _, p := range c.frame(f) {
				fail(fmt.Sprintf("frame id:%q event:%q data:%s: %s", f.ID, f.Event, truncate(f.Data, 200), p))
			}
		}
	}()
	return &teeBody{ReadCloser: body, tap: t}
}

func (c *contractCheck) frame(f sseclient.Frame) []string {
	var problems []string
	if f.Malformed != "" {
		problems = append(problems, "malformed line")
	}
	if f.HasID {
		id, _ := json.Marshal(f.ID)
		if _, err := c.validate("#/components/schemas/EventID", id); err != nil {
			problems = append(problems, "id: is not an EventID: "+oneLine(err))
		}
	}
	if !f.HasData {
		return problems
	}
	pointer, ok := c.events[f.Event]
	if !ok {
		return append(problems, fmt.Sprintf("event %q is not in x-sse-events", f.Event))
	}
	v, err := c.validate(pointer, []byte(f.Data))
	if err != nil {
		problems = append(problems, "data does not match "+pointer+": "+oneLine(err))
	}
	// What the document says in words.
	d, _ := v.(map[string]any)
	switch f.Event {
	case "notification":
		if seq, ok := d["seq"].(json.Number); !ok || seq.String() != f.ID {
			problems = append(problems, "an event's id: is its seq")
		}
	case "refused":
		if f.HasID {
			problems = append(problems, "a refused event has no id:")
		}
		if ms, ok := d["retry_ms"].(json.Number); !ok || ms.String() != strconv.FormatInt(f.Retry.Milliseconds(), 10) {
			problems = append(problems, "a refused event's retry: is its retry_ms")
		}
	}
	return problems
}

// teeBody passes what the caller reads on to the events' parser.
type teeBody struct {
	io.ReadCloser
	tap *tap
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.tap.put(p[:n], err != nil)
	return n, err
}

func (b *teeBody) Close() error {
	err := b.ReadCloser.Close()
	b.tap.put(nil, true)
	return err
}

// tap queues what the caller of a checked stream read for the parser,
// never making the caller wait: a relay cuts a stream whose reader falls
// behind (its write timeout), and the check must not make one.
type tap struct {
	mu    sync.Mutex
	buf   []byte
	end   bool
	ready chan struct{} // something was put
}

func (t *tap) put(p []byte, end bool) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	t.end = t.end || end
	t.mu.Unlock()
	select {
	case t.ready <- struct{}{}:
	default:
	}
}

// Read is the parser's: what the caller read, in order, then io.EOF.
func (t *tap) Read(p []byte) (int, error) {
	for {
		t.mu.Lock()
		if len(t.buf) > 0 {
			n := copy(p, t.buf)
			t.buf = t.buf[n:]
			if len(t.buf) == 0 {
				t.buf = nil
			}
			t.mu.Unlock()
			return n, nil
		}
		end := t.end
		t.mu.Unlock()
		if end {
			return 0, io.EOF
		}
		<-t.ready
	}
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

// The check's rules catch what they are for: each answer here is one a
// relay that drifted from the document could give.
func TestContractCheckRules(t *testing.T) {
	t.Parallel()
	const id = "5f0c1d3e-8f6a-4b7c-9d2e-1a2b3c4d5e6f"
	answer := func(status int, header http.Header, body string) *http.Response {
		rec := httptest.NewRecorder()
		for k, v := range header {
			rec.Header()[k] = v
		}
		rec.WriteHeader(status)
		_, _ = rec.WriteString(body)
		return rec.Result()
	}
	asJSON := http.Header{"Content-Type": {"application/json"}}
	bearer := http.Header{"Authorization": {"Bearer x"}}
	cases := []struct {
		name         string
		method, path string
		header       http.Header
		res          *http.Response
		serves       listener
		want         string // "" when the answer keeps the contract
	}{
		{"count", "GET", "/notifications/unread/count", bearer,
			answer(200, http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}, `{"count":3,"capped":false,"unseen":2,"unseen_capped":false}`), allPaths, ""},
		{"a field renamed", "GET", "/notifications/unread/count", bearer,
			answer(200, http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}, `{"n":3,"capped":false,"unseen":2,"unseen_capped":false}`), allPaths, "does not match"},
		{"a header lost", "GET", "/notifications/unread/count", bearer,
			answer(200, asJSON, `{"count":3,"capped":false,"unseen":2,"unseen_capped":false}`), allPaths, "Cache-Control"},
		{"a status undocumented", "GET", "/notifications/unread/count", bearer,
			answer(402, asJSON, `{"error":"x","message":"y"}`), allPaths, "status"},
		{"an error code undocumented", "POST", "/notifications/" + id + "/read", bearer,
			answer(404, asJSON, `{"error":"gone","message":"y"}`), allPaths, "does not match"},
		{"a request the document refuses, served", "GET", "/notifications?limit=500", bearer,
			answer(200, asJSON, `{"notifications":[],"next_cursor":null}`), allPaths, "refuses this request"},
		{"no token, served", "GET", "/notifications", nil,
			answer(200, asJSON, `{"notifications":[],"next_cursor":null}`), allPaths, "refuses this request"},
		{"a 401 without its challenge", "GET", "/notifications", nil,
			answer(401, asJSON, `{"error":"unauthorized","message":"y"}`), allPaths, "WWW-Authenticate"},
		{"405 with Allow", "PUT", "/notifications/" + id + "/read", bearer,
			answer(405, http.Header{"Allow": {"POST"}}, ""), allPaths, ""},
		{"405 naming a method the document lacks", "PUT", "/notifications/" + id + "/read", bearer,
			answer(405, http.Header{"Allow": {"GET, POST"}}, ""), allPaths, "Allow"},
		{"a route the document lacks", "GET", "/notifications/" + id, bearer,
			answer(200, asJSON, `{}`), allPaths, "405"},
		{"a path the document lacks", "GET", "/debug", nil, answer(200, nil, ""), allPaths, "404"},
		{"HEAD on a GET route", "HEAD", "/healthz", nil, answer(200, nil, ""), allPaths, ""},
		{"HEAD on the stream", "HEAD", "/notifications/stream", bearer, answer(200, nil, ""), allPaths, "status"},
		{"the ops listener's path on the API listener", "GET", "/healthz", nil,
			answer(200, asJSON, `{"status":"ok"}`), apiPaths, "404"},
		{"a preflight refused", "OPTIONS", "/notifications", http.Header{"Origin": {"https://evil.example"}},
			answer(403, asJSON, `{"error":"origin_not_allowed","message":"y"}`), allPaths, ""},
		{"a stream answered as JSON", "GET", "/notifications/stream", bearer,
			answer(200, asJSON, `{}`), allPaths, "Content-Type"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "http://relay.test"+c.path, nil)
		for k, v := range c.header {
			req.Header[k] = v
		}
		problems := strings.Join(contract.check(req, c.res, c.serves, true, func(p string) { t.Errorf("%s: %s", c.name, p) }), "; ")
		if c.want == "" {
			require.Empty(t, problems, c.name)
		} else {
			require.Contains(t, problems, c.want, c.name)
		}
	}

	// The stream's frames.
	frames := []struct {
		name string
		f    sseclient.Frame
		want string
	}{
		{"an event", sseclient.Frame{ID: "17", HasID: true, Event: "notification", HasData: true,
			Data: `{"seq":17,"op":"created","id":"` + id + `","type":"t","database_key":null,"read_at":null,"sse":null}`}, ""},
		{"refetch", sseclient.Frame{ID: "17", HasID: true, Event: "notification", HasData: true,
			Data: `{"seq":17,"op":"refetch","database_key":null,"read_at":null,"sse":null}`}, ""},
		{"the resume point", sseclient.Frame{ID: "17", HasID: true}, ""},
		{"an id that is no seq", sseclient.Frame{ID: "x17", HasID: true}, "EventID"},
		{"an id: other than the seq", sseclient.Frame{ID: "18", HasID: true, Event: "notification", HasData: true,
			Data: `{"seq":17,"op":"created","id":"` + id + `","type":"t","database_key":null,"read_at":null,"sse":null}`}, "its seq"},
		{"an op undocumented", sseclient.Frame{ID: "17", HasID: true, Event: "notification", HasData: true,
			Data: `{"seq":17,"op":"restored","id":"` + id + `","type":"t","database_key":null,"read_at":null,"sse":null}`}, "does not match"},
		{"a created event without its id", sseclient.Frame{ID: "17", HasID: true, Event: "notification", HasData: true,
			Data: `{"seq":17,"op":"created","type":"t","database_key":null,"read_at":null,"sse":null}`}, "does not match"},
		{"a refusal", sseclient.Frame{Retry: 1500 * time.Millisecond, Event: "refused", HasData: true,
			Data: `{"reason":"shutting_down","message":"m","status":503,"retry_ms":1500}`}, ""},
		{"a refusal with an id", sseclient.Frame{ID: "17", HasID: true, Retry: 1500 * time.Millisecond, Event: "refused", HasData: true,
			Data: `{"reason":"shutting_down","message":"m","status":503,"retry_ms":1500}`}, "no id:"},
		{"an event undocumented", sseclient.Frame{Event: "archived", HasData: true, Data: `{}`}, "x-sse-events"},
	}
	for _, c := range frames {
		problems := strings.Join(contract.frame(c.f), "; ")
		if c.want == "" {
			require.Empty(t, problems, c.name)
		} else {
			require.Contains(t, problems, c.want, c.name)
		}
	}
}

// The relay serves the document, without a token, on its API listener
// only; a client revalidates it with its ETag.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	r := b.startServed(t, func(c *relay.Config) { c.OpsAddr = "127.0.0.1:0" })
	want, err := openapi.JSON()
	require.NoError(t, err)

	res, body := do(t, http.MethodGet, r.URL+"/openapi.json", nil)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	require.JSONEq(t, string(want), string(body))
	etag := res.Header.Get("ETag")
	require.NotEmpty(t, etag)

	res, body = do(t, http.MethodGet, r.URL+"/openapi.json", http.Header{"If-None-Match": {etag}})
	require.Equal(t, http.StatusNotModified, res.StatusCode)
	require.Empty(t, body)

	res, _ = do(t, http.MethodGet, r.OpsURL+"/openapi.json", nil)
	require.Equal(t, http.StatusNotFound, res.StatusCode, "the ops listener serves health and metrics only")
}
