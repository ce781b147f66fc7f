// Command relay is Bellhop's sidecar: it relays committed notifications to
// browsers over SSE and serves the inbox API.
//
//	relay migrate   apply Bellhop's schema and River's
//	relay serve     run the relay
//	relay token     mint a token for local testing
//	relay send      write one notification in its own transaction
//	relay demo      run everything with a demo page
//	relay version   print the version
//
// Configuration comes from the environment; see the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-envconfig"

	"github.com/bellhophq/bellhop/internal/sqlq"
	"github.com/bellhophq/bellhop/migrations"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: relay <command> [flags]

commands:
  serve     run the relay (SSE hub, inbox API, River workers)
  migrate   apply Bellhop's schema and River's to DATABASE_URL
  token     mint a JWT for local testing: --sub, --tenant, --type, --ttl
  send      write one notification in its own transaction
  demo      run a demo: Postgres, the relay and a page with a live bell, on
            127.0.0.1:8080 with its own secret and schema: --addr, --schema
  version   print the version

Configuration is read from the environment (DATABASE_URL, BELLHOP_*); see the README.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, stderr)
	case "migrate":
		return migrate(ctx, stdout)
	case "token":
		return token(ctx, args, stdout)
	case "send":
		return send(ctx, args, stdout)
	case "demo":
		return demo(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "bellhop relay", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// loadConfig reads the environment into a relay.Config and checks what
// every command needs.
func loadConfig(ctx context.Context, stderr io.Writer) (relay.Config, error) {
	var cfg relay.Config
	if err := readEnv(ctx, &cfg); err != nil {
		return cfg, err
	}
	if cfg.DatabaseURL == "" {
		return cfg, errors.New("DATABASE_URL is not set: export DATABASE_URL=postgres://user:pass@host:5432/db")
	}
	if err := sqlq.CheckSchema(cfg.Schema); err != nil {
		return cfg, fmt.Errorf("BELLHOP_SCHEMA: %w", err)
	}
	switch cfg.WakeMode {
	case "adaptive", "notify", "poll":
	default:
		return cfg, fmt.Errorf("BELLHOP_WAKE_MODE=%q is not one of adaptive (the default), notify, poll", cfg.WakeMode)
	}
	if cfg.JWTMaxLifetime <= 0 {
		return cfg, fmt.Errorf("BELLHOP_JWT_MAX_LIFETIME=%s must be positive, e.g. 1h (the default is 24h)", cfg.JWTMaxLifetime)
	}
	return cfg, nil
}

// readEnv is envconfig.Process with errors that name the variable, not the
// Go field envconfig names ("Heartbeat: time: invalid duration").
func readEnv(ctx context.Context, cfg *relay.Config) error {
	err := envconfig.Process(ctx, cfg)
	if err == nil {
		return nil
	}
	t := reflect.TypeOf(*cfg)
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		rest, ok := strings.CutPrefix(err.Error(), f.Name+": ")
		if !ok || name == "" {
			continue
		}
		hint := ""
		switch f.Type {
		case reflect.TypeOf(time.Duration(0)):
			hint = " (want a duration such as 500ms, 25s or 1h)"
		case reflect.TypeOf(0), reflect.TypeOf(int32(0)), reflect.TypeOf(int64(0)):
			hint = " (want an integer)"
		}
		return fmt.Errorf("configuration: %s: %s%s", name, rest, hint)
	}
	return fmt.Errorf("configuration: %w", err)
}

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(os.Getenv("BELLHOP_LOG_LEVEL"))); err != nil && os.Getenv("BELLHOP_LOG_LEVEL") != "" {
		fmt.Fprintf(w, "relay: BELLHOP_LOG_LEVEL=%q is not debug, info, warn or error; using info\n", os.Getenv("BELLHOP_LOG_LEVEL"))
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if os.Getenv("BELLHOP_LOG_FORMAT") == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, stderr io.Writer) error {
	cfg, err := loadConfig(ctx, stderr)
	if err != nil {
		return err
	}
	r, err := relay.New(ctx, cfg, newLogger(stderr))
	if err != nil {
		return err
	}
	return r.ListenAndServe(ctx)
}

