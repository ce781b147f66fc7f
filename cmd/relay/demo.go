package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/bellhophq/bellhop/internal/pgserver"
	"github.com/bellhophq/bellhop/migrations"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	demopage "github.com/bellhophq/bellhop/relay/demo"
)

// demo runs everything a browser needs to see Bellhop work: a PostgreSQL
// (DATABASE_URL, else one pgserver finds or starts), the schema, the relay
// and the demo page, until ctx ends (SIGINT, SIGTERM).
//
// It never drops data: started again against the same DATABASE_URL and
// schema, it continues where it stopped.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "the address to serve the demo page and the relay on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo: unexpected arguments %q (the only flag is --addr)", fs.Args())
	}

	var cfg relay.Config
	if err := readEnv(ctx, &cfg); err != nil {
		return err
	}
	log := newLogger(stderr)

	// The background context for what must outlive ctx: stopping the
	// cluster and the relay happens after ctx is cancelled.
	bg := context.WithoutCancel(ctx)

	if cfg.DatabaseURL == "" {
		fmt.Fprintln(stderr, "relay demo: DATABASE_URL is not set; starting a PostgreSQL (Docker, else local binaries)...")
		pg, err := pgserver.Start(bg)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				log.Warn("demo: stopping PostgreSQL failed", "err", err)
			}
		}()
		cfg.DatabaseURL = pg.URL
		log.Info("demo: using PostgreSQL", "source", pg.Source)
	}
	if cfg.JWTSecret == "" && cfg.JWTPublicKeyFile == "" && cfg.JWKSURL == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		cfg.JWTSecret = base64.RawURLEncoding.EncodeToString(b)
	}
	if cfg.JWTSecret == "" {
		return errors.New("demo: the demo page mints HS256 tokens: set BELLHOP_JWT_SECRET (or leave it, BELLHOP_JWT_PUBLIC_KEY_FILE and BELLHOP_JWKS_URL unset for a random one)")
	}
	switch cfg.WakeMode {
	case "adaptive", "notify", "poll":
	default:
		return fmt.Errorf("BELLHOP_WAKE_MODE=%q is not one of adaptive (the default), notify, poll", cfg.WakeMode)
	}

	r, err := relay.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := migrations.Up(ctx, r.Pool(), cfg.Schema); err != nil {
		r.Pool().Close()
		return err
	}
	ob, err := outbox.New(cfg.Schema)
	if err != nil {
		r.Pool().Close()
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		r.Pool().Close()
		return fmt.Errorf("demo: listen on %s: %w", *addr, err)
	}
	if err := r.Start(bg); err != nil {
		ln.Close()
		_ = r.Stop(bg)
		return err
	}

	srv := &http.Server{
		Handler:           demopage.Handler(ob, r.Pool(), cfg.JWTSecret, r.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	port := ln.Addr().(*net.TCPAddr).Port
	log.Info("demo serving", "addr", ln.Addr().String(), "schema", cfg.Schema)
	fmt.Fprintf(stdout, "Bellhop demo: open http://localhost:%d/\n", port)

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
