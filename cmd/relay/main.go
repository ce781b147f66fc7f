// Command relay is Bellhop's sidecar: it relays committed notifications to
// browsers over SSE and serves the inbox API.
//
//	relay migrate   apply Bellhop's schema and River's
//	relay serve     run the relay
//	relay token     mint a token for local testing
//	relay send      write one notification in its own transaction
//	relay demo      run everything with a demo page
//	relay healthcheck  exit 0 when a running relay's /healthz answers
//	relay version   print the version
//
// Configuration comes from the environment; see the README.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-envconfig"

	"github.com/bellhophq/bellhop/fanout"
	"github.com/bellhophq/bellhop/migrations"
	"github.com/bellhophq/bellhop/outbox"
	"github.com/bellhophq/bellhop/relay"
	demopage "github.com/bellhophq/bellhop/relay/demo"
	"github.com/bellhophq/bellhop/worker"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: relay <command> [flags]

commands:
  serve     run the relay (SSE hub, inbox API, River workers)
  migrate   apply Bellhop's schema and River's to DATABASE_URL
  token     mint a JWT for local testing: --to, --tenant, --notifiable-type, --ttl
  send      write one notification in its own transaction
  demo      run a demo: Postgres, the relay and a page with a live bell, on
            127.0.0.1:8080 with its own secret and schema: --addr, --schema
  healthcheck
            exit 0 when a running relay's /healthz answers 200, within 2s
            (the container image's health check): --url, --timeout; the
            address is BELLHOP_OPS_ADDR, else BELLHOP_LISTEN_ADDR
  version   print the version

relay <command> -h prints a command's usage and flags.

Configuration is read from the environment (DATABASE_URL, BELLHOP_*, and
OTEL_* for tracing); see the README.`

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
	err := command(ctx, args[0], args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h: the command printed its usage
	}
	return err
}

func command(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, stdout)
	case "token":
		return token(ctx, args, stdout)
	case "send":
		return send(ctx, args, stdout)
	case "demo":
		return demo(ctx, args, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args, stdout, stderr)
	case "version":
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		if err := parseFlags(fs, args, stdout, "version", "print the version."); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "bellhop relay", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// parseFlags parses a command's arguments. -h prints the command's usage
// (synopsis, what it does, its flags) to stdout and returns flag.ErrHelp,
// which run turns into success. An unknown flag or an argument beyond the
// flags is an error that gives the usage: serve and migrate would
// otherwise run whatever followed them, and token or send drop a value
// whose flag was mistyped.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, synopsis, about string) error {
	// The flag package prints its errors and the usage itself; the error
	// returned says it all, once.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "usage: relay %s\n\n%s\n", synopsis, about)
		if hasFlags(fs) {
			fmt.Fprintln(stdout, "\nflags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return err
	case err != nil:
		return fmt.Errorf("%s: %w (usage: relay %s; relay %s -h for more)", fs.Name(), err, synopsis, fs.Name())
	case fs.NArg() > 0:
		return fmt.Errorf("%s: unexpected arguments %q (usage: relay %s; relay %s -h for more)", fs.Name(), fs.Args(), synopsis, fs.Name())
	}
	return nil
}

func hasFlags(fs *flag.FlagSet) (has bool) {
	fs.VisitAll(func(*flag.Flag) { has = true })
	return has
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

// serve assembles the relay by hand, as an application embedding it
// would: one pool, the relay's hub and API on it, and the worker that
// stamps committed rows, handing them to the relay's hub (worker.Pusher).
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout, "serve",
		"run the relay: the SSE hub, the inbox API and the River workers. It takes no flags: its\n"+
			"configuration is read from the environment (DATABASE_URL, BELLHOP_*, OTEL_*; see the README)."); err != nil {
		return err
	}
	env, err := loadConfig(ctx)
	if err != nil {
		return err
	}
	// The addresses before the database: a taken or mistyped one fails at
	// once, naming its variable and the fix. (Should another process take
	// one in the moment between, relay.ListenAndServe, which binds before
	// it starts anything, fails naming it too.)
	if err := checkListen(env.ListenAddr, "BELLHOP_LISTEN_ADDR"); err != nil {
		return err
	}
	if env.OpsAddr != "" {
		if err := checkListen(env.OpsAddr, "BELLHOP_OPS_ADDR"); err != nil {
			return err
		}
	}
	log := newLogger(stderr)
	pcfg, err := pgxpool.ParseConfig(env.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL: %w", err)
	}
	pcfg.MaxConns = env.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer pool.Close()

	tp, stopTracing, err := setupTracing(ctx, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := stopTracing(ctx); err != nil {
			log.Warn("flush the last spans", "err", err)
		}
	}()

	cfg := env.relayConfig()
	cfg.Pool, cfg.NoWorker, cfg.TracerProvider = pool, true, tp
	if env.Fanout != "" {
		prefix := env.FanoutPrefix
		if prefix == "" {
			if prefix, err = fanoutPrefix(ctx, pool, env.Schema); err != nil {
				if isConnectError(err) {
					return dbError(err, env.Schema)
				}
				return fmt.Errorf("BELLHOP_FANOUT: name this deployment's subjects with BELLHOP_FANOUT_PREFIX: %w", err)
			}
		}
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := fanout.Open(octx, env.Fanout, prefix)
		cancel()
		if err != nil {
			return fmt.Errorf("BELLHOP_FANOUT: %w", err)
		}
		defer b.Close()
		cfg.Fanout = b
		log.Info("fan-out through a broker", "prefix", prefix)
	}
	r, err := relay.New(ctx, cfg, log)
	if err != nil {
		return envError(dbError(err, env.Schema))
	}
	wcfg := cfg.Worker
	wcfg.Logger, wcfg.Pusher, wcfg.Registerer, wcfg.TracerProvider = log, r, r.Registry(), tp
	wcfg.Fanout = cfg.Fanout
	w, err := worker.New(pool, wcfg)
	if err != nil {
		return envError(err)
	}
	r.Attach(w)

	if env.PprofAddr != "" {
		srv := &http.Server{Addr: env.PprofAddr, Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("pprof server", "addr", env.PprofAddr, "err", err)
			}
		}()
		defer srv.Close()
	}
	return envError(dbError(r.ListenAndServe(ctx), env.Schema))
}

// checkListen listens on addr and closes at once: it reports, naming the
// variable and the fix, an address the relay could not listen on.
func checkListen(addr, variable string) error {
	ln, err := demopage.Listen(addr, variable)
	if err != nil {
		return err
	}
	return ln.Close()
}

// dbError names the fix for the database errors an operator meets first: a
// database the relay cannot reach, and a schema `relay migrate` has not
// made or brought up to date (no such schema, table, column or function).
// Other errors pass as they are.
func dbError(err error, schema string) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case isConnectError(err):
		return fmt.Errorf("cannot connect to DATABASE_URL's database; check the URL, and that PostgreSQL runs there and lets its user in: %w", err)
	case errors.As(err, &pgErr) && slices.Contains([]string{"42P01", "3F000", "42703", "42883"}, pgErr.Code):
		// undefined_table, invalid_schema_name, undefined_column,
		// undefined_function: a schema from before this binary's migrations.
		return fmt.Errorf("schema %q is not migrated, or not up to date: run `relay migrate` with the same DATABASE_URL and BELLHOP_SCHEMA=%s: %w", schema, schema, err)
	}
	return err
}

func isConnectError(err error) bool {
	var connErr *pgconn.ConnectError
	return errors.As(err, &connErr)
}

// fanoutPrefix is BELLHOP_FANOUT_PREFIX's default: "bellhop", the
// database cluster's system identifier (new on every initdb, kept by its
// standbys), the database's oid and the schema. Every replica of a
// deployment agrees on it; two deployments sharing a broker never do, not
// even a copy restored from the other's dump, so neither can take the
// other's batches for its own.
func fanoutPrefix(ctx context.Context, pool *pgxpool.Pool, schema string) (string, error) {
	var sysid, dboid string
	err := pool.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_control_system())::text,
		(SELECT oid FROM pg_database WHERE datname = current_database())::text`).Scan(&sysid, &dboid)
	if err != nil {
		return "", fmt.Errorf("read the database's identity: %w", err)
	}
	return "bellhop." + sysid + "." + dboid + "." + schema, nil
}