func connect(ctx context.Context) (*pgxpool.Pool, relay.Config, error) {
	cfg, err := loadConfig(ctx, io.Discard)
	if err != nil {
		return nil, cfg, err
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, cfg, fmt.Errorf("DATABASE_URL: %w", err)
	}
	return pool, cfg, nil
}

// migrateConfig is what only migrate reads, beside relay.Config.
type migrateConfig struct {
	// WriterRole is the role writers are granted; "" means
	// migrations.WriterRole(BELLHOP_SCHEMA).
	WriterRole string `env:"BELLHOP_WRITER_ROLE"`
}

func migrate(ctx context.Context, stdout io.Writer) error {
	var mc migrateConfig
	if err := envconfig.Process(ctx, &mc); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if mc.WriterRole != "" {
		if err := migrations.CheckRole(mc.WriterRole); err != nil {
			return fmt.Errorf("BELLHOP_WRITER_ROLE: %w", err)
		}
	}
	pool, cfg, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if mc.WriterRole == "" {
		mc.WriterRole = migrations.WriterRole(cfg.Schema)
	}
	if err := migrations.UpWithOptions(ctx, pool, migrations.Options{Schema: cfg.Schema, WriterRole: mc.WriterRole}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema %q is up to date; writers need: GRANT %s TO your_app_role;\n", cfg.Schema, mc.WriterRole)
	return nil
}

func token(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	sub := fs.String("sub", "", "the notifiable id (required)")
	tenant := fs.String("tenant", "", "the tenant")
	typ := fs.String("type", "User", "the notifiable type")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *sub == "" {
		return errors.New("token: --sub is required, e.g. relay token --sub 42")
	}
	secret := os.Getenv("BELLHOP_JWT_SECRET")
	if len(secret) < relay.MinSecretBytes {
		return fmt.Errorf("token: BELLHOP_JWT_SECRET must be set to at least %d bytes (e.g. export BELLHOP_JWT_SECRET=$(openssl rand -base64 32))", relay.MinSecretBytes)
	}
	// A token the relay would refuse is no use to anyone.
	maxLife := relay.DefaultJWTMaxLifetime
	if v := os.Getenv("BELLHOP_JWT_MAX_LIFETIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("token: BELLHOP_JWT_MAX_LIFETIME=%q is not a positive duration such as 1h", v)
		}
		maxLife = d
	}
	if *ttl <= 0 || *ttl > maxLife {
		return fmt.Errorf("token: --ttl %s must be positive and at most BELLHOP_JWT_MAX_LIFETIME (%s), or the relay refuses the token", *ttl, maxLife)
	}
	t, err := relay.Mint(secret, outbox.Recipient{Tenant: *tenant, Type: *typ, ID: *sub}, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, t)
	return nil
}

func send(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	to := fs.String("to", "", "the notifiable id (required)")
	tenant := fs.String("tenant", "", "the tenant")
	typ := fs.String("notifiable-type", "User", "the notifiable type")
	kind := fs.String("type", "", "the notification type, e.g. invoice.paid (required)")
	data := fs.String("data", "{}", "the inbox payload, a JSON object")
	sse := fs.String("sse", "", "the live payload, a JSON object (optional)")
	key := fs.String("key", "", "a database key: update the recipient's row with this key in place")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" || *kind == "" {
		return errors.New("send: --to and --type are required, e.g. relay send --to 42 --type invoice.paid --data '{\"amount\":12}'")
	}
	msg := outbox.Message{Kind: *kind, Data: rawJSON(*data), Key: *key}
	if *sse != "" {
		msg.SSE = rawJSON(*sse)
	}
	pool, cfg, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	ob, err := outbox.New(outbox.Config{Schema: cfg.Schema})
	if err != nil {
		return err
	}
	id, err := ob.Send(ctx, pool, outbox.Recipient{Tenant: *tenant, Type: *typ, ID: *to}, msg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

// rawJSON passes a flag's JSON through as is; invalid JSON is reported by
// the outbox's validation, naming the field.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) {
	s := strings.TrimSpace(string(r))
	return []byte(s), nil
}
