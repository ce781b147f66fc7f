package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	openapi "github.com/bellhophq/bellhop/api"
	"github.com/bellhophq/bellhop/bellhoptype"
	"github.com/bellhophq/bellhop/inbox"
)

// maxBodyBytes bounds request bodies a route does not read.
const maxBodyBytes = 1 << 10

// maxPreferencesBytes bounds the body of PUT /notifications/preferences,
// the one route that reads one: MaxPreferenceTypes types of 255 bytes with
// their channels fit.
const maxPreferencesBytes = 128 << 10

// preferencesPath is the route that takes a body (PUT).
const preferencesPath = "/notifications/preferences"

// drainTimeout bounds the wait for an ignored body after the answer.
const drainTimeout = time.Second

// routes is the relay's API, and its health and metrics routes unless
// Config.OpsAddr moves them to a listener of their own (opsRoutes). Every
// route is in api/openapi.yaml (see route).
func (r *Relay) routes() (http.Handler, error) {
	api := http.NewServeMux()
	r.route(api, "GET /notifications", r.authed(r.list))
	r.route(api, "GET /notifications/unread/count", r.authed(r.unreadCount))
	r.route(api, "POST /notifications/read-all", r.authed(r.markAllRead))
	r.route(api, "POST /notifications/seen", r.authed(r.markSeen))
	r.route(api, "POST /notifications/{id}/read", r.authed(r.markRead))
	r.route(api, "POST /notifications/{id}/unread", r.authed(r.markUnread))
	r.route(api, "POST /notifications/{id}/archive", r.authed(r.archive))
	r.route(api, "POST /notifications/{id}/unarchive", r.authed(r.unarchive))
	remove := r.authed(r.remove)
	r.route(api, "DELETE /notifications/{id}", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == preferencesPath {
			notRouted(api, w, req) // not an id: 405, Allow: GET, PUT
			return
		}
		remove(w, req)
	})
	r.route(api, "GET "+preferencesPath, r.authed(r.preferences))
	r.route(api, "PUT "+preferencesPath, r.authed(r.setPreferences))
	// Without a pattern of its own, PUT /notifications would be redirected
	// (307) to /notifications/ by the mux.
	handle(api, "/notifications", func(w http.ResponseWriter, req *http.Request) {
		notRouted(api, w, req)
	})
	handle(api, "/notifications/", func(w http.ResponseWriter, req *http.Request) {
		notRouted(api, w, req)
	})

	mux := http.NewServeMux()
	// Streams are long-lived: no request timeout for them.
	r.route(mux, "GET /notifications/stream", r.authed(r.stream))
	// A GET pattern also takes HEAD, which would open a stream nobody reads;
	// and any other method must not fall through to /notifications/{id}.
	handle(mux, "/notifications/stream", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", req.Method+" is not allowed here; use GET")
	})
	r.route(mux, "HEAD /notifications/stream", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", req.Method+" is not allowed here; use GET")
	})
	bounded := withTimeout(api, r.cfg.RequestTimeout)
	mux.Handle("/notifications", bounded)
	mux.Handle("/notifications/", bounded)
	doc, err := openapi.Handler()
	if err != nil {
		return nil, err
	}
	r.route(mux, "GET /openapi.json", doc.ServeHTTP)
	if r.cfg.OpsAddr == "" {
		r.opsRoutes(mux)
	}
	return r.instrument(r.cors(checkQuery(noBody(mux)))), nil
}

// opsHandler serves health and metrics on Config.OpsAddr.
func (r *Relay) opsHandler() http.Handler {
	mux := http.NewServeMux()
	r.opsRoutes(mux)
	return r.instrument(noBody(mux))
}

