package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/internal/relayproc"
	"github.com/bellhophq/bellhop/migrations"
)

// jwtSecret signs every token the harness mints; the relay gets the same.
const jwtSecret = "bellhop-bench-secret-0123456789abcdef"

// relayProc is one `relay serve` child process (internal/relayproc) on its
// own schema.
type relayProc struct {
	*relayproc.Proc
	schema string
	addr   string // host:port
	mode   string
	pool   *pgxpool.Pool // the harness's pool (for cleanup)
}

var schemaCounter int

// newSchemaName returns a schema name unique to this harness run.
func newSchemaName() string {
	schemaCounter++
	return fmt.Sprintf("bench_%d_%d", os.Getpid(), schemaCounter)
}

func (b *bench) relayEnv(schema, mode string, extra []string) []string {
	env := []string{
		"DATABASE_URL=" + b.dbURL,
		"BELLHOP_SCHEMA=" + schema,
		"BELLHOP_JWT_SECRET=" + jwtSecret,
		"BELLHOP_WAKE_MODE=" + mode,
		"BELLHOP_MAX_STREAMS=100000",
		"BELLHOP_LOG_LEVEL=warn",
	}
	// BENCH_RELAY_ENV: more settings for every relay, space-separated
	// (e.g. BELLHOP_BUSY_POLL=2ms, BELLHOP_PPROF_ADDR=127.0.0.1:6061), to
	// measure a setting's effect.
	env = append(env, strings.Fields(os.Getenv("BENCH_RELAY_ENV"))...)
	return append(env, extra...)
}

// migrateSchema creates a fresh schema with `relay migrate`.
func (b *bench) migrateSchema(ctx context.Context) (string, error) {
	schema := newSchemaName()
	if _, err := b.relayBin.Run(ctx, b.relayEnv(schema, "adaptive", nil), "migrate"); err != nil {
		return "", err
	}
	return schema, nil
}

// startRelay serves schema (fresh when empty) in mode; it returns once
// /readyz answers 200.
func (b *bench) startRelay(ctx context.Context, schema, mode string, extra ...string) (*relayProc, error) {
	if schema == "" {
		var err error
		if schema, err = b.migrateSchema(ctx); err != nil {
			return nil, err
		}
	}
	p, err := relayproc.New(b.relayBin, "relay", b.relayEnv(schema, mode, extra)...)
	if err != nil {
		return nil, err
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return &relayProc{Proc: p, schema: schema, addr: p.Addr, mode: mode, pool: b.pool}, nil
}

// rssKiB is the relay's resident set size.
func (p *relayProc) rssKiB() (int64, error) { return p.RSSKiB() }

// stop ends the relay (SIGTERM, then SIGKILL after 15 s) and drops its
// schema.
func (p *relayProc) stop() {
	_ = p.Stop(15 * time.Second)
	dropSchema(p.pool, p.schema)
}

func dropSchema(pool *pgxpool.Pool, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	// Its writer role and its publication belong to the whole server, or database.
	_, _ = pool.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{migrations.WriterRole(schema)}.Sanitize())
	_, _ = pool.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{schema + "_wake"}.Sanitize())
}

// warnings returns the relay's log lines at warn or above (it logs nothing
// else at BELLHOP_LOG_LEVEL=warn).
func (p *relayProc) warnings() string {
	s := strings.TrimSpace(p.Logs())
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}
