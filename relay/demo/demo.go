// Package demo serves Bellhop's demo page: the browser bundle's bell and
// inbox, a vanilla-JS badge built from the live unread badge recipe, and
// buttons that write notifications from the server side: committed, rolled
// back, and a progress notification that goes from 0 to 100%.
//
// Everything it does not serve goes to the relay's handler, so the page, the
// static files and the API share one origin and the relay's token cookie
// (BELLHOP_COOKIE_NAME in cmd/relay).
package demo

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

//go:embed page.html static
var files embed.FS

//go:embed sql/*.sql
var queryFiles embed.FS

// SecretTable is where, in the demo's schema, Secret keeps the secret.
const SecretTable = "demo_secret"

// Secret returns the demo's own HS256 secret for schema: made at random the
// first time, then kept in the schema's demo_secret table, so a restarted
// demo accepts the cookies it set before. The page mints a token for anyone
// who opens it, so its secret must never be one the application's tokens
// are signed with.
func Secret(ctx context.Context, pool *pgxpool.Pool, schema string) (string, error) {
	set, err := sqlq.Load(queryFiles, schema)
	if err != nil {
		return "", err
	}
	create, get := set.Get("CreateSecretTable"), set.Get("Secret")
	if err := set.Err(); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("demo secret: %w", err)
	}
	if _, err := pool.Exec(ctx, create); err != nil {
		return "", fmt.Errorf("demo secret: create %s.%s: %w", schema, SecretTable, err)
	}
	var secret string
	if err := pool.QueryRow(ctx, get, base64.RawURLEncoding.EncodeToString(b)).Scan(&secret); err != nil {
		return "", fmt.Errorf("demo secret: %w", err)
	}
	return secret, nil
}

// Recipient is who the demo page is signed in as.
var Recipient = outbox.User("demo")

// tokenTTL is how long the demo's cookie token is valid; reloading the page
// mints a new one.
const tokenTTL = 12 * time.Hour

// Progress steps: 0, 10, ..., 100 every progressStep (about 2.5 s in all).
const (
	progressStep  = 250 * time.Millisecond
	progressDelta = 10
)

type server struct {
	ob     *outbox.Outbox
	pool   *pgxpool.Pool
	secret string
	cookie string // the relay's Config.CookieName
	log    *slog.Logger
	sent   atomic.Int64 // numbers the demo's notifications
	// exports counts the progress notifications still moving (see
	// progress), at most maxExports.
	exports atomic.Int64
}

// maxExports bounds the progress notifications moving at once: each is a
// goroutine that writes for a few seconds.
const maxExports = 16

// Handler serves the demo page on GET /, the browser bundle under
// /demo/static/, the POST /demo/* buttons, and everything else through
// relayHandler. The page sets the cookie named cookieName (the relay's
// Config.CookieName) for Recipient, signed with secret (the demo's own, from
// Secret).
func Handler(ob *outbox.Outbox, pool *pgxpool.Pool, secret, cookieName string, relayHandler http.Handler) http.Handler {
	s := &server{ob: ob, pool: pool, secret: secret, cookie: cookieName, log: slog.Default()}
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embed directive guarantees it
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.Handle("GET /demo/static/", http.StripPrefix("/demo/static/", noCache(http.FileServerFS(static))))
	mux.HandleFunc("POST /demo/send", s.send)
	mux.HandleFunc("POST /demo/send-rollback", s.sendRollback)
	mux.HandleFunc("POST /demo/progress", s.progress)
	mux.HandleFunc("POST /demo/action", s.action)
	mux.HandleFunc("/demo/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "message": "no such demo route"})
	})
	mux.Handle("/", relayHandler)
	return guard(mux)
}

// guard keeps other sites out of a demo that listens on a developer's
// machine. It answers only to localhost (or a name under .localhost) or an
// IP address: another host name that resolves to the machine is how DNS
// rebinding lets a site's scripts read what the page shows, its cookie
// included. And its buttons refuse a POST another site's page sends: they
// take no token, and a form posts across sites without a preflight.
func guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		lower := strings.ToLower(host)
		if lower != "localhost" && !strings.HasSuffix(lower, ".localhost") && net.ParseIP(host) == nil {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "forbidden_host",
				"message": "the demo answers only to localhost or an IP address, not " + strconv.Quote(r.Host) + " (a name that resolves here is how DNS rebinding reaches it): open it at http://127.0.0.1 or http://localhost on its port"})
			return
		}
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/demo/") && crossSite(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross_site_request",
				"message": "the demo's buttons take requests from its own page only"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// crossSite reports whether r comes from another origin's page: its Origin