func (r *Relay) opsRoutes(mux *http.ServeMux) {
	r.route(mux, "GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.route(mux, "GET /readyz", r.readyz)
	r.route(mux, "GET /metrics", promhttp.HandlerFor(r.metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP)
}

// route registers a route: a pattern with a method, noted in r.patterns,
// which a test holds against api/openapi.yaml. (The patterns without a
// method only answer 404 and 405.) Register every route through it.
func (r *Relay) route(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	handle(mux, pattern, h)
	if !slices.Contains(r.patterns, pattern) {
		r.patterns = append(r.patterns, pattern)
	}
}

// notRouted answers JSON for what the mux would answer in plain text: 405
// (with Allow) when the path exists under another method, else 404.
func notRouted(mux *http.ServeMux, w http.ResponseWriter, req *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := req.Clone(req.Context())
		probe.Method = m
		// Only a pattern with a method is a route; the others are catch-alls.
		_, pattern := mux.Handler(probe)
		if pattern == "DELETE /notifications/{id}" && req.URL.Path == preferencesPath {
			continue
		}
		if strings.Contains(pattern, " ") {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", req.Method+" is not allowed here; use "+strings.Join(allowed, " or "))
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "no such route; see the README for the API")
}

func (r *Relay) readyz(w http.ResponseWriter, req *http.Request) {
	if err := r.Ready(req.Context()); err != nil {
		// The detail names the database's user, name and address: it goes
		// to the log, not to whoever asks.
		r.log.Warn("not ready", "err", err)
		writeError(w, http.StatusServiceUnavailable, "not_ready", "the relay is not ready; its log says why")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// cors answers preflights and marks responses for allowed origins only. A
// request from any other origin gets no CORS headers, so browsers refuse it.
func (r *Relay) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		origin := req.Header.Get("Origin")
		if origin == "" || !slices.Contains(r.cfg.AllowedOrigins, origin) {
			if req.Method == http.MethodOptions && origin != "" {
				writeError(w, http.StatusForbidden, "origin_not_allowed", "origin "+strconv.Quote(origin)+" is not among the relay's allowed origins")
				return
			}
			next.ServeHTTP(w, req)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		// A script may read only safelisted headers of a cross-origin
		// answer unless told: the SDK needs these two.
		h.Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate")
		h.Add("Vary", "Origin")
		if req.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// withTimeout bounds a request through its context: every database call
// takes it, and inboxError answers 503 when it runs out. (Cheaper than
// http.TimeoutHandler, which runs each request on a goroutine of its own
// and buffers its answer.)
func withTimeout(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx, cancel := context.WithTimeout(req.Context(), d)
		defer cancel()
		next.ServeHTTP(w, req.WithContext(ctx))
	})
}

// noBody makes sure no handler reads a request body, and that none is
// waited for, except PUT /notifications/preferences: no other route takes
// one, and a body a client announced but never sends would hold the
// connection (and a goroutine) for as long as the client liked. A body
// over maxBodyBytes is refused from its Content-Length; any other is
// ignored. Either way the connection closes after the answer, its unread
// bytes being no request. The preferences route gets its body through
// http.MaxBytesReader (maxPreferencesBytes, refused up front when the
// Content-Length says more); the server's ReadTimeout bounds the wait for
// it.
func noBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.ContentLength == 0 {
			next.ServeHTTP(w, req)
			return
		}
		if req.Method == http.MethodPut && req.URL.Path == preferencesPath {
			if req.ContentLength > maxPreferencesBytes {
				w.Header().Set("Connection", "close")
				writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("preferences are limited to %d bytes of JSON", maxPreferencesBytes))
				return
			}
			req.Body = http.MaxBytesReader(w, req.Body, maxPreferencesBytes)
			next.ServeHTTP(w, req)
			// A body the handler did not read (a refused token) is
			// drained as below: briefly.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainTimeout))
			return
		}
		w.Header().Set("Connection", "close")
		// Once the answer is out, net/http still reads what is left of the
		// body (a chunked one even on a connection it then closes, for its
		// trailers). A second bounds that: enough for a body already on its
		// way (closing on unread bytes resets the connection, which can
		// lose the answer), not enough to hold the connection. A stream
		// that took its connection is left alone.
		hw := &hijackWatch{ResponseWriter: w}
		defer func() {
			if !hw.hijacked {
				_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(drainTimeout))
			}
		}()
		if req.ContentLength > maxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request bodies are limited to %d bytes (no route takes one)", maxBodyBytes))
			return
		}
		req.Body = http.NoBody
		req.ContentLength = 0
		next.ServeHTTP(hw, req)
	})
}

// hijackWatch notes whether a handler took the connection.
type hijackWatch struct {
	http.ResponseWriter
	hijacked bool
}