func connect(ctx context.Context) (*pgxpool.Pool, envConfig, error) {
	cfg, err := loadConfig(ctx)
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

func migrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout, "migrate",
		"apply Bellhop's schema and River's to DATABASE_URL's database, in BELLHOP_SCHEMA, and create\n"+
			"the writer role (BELLHOP_WRITER_ROLE) if it is missing; running it again is a no-op. It takes\n"+
			"no flags: its configuration is read from the environment (see the README)."); err != nil {
		return err
	}
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
		return dbError(err, cfg.Schema)
	}
	fmt.Fprintf(stdout, "schema %q is up to date; writers need: GRANT %s TO your_app_role;\n", cfg.Schema, mc.WriterRole)
	return nil
}

func token(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	to := fs.String("to", "", "the recipient's id (required)")
	tenant := fs.String("tenant", "", "the recipient's tenant")
	typ := fs.String("notifiable-type", "User", "the recipient's type")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	// Deprecated spellings, kept working: send names the recipient --to and
	// --notifiable-type, and its --type is the notification's type.
	fs.StringVar(to, "sub", "", "deprecated: use --to")
	fs.StringVar(typ, "type", "User", "deprecated: use --notifiable-type")
	if err := parseFlags(fs, args, stdout, "token --to ID [--tenant T] [--notifiable-type User] [--ttl 1h]",
		"print a JWT for the recipient, signed with BELLHOP_JWT_SECRET, for local testing."); err != nil {
		return err
	}
	if *to == "" {
		return errors.New("token: --to is required, e.g. relay token --to 42")
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
	t, err := relay.Mint(secret, outbox.Recipient{Tenant: *tenant, Type: *typ, ID: *to}, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, t)
	return nil
}

func send(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	to := fs.String("to", "", "the recipient's id (required)")
	tenant := fs.String("tenant", "", "the recipient's tenant")
	typ := fs.String("notifiable-type", "User", "the recipient's type")
	kind := fs.String("type", "", "the notification type, e.g. invoice.paid (required)")
	data := fs.String("data", "{}", "the inbox payload, a JSON object")
	sse := fs.String("sse", "", "the live payload, a JSON object (optional)")
	key := fs.String("key", "", "a database key: update the recipient's row with this key in place")
	if err := parseFlags(fs, args, stdout, "send --to ID --type TYPE [--data JSON] [--sse JSON] [--key KEY] [--tenant T] [--notifiable-type User]",
		"write one notification in its own transaction, to DATABASE_URL's database and BELLHOP_SCHEMA,\n"+
			"and print its id."); err != nil {
		return err
	}
	if *to == "" || *kind == "" {
		return errors.New("send: --to and --type are required, e.g. relay send --to 42 --type invoice.paid --data '{\"amount\":12}'")
	}
	if err := checkJSON("--data", *data); err != nil {
		return err
	}
	if *sse != "" {
		if err := checkJSON("--sse", *sse); err != nil {
			return err
		}
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
		return dbError(err, cfg.Schema)
	}
	fmt.Fprintln(stdout, id)
	return nil
}

// checkJSON reports a flag's value that is not JSON. The outbox would too,
// but through encoding/json's "error calling MarshalJSON for type
// main.rawJSON", which names neither the flag nor the fix.
func checkJSON(name, value string) error {
	if json.Valid([]byte(value)) {
		return nil
	}
	var v any
	err := json.Unmarshal([]byte(value), &v)
	return fmt.Errorf("send: %s is not valid JSON: %q (%v); write a JSON object in single quotes, e.g. %s '{\"amount\":12}'", name, value, err, name)
}

// rawJSON passes a flag's JSON through as is: send has checked it is JSON
// (checkJSON), and the outbox's validation says, naming the field, when it
// is not an object.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) {
	s := strings.TrimSpace(string(r))
	return []byte(s), nil
}
