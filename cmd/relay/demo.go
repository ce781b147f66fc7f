package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/internal/pgserver"
	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/migrations"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	demopage "github.com/bellhophq/bellhop/relay/demo"
)

// Demo defaults. The page mints a token for whoever opens it, so the demo
// listens on loopback only unless told otherwise, and keeps to a schema of
// its own.
const (
	demoAddr   = "127.0.0.1:8080"
	demoSchema = "bellhop_demo"
)

// demoFlags are the demo's flags and their defaults.
func demoFlags() (fs *flag.FlagSet, addr, schema *string) {
	fs = flag.NewFlagSet("demo", flag.ContinueOnError)
	addr = fs.String("addr", demoAddr, "the address to serve the demo page and the relay on; the page signs anyone in, so keep it on loopback")
	schema = fs.String("schema", demoSchema, "the schema of the demo's tables (BELLHOP_SCHEMA is ignored, so the demo never writes into your application's)")
	return fs, addr, schema
}

// demo runs everything a browser needs to see Bellhop work: a PostgreSQL
// (DATABASE_URL, else TEST_DATABASE_URL, else a throwaway cluster from local
// binaries; cmd/demo adds Docker), the schema, the relay
// and the demo page, until ctx ends (SIGINT, SIGTERM).
//
// It is safe to run with an application's environment: it signs tokens with
// a secret of its own (never BELLHOP_JWT_SECRET), writes to its own schema
// (--schema, never BELLHOP_SCHEMA) and listens on loopback unless --addr
// says otherwise. Outside the schema, its migration makes the schema's
// writer role (cluster-wide) and wake publication, as `relay migrate` does;
// the banner says so, and how to drop them. It never drops data: started
// again against the same database and schema, it continues where it
// stopped, with the same secret.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs, addr, schema := demoFlags()
	if err := parseFlags(fs, args, stdout, "demo [--addr 127.0.0.1:8080] [--schema bellhop_demo]",
		"run a demo: a PostgreSQL (DATABASE_URL, else TEST_DATABASE_URL, else local binaries), the\n"+
			"relay and a page with a live bell, with a secret and a schema of its own."); err != nil {
		return err
	}
	if err := sqlq.CheckSchema(*schema); err != nil {
		return fmt.Errorf("demo: --schema: %w", err)
	}
	// The address first: a taken one fails before any database starts.
	ln, err := demopage.Listen(*addr, "--addr")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// Serve closes it, and Shutdown; this is for the returns before.
	defer ln.Close()
	// Last, after a PostgreSQL the demo started has stopped too.
	defer func() {
		if err == nil {
			fmt.Fprintln(stderr, "relay demo: stopped")
		}
	}()

	var env envConfig
	if err := readEnv(ctx, &env); err != nil {
		return err
	}
	switch env.WakeMode {
	case "adaptive", "notify", "poll", "logical":
	default:
		return fmt.Errorf("BELLHOP_WAKE_MODE=%q is not one of adaptive (the default), notify, poll, logical", env.WakeMode)
	}
	cfg := env.relayConfig()
	log := newLogger(stderr)

	// What the demo ignores of the environment, for the banner.
	var ignored []string
	for _, v := range []struct{ name, value string }{
		{"BELLHOP_JWT_SECRET", cfg.JWTSecret}, {"BELLHOP_JWT_PUBLIC_KEY_FILE", cfg.JWTPublicKeyFile},
		{"BELLHOP_JWKS_URL", cfg.JWKSURL}, {"BELLHOP_JWT_ISSUER", cfg.JWTIssuer},
		{"BELLHOP_JWT_AUDIENCE", cfg.JWTAudience},
	} {
		if v.value != "" {
			ignored = append(ignored, v.name)
		}
	}
	if os.Getenv("BELLHOP_SCHEMA") != "" && os.Getenv("BELLHOP_SCHEMA") != *schema {
		ignored = append(ignored, "BELLHOP_SCHEMA")
	}
	// The demo checks only the tokens its page mints.
	cfg.JWTSecret, cfg.JWTPublicKeyFile, cfg.JWKSURL, cfg.JWTIssuer, cfg.JWTAudience = "", "", "", "", ""
	cfg.JWTMaxLifetime = relay.DefaultJWTMaxLifetime
	cfg.Schema, cfg.Worker.Schema = *schema, *schema

	// The background context for what must outlive ctx: stopping the
	// cluster and the relay happens after ctx is cancelled.
	bg := context.WithoutCancel(ctx)

	dbSource := "DATABASE_URL"
	if cfg.DatabaseURL == "" {
		// No container finder here: it would link testcontainers-go and
		// the Docker client into the relay binary. cmd/demo (make demo)
		// has it, and runs this with DATABASE_URL set.
		fmt.Fprintln(stderr, "relay demo: DATABASE_URL is not set; using TEST_DATABASE_URL, else starting a PostgreSQL from local binaries (for one in Docker, run make demo)...")
		pg, err := pgserver.Start(bg)
		if err != nil {
			return fmt.Errorf("demo: %w\nFor a PostgreSQL in Docker, run `make demo` (go run ./cmd/demo) instead: it starts one and runs this demo on it", err)
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				log.Warn("demo: stopping PostgreSQL failed", "err", err)
			}
		}()
		cfg.DatabaseURL = pg.URL
		dbSource = pg.Source
		log.Info("demo: using PostgreSQL", "source", pg.Source)
	}

	// The schema and the demo's secret first: the relay is built with it.
	secret, err := demoSetup(ctx, cfg.DatabaseURL, cfg.Schema)
	if err != nil {
		return err
	}
	cfg.JWTSecret = secret

	r, err := relay.New(ctx, cfg, log)
	if err != nil {
		return envError(err)
	}
	ob, err := outbox.New(outbox.Config{Schema: cfg.Schema})
	if err != nil {
		r.Pool().Close()
		return err
	}
	if err := r.Start(bg); err != nil {
		_ = r.Stop(bg)
		return err
	}

	// The relay's own timeouts: a connection that sends no token or no
	// headers is cut within seconds here too.
	srv := r.NewServer("", demopage.Handler(ob, r.Pool(), secret, cfg.CookieName, r.Handler()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	tcp := ln.Addr().(*net.TCPAddr)
	log.Info("demo serving", "addr", tcp.String(), "schema", cfg.Schema)
	if !tcp.IP.IsLoopback() {
		log.Warn("demo: listening beyond loopback; anyone who reaches the page is signed in", "addr", tcp.String())
	}
	demoBanner(stdout, tcp, cfg.DatabaseURL, dbSource, cfg.Schema, ignored)

	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "relay demo: shutting down")
	shutdown, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	// Stop first ends every stream (browsers reconnect and resume), so that
	// Shutdown does not wait for them; then the server drains.
	stopErr := r.Stop(shutdown)
	if serr := srv.Shutdown(shutdown); serr != nil && err == nil {
		err = serr
	}
	if stopErr != nil && err == nil {
		err = stopErr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// demoSetup migrates the demo's schema and returns its secret.
func demoSetup(ctx context.Context, dbURL, schema string) (string, error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return "", fmt.Errorf("demo: DATABASE_URL: %w", err)
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool, schema); err != nil {
		return "", fmt.Errorf("demo: migrate schema %q: %w", schema, dbError(err, schema))
	}
	return demopage.Secret(ctx, pool, schema)
}

// demoBanner says where the demo is, what it uses and what it ignores.
func demoBanner(w io.Writer, tcp *net.TCPAddr, dbURL, dbSource, schema string, ignored []string) {
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "localhost"
	}
	// A password stays out of the terminal: the psql line reads it from
	// the environment instead.
	env := "DATABASE_URL"
	if name, ok := strings.CutPrefix(dbSource, "env "); ok {
		env = name // pgserver found it there
	}
	shown, psqlURL := dbURL, "'"+dbURL+"'"
	if u, err := url.Parse(dbURL); err != nil || u.Scheme == "" {
		shown, psqlURL = "("+env+")", `"$`+env+`"`
	} else if _, hasPassword := u.User.Password(); hasPassword {
		shown, psqlURL = u.Redacted(), `"$`+env+`"`
	}
	fmt.Fprintf(w, "Bellhop demo: open http://%s/\n", net.JoinHostPort(host, strconv.Itoa(tcp.Port)))
	// migrations.Up makes two things outside the schema, as for `relay
	// migrate`: the writer role, cluster-wide, and the wake publication.
	role, publication := migrations.WriterRole(schema), schema+"_wake"
	fmt.Fprintf(w, "  database: %s (%s), schema %s\n", shown, dbSource, schema)
	fmt.Fprintf(w, "  outside the schema, the demo makes only the writer role %s (NOLOGIN, cluster-wide) and the publication %s\n", role, publication)
	fmt.Fprintf(w, "  send one from psql:\n    psql %s -c \"INSERT INTO %s.notifications (notifiable_id, type, data) VALUES ('%s', 'demo.psql', jsonb_build_object('title', 'Hello from psql'))\"\n",
		psqlURL, schema, demopage.Recipient.ID)
	fmt.Fprintf(w, "  to remove all of it, once the demo has stopped:\n    psql %s -c 'DROP SCHEMA %s CASCADE' -c 'DROP PUBLICATION IF EXISTS %s' -c 'DROP ROLE IF EXISTS %s'\n",
		psqlURL, schema, publication, role)
	fmt.Fprintf(w, "  tokens: the page signs in whoever opens it, with the demo's own secret (kept in %s.%s), never BELLHOP_JWT_SECRET\n", schema, demopage.SecretTable)
	if len(ignored) > 0 {
		fmt.Fprintf(w, "  ignored from the environment: %s\n", strings.Join(ignored, ", "))
	}
	if !tcp.IP.IsLoopback() {
		where := tcp.String()
		if tcp.IP.IsUnspecified() {
			where = fmt.Sprintf("every interface, port %d", tcp.Port)
		}
		fmt.Fprintf(w, "\n  WARNING: listening on %s, beyond this machine. Anyone who can reach it gets a\n"+
			"  signed-in session and can send notifications. Use --addr 127.0.0.1:%d unless you mean it.\n\n", where, tcp.Port)
	}
}