func (h *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.hijacked = err == nil
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the rest (Flush, deadlines).
func (h *hijackWatch) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// checkQuery refuses a query string that does not parse (req.URL.Query
// drops what it cannot parse, and gives up after 10,000 parameters, so a
// filter could silently vanish) or that holds NUL or invalid UTF-8, which
// PostgreSQL refuses in text (a 500 otherwise).
func checkQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.RawQuery == "" {
			next.ServeHTTP(w, req)
			return
		}
		q, err := url.ParseQuery(req.URL.RawQuery)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_query", "the query string does not parse: "+err.Error())
			return
		}
		for k, vs := range q {
			if !cleanText(k) {
				writeError(w, http.StatusBadRequest, "bad_parameter", "parameter names must be UTF-8 text without NUL")
				return
			}
			for _, v := range vs {
				if !cleanText(v) {
					writeError(w, http.StatusBadRequest, "bad_parameter", "parameter "+strconv.Quote(k)+" must be UTF-8 text without NUL")
					return
				}
			}
		}
		next.ServeHTTP(w, req)
	})
}

// cleanText reports whether PostgreSQL can take s as text.
func cleanText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

type authedHandler func(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient)

func (r *Relay) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") == "" {
			// The cookie is the credential: the browser attaches it to
			// requests from any site.
			if aerr := r.checkCookie(req); aerr != nil {
				writeAuthError(w, aerr)
				return
			}
		}
		to, aerr := r.auth.recipient(req)
		if aerr == nil {
			aerr = checkRecipient(to)
		}
		if aerr != nil {
			writeAuthError(w, aerr)
			return
		}
		h(w, req, to)
	}
}

// writeAuthError answers an authentication failure (RFC 6750) and closes the
// connection: a client without a valid token holds none open.
func writeAuthError(w http.ResponseWriter, aerr *authError) {
	if aerr.status == http.StatusUnauthorized {
		challenge := `Bearer realm="bellhop"`
		if aerr.code != "" {
			challenge += fmt.Sprintf(`, error=%q, error_description=%q`, aerr.code, aerr.description)
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	code := aerr.code
	if code == "" {
		code = "unauthorized"
	}
	w.Header().Set("Connection", "close")
	writeError(w, aerr.status, code, aerr.description)
}

// checkCookie refuses cookie authentication the browser may have attached
// for another site (CSRF): a request whose Origin is neither the relay's
// own nor in Config.AllowedOrigins, or, without Origin, one the browser
// marks Sec-Fetch-Site: cross-site. A form or a text/plain fetch needs no
// preflight, so CORS alone does not stop it. It also refuses two cookies
// of the token's name: which one the browser sent first depends on their
// paths and ages, and a sibling domain can plant one.
func (r *Relay) checkCookie(req *http.Request) *authError {
	cookies := req.CookiesNamed(r.cfg.CookieName)
	if len(cookies) == 0 {
		return nil
	}
	if len(cookies) > 1 {
		return refuse("invalid_request", fmt.Sprintf("the request carries %d %s cookies; send exactly one (clear the others, e.g. one set for another path or parent domain)", len(cookies), r.cfg.CookieName))
	}
	if origin := req.Header.Get("Origin"); origin != "" {
		if slices.Contains(r.cfg.AllowedOrigins, origin) || sameOrigin(origin, req) {
			return nil
		}
		return &authError{http.StatusForbidden, "cross_site_request", "origin " + strconv.Quote(origin) + " may not use the " + r.cfg.CookieName + " cookie: it is neither the relay's own origin nor among its allowed origins"}
	}
	if req.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return &authError{http.StatusForbidden, "cross_site_request", "a cross-site request may not use the " + r.cfg.CookieName + " cookie unless its origin is among the relay's allowed origins"}
	}
	return nil
}

// sameOrigin reports whether origin names the host the request was sent
// to. Over plain HTTP the scheme is not compared: behind a TLS-terminating
// proxy the relay sees http for an https page. Over TLS it is: a page the
// host serves over http (which anyone on the network path may have
// written) is not the relay's origin.
func sameOrigin(origin string, req *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, req.Host) {
		return false
	}
	return req.TLS == nil || u.Scheme == "https"
}

// checkRecipient refuses a token whose recipient PostgreSQL cannot take as
// text (NUL, invalid UTF-8): every query is scoped by it.
func checkRecipient(to bellhoptype.Recipient) *authError {
	if !cleanText(to.Tenant) || !cleanText(to.Type) || !cleanText(to.ID) {
		return refuse("invalid_token", "the token's sub, tenant or notifiable_type holds NUL or invalid UTF-8")
	}
	return nil
}