// names another host, or the browser says so (Sec-Fetch-Site).
func crossSite(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		return err != nil || !strings.EqualFold(u.Host, r.Host)
	}
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "cross-site" || site == "same-site"
}

func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

func (s *server) page(w http.ResponseWriter, r *http.Request) {
	token, err := relay.Mint(s.secret, Recipient, tokenTTL)
	if err != nil {
		http.Error(w, "demo: mint token: "+err.Error(), http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookie,
		Value:    token,
		Path:     "/",
		MaxAge:   int(tokenTTL / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   r.TLS != nil,
	})
	body, err := files.ReadFile("page.html")
	if err != nil {
		http.Error(w, "demo: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// send writes one notification in a committed transaction.
func (s *server) send(w http.ResponseWriter, r *http.Request) {
	n := s.sent.Add(1)
	msg := outbox.Message{
		Kind: "demo.message",
		Data: map[string]any{"title": fmt.Sprintf("Hello #%d", n), "body": "Sent by the demo's Send button, committed."},
		SSE:  map[string]any{"n": n},
	}
	var id string
	err := pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
		var err error
		id, err = s.ob.Send(r.Context(), tx, Recipient, msg)
		return err
	})
	if err != nil {
		s.fail(w, "send", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "committed": true})
}

// action writes a notification with the widget's data convention: a link,
// an avatar, buttons (the page's onAction shows which was clicked) and an
// expiry, after which it leaves the inbox by itself.
func (s *server) action(w http.ResponseWriter, r *http.Request) {
	n := s.sent.Add(1)
	msg := outbox.Message{
		Kind: "demo.review",
		Data: map[string]any{
			"title": fmt.Sprintf("Review requested #%d", n),
			"body":  "Approve or decline; this one expires in 10 minutes.",
			"url":   "#review-" + fmt.Sprint(n),
			"actions": []map[string]string{
				{"id": "approve", "label": "Approve"},
				{"id": "decline", "label": "Decline"},
			},
		},
		Expires: time.Now().Add(10 * time.Minute),
	}
	id, err := s.ob.Send(r.Context(), s.pool, Recipient, msg)
	if err != nil {
		s.fail(w, "send with actions", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "committed": true})
}

// sendRollback sends inside a transaction and rolls it back: nothing is
// stored and nothing is pushed.
func (s *server) sendRollback(w http.ResponseWriter, r *http.Request) {
	tx, err := s.pool.Begin(r.Context())
	if err != nil {
		s.fail(w, "send-rollback", err)
		return
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(r.Context())) }()
	msg := outbox.Message{
		Kind: "demo.rolled_back",
		Data: map[string]any{"title": "You should never see this", "body": "This send was rolled back."},
	}
	id, err := s.ob.Send(r.Context(), tx, Recipient, msg)
	if err != nil {
		s.fail(w, "send-rollback", err)
		return
	}
	if err := tx.Rollback(r.Context()); err != nil {
		s.fail(w, "send-rollback", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "committed": false})
}

// progress starts a progress notification that goes from 0 to 100% in the
// background, each step in its own committed transaction, all on one row
// (one database key).
func (s *server) progress(w http.ResponseWriter, r *http.Request) {
	if s.exports.Add(1) > maxExports {
		s.exports.Add(-1)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "too_many_exports",
			"message": fmt.Sprintf("%d progress notifications are moving already; wait for one to finish", maxExports)})
		return
	}
	n := s.sent.Add(1)
	key := fmt.Sprintf("demo-export:%d:%d", time.Now().UnixNano(), n)
	title := fmt.Sprintf("Export #%d", n)
	step := func(ctx context.Context, pct int) (string, error) {
		msg := outbox.Message{
			Kind: "demo.export",
			Data: map[string]any{"title": title, "body": "A progress notification: one row, updated in place.", "progress": pct},
			SSE:  map[string]any{"progress": pct},
			Key:  key,
		}
		var id string
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			id, err = s.ob.Send(ctx, tx, Recipient, msg)
			return err
		})
		return id, err
	}
	id, err := step(r.Context(), 0)
	if err != nil {
		s.exports.Add(-1)
		s.fail(w, "progress", err)
		return
	}
	ctx := context.WithoutCancel(r.Context())
	go func() {
		defer s.exports.Add(-1)
		for pct := progressDelta; pct <= 100; pct += progressDelta {
			time.Sleep(progressStep)
			if _, err := step(ctx, pct); err != nil {
				s.log.Warn("demo: progress step failed", "key", key, "progress", pct, "err", err)
				return
			}
		}
	}()
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "database_key": key})
}

func (s *server) fail(w http.ResponseWriter, what string, err error) {
	s.log.Error("demo: "+what+" failed", "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal", "message": what + " failed; the demo's log says why"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
