package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bellhophq/bellhop/inbox"
	"github.com/bellhophq/bellhop/outbox"
)

// maxBodyBytes bounds request bodies; no route needs one.
const maxBodyBytes = 1 << 10

func (r *Relay) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("GET /notifications", r.authed(r.list))
	api.HandleFunc("GET /notifications/unread/count", r.authed(r.unreadCount))
	api.HandleFunc("POST /notifications/read-all", r.authed(r.markAllRead))
	api.HandleFunc("POST /notifications/{id}/read", r.authed(r.markRead))
	api.HandleFunc("POST /notifications/{id}/unread", r.authed(r.markUnread))
	api.HandleFunc("DELETE /notifications/{id}", r.authed(r.remove))
	api.HandleFunc("/notifications/", func(w http.ResponseWriter, req *http.Request) {
		notRouted(api, w, req)
	})

	mux := http.NewServeMux()
	// Streams are long-lived: no request timeout for them.
	mux.HandleFunc("GET /notifications/stream", r.authed(r.stream))
	bounded := withTimeout(api, r.cfg.RequestTimeout)
	mux.Handle("/notifications", bounded)
	mux.Handle("/notifications/", bounded)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", r.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.Registry, promhttp.HandlerOpts{}))
	return r.cors(limitBody(mux))
}

// notRouted answers JSON for what the mux would answer in plain text: 405
// (with Allow) when the path exists under another method, else 404.
func notRouted(mux *http.ServeMux, w http.ResponseWriter, req *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		probe := req.Clone(req.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/notifications/" {
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
		writeError(w, http.StatusServiceUnavailable, "not_ready", err.Error())
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
				writeError(w, http.StatusForbidden, "origin_not_allowed", "origin "+strconv.Quote(origin)+" is not in BELLHOP_ALLOWED_ORIGINS")
				return
			}
			next.ServeHTTP(w, req)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Add("Vary", "Origin")
		if req.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
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

// limitBody refuses bodies over maxBodyBytes with 413.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.ContentLength > maxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request bodies are limited to %d bytes", maxBodyBytes))
			return
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(w, req.Body, maxBodyBytes)
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request bodies are limited to %d bytes", maxBodyBytes))
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

type authedHandler func(w http.ResponseWriter, req *http.Request, to outbox.Recipient)

func (r *Relay) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		to, aerr := r.auth.recipient(req)
		if aerr != nil {
			challenge := `Bearer realm="bellhop"`
			if aerr.code != "" {
				challenge += fmt.Sprintf(`, error=%q, error_description=%q`, aerr.code, aerr.description)
			}
			w.Header().Set("WWW-Authenticate", challenge)
			code := aerr.code
			if code == "" {
				code = "unauthorized"
			}
			writeError(w, aerr.status, code, aerr.description)
			return
		}
		h(w, req, to)
	}
}

func (r *Relay) list(w http.ResponseWriter, req *http.Request, to outbox.Recipient) {
	q := req.URL.Query()
	for name := range q {
		switch name {
		case "limit", "cursor", "unread", "type":
		default:
			writeError(w, http.StatusBadRequest, "bad_parameter", "unknown parameter "+strconv.Quote(name)+" (known: limit, cursor, unread, type)")
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
	for _, t := range opts.Types {
		if t == "" || len(t) > outbox.MaxNameBytes {
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

func (r *Relay) unreadCount(w http.ResponseWriter, req *http.Request, to outbox.Recipient) {
	c, err := r.inbox.UnreadCount(req.Context(), to)
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, c)
}

func (r *Relay) markRead(w http.ResponseWriter, req *http.Request, to outbox.Recipient) {
	r.change(w, req, to, r.inbox.MarkRead)
}

func (r *Relay) markUnread(w http.ResponseWriter, req *http.Request, to outbox.Recipient) {
	r.change(w, req, to, r.inbox.MarkUnread)
}

func (r *Relay) change(w http.ResponseWriter, req *http.Request, to outbox.Recipient,
	f func(context.Context, outbox.Recipient, string) (inbox.Notification, error)) {
	n, err := f(req.Context(), to, req.PathValue("id"))
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (r *Relay) markAllRead(w http.ResponseWriter, req *http.Request, to outbox.Recipient) {
	n, err := r.inbox.MarkAllRead(req.Context(), to)
	if err != nil {
		r.inboxError(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"updated": n})
}

func (r *Relay) remove(w http.ResponseWriter, req *http.Request, to outbox.Recipient) {
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
	case errors.Is(err, inbox.ErrBadLimit):
		writeError(w, http.StatusBadRequest, "bad_limit", "limit must be an integer from 1 to "+strconv.Itoa(inbox.MaxLimit))
	case errors.Is(req.Context().Err(), context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "timeout", "the request took longer than BELLHOP_REQUEST_TIMEOUT")
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