func (r *Relay) list(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	q := req.URL.Query() // checkQuery made sure it parses
	for name := range q {
		switch name {
		case "limit", "cursor", "unread", "type", "archived":
		default:
			writeError(w, http.StatusBadRequest, "bad_parameter", "unknown parameter "+strconv.Quote(name)+" (known: limit, cursor, unread, type, archived)")
			return
		}
	}
	opts := inbox.ListOptions{Cursor: q.Get("cursor"), Types: q["type"]}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_limit", "limit must be an integer from 1 to "+strconv.Itoa(inbox.MaxLimit))
			return
		}
		opts.Limit = n
		if n == 0 {
			opts.Limit = -1 // explicit 0 is out of range, not the default
		}
	}
	if s := q.Get("unread"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_unread", "unread must be true or false")
			return
		}
		opts.UnreadOnly = b
	}
	switch s := q.Get("archived"); s {
	case "", "false":
	case "true":
		opts.Archived = inbox.ArchivedInclude
	case "only":
		opts.Archived = inbox.ArchivedOnly
	default:
		writeError(w, http.StatusBadRequest, "bad_archived", "archived must be true, false or only")
		return
	}
	for _, t := range opts.Types {
		if t == "" || len(t) > bellhoptype.MaxNameBytes {
			writeError(w, http.StatusBadRequest, "bad_type", "type must be 1 to 255 bytes")
			return
		}
	}
	page, err := r.inbox.List(req.Context(), to, opts)
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	if page.Notifications == nil {
		page.Notifications = []inbox.Notification{}
	}
	writeJSON(w, http.StatusOK, page)
}

func (r *Relay) unreadCount(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	c, err := r.inbox.UnreadCount(req.Context(), to)
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, c)
}

func (r *Relay) markRead(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	r.change(w, req, to, r.inbox.MarkRead)
}

func (r *Relay) markUnread(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	r.change(w, req, to, r.inbox.MarkUnread)
}

func (r *Relay) archive(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	r.change(w, req, to, r.inbox.Archive)
}

func (r *Relay) unarchive(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	r.change(w, req, to, r.inbox.Unarchive)
}

// markSeen marks everything seen, or with up_to (an event id, as the
// stream's id: lines) what the reader can have been shown by that event.
func (r *Relay) markSeen(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	q := req.URL.Query()
	for name := range q {
		if name != "up_to" {
			writeError(w, http.StatusBadRequest, "bad_parameter", "unknown parameter "+strconv.Quote(name)+" (known: up_to)")
			return
		}
	}
	var opts inbox.SeenOptions
	if s := q.Get("up_to"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "bad_up_to", "up_to must be an event id: a positive integer")
			return
		}
		opts.UpTo = n
	}
	n, err := r.inbox.MarkSeen(req.Context(), to, opts)
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"updated": n})
}

func (r *Relay) change(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient,
	f func(context.Context, bellhoptype.Recipient, string) (inbox.Notification, error)) {
	n, err := f(req.Context(), to, req.PathValue("id"))
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (r *Relay) markAllRead(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	n, err := r.inbox.MarkAllRead(req.Context(), to)
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"updated": n})
}

func (r *Relay) remove(w http.ResponseWriter, req *http.Request, to bellhoptype.Recipient) {
	if err := r.inbox.Delete(req.Context(), to, req.PathValue("id")); err != nil {
		r.inboxError(w, req, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *Relay) inboxError(w http.ResponseWriter, req *http.Request, err error) {
	switch {
	case errors.Is(err, inbox.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no notification with that id for this recipient")
	case errors.Is(err, inbox.ErrBadID):
		writeError(w, http.StatusBadRequest, "bad_id", "the notification id must be a UUID")
	case errors.Is(err, inbox.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "bad_cursor", "cursor must be a next_cursor value returned by this API")
	case errors.Is(err, inbox.ErrBadPreferences):
		writeError(w, http.StatusBadRequest, "bad_preferences", strings.TrimPrefix(err.Error(), inbox.ErrBadPreferences.Error()+": "))
	case errors.Is(err, inbox.ErrBadLimit):
		writeError(w, http.StatusBadRequest, "bad_limit", "limit must be an integer from 1 to "+strconv.Itoa(inbox.MaxLimit))
	case errors.Is(req.Context().Err(), context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "timeout", "the request took longer than the relay's request timeout")
	case req.Context().Err() != nil:
		// The client went away; nobody reads this.
		writeError(w, http.StatusServiceUnavailable, "cancelled", "the request was cancelled")
	default:
		r.log.Error("inbox request failed", "path", req.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "the request failed; see the relay's log")
	}
}

type apiError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, apiError{Error: code, Message: message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
