// Package migrations applies Bellhop's schema, and River's, to a database.
//
// The SQL lives in sql/*.sql as plain goose files with unqualified names; Up
// runs them with search_path set to the configured schema. Users with their
// own migration tool can apply the same files after
// "CREATE SCHEMA bellhop; SET search_path TO bellhop;", then River's with
// "river migrate-up --schema bellhop".
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/bellhophq/bellhop/internal/sqlq"
)

//go:embed sql/*.sql
var files embed.FS

// FS holds the schema's migration files, for use with another tool.
func FS() fs.FS {
	sub, _ := fs.Sub(files, "sql")
	return sub
}

// lockNamespace is the first key of the advisory lock that serializes
// migrations; the second is the schema's hash, so two schemas migrate in
// parallel while two processes on one schema take turns.
const lockNamespace = 0x6265_6c6c // "bell"

// Options configures UpWithOptions.
type Options struct {
	// Schema is where Bellhop's and River's tables live, such as "bellhop".
	Schema string
	// WriterRole is the NOLOGIN role that holds what every documented write
	// needs; "" means WriterRole(Schema).
	WriterRole string
}

// Up creates schema if needed and applies every pending migration of
// Bellhop and of River to it, then creates the schema's writer role
// (WriterRole(schema)) if it is missing and grants it what writers need.
// Applying twice is a no-op; processes that run it at the same time take
// turns on an advisory lock.
func Up(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	return UpWithOptions(ctx, pool, Options{Schema: schema})
}

// UpWithOptions is Up with a writer role of the caller's choosing.
func UpWithOptions(ctx context.Context, pool *pgxpool.Pool, opts Options) error {
	schema := opts.Schema
	if err := sqlq.CheckSchema(schema); err != nil {
		return err
	}
	role := opts.WriterRole
	if role == "" {
		role = WriterRole(schema)
	}
	if err := CheckRole(role); err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", lockNamespace, schema); err != nil {
		return fmt.Errorf("migrate: take lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be cancelled, and a lock left
		// behind would block every later migration on this connection's pool.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext($2))", lockNamespace, schema)
	}()

	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("migrate: create schema %s: %w", schema, err)
	}
	if err := gooseUp(ctx, pool, schema); err != nil {
		return err
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema})
	if err != nil {
		return fmt.Errorf("migrate: river: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate: river: %w", err)
	}
	return grantWriter(ctx, conn.Conn(), schema, role)
}

func gooseUp(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	cfg := pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	db.SetMaxOpenConns(1)

	provider, err := goose.NewProvider(goose.DialectPostgres, db, FS(), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate: bellhop schema: %w", err)
	}
	return nil
}
