package migrations

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bellhophq/bellhop/internal/sqlq"
)

// writerGrants is writer.sql: plain SQL for the default names, runnable by
// hand. It is not loaded by sqlq because the role is an identifier too.
//
//go:embed writer.sql
var writerGrants string

// writerNames finds the default schema's and role's names in writer.sql.
var writerNames = regexp.MustCompile(`\b(bellhop_writer|bellhop)\b`)

var rolePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// WriterRole is the default writer role of schema: "bellhop_writer" for the
// default schema, "<schema>_writer" for any other, since roles belong to
// the whole cluster and schemas only to one database.
func WriterRole(schema string) string {
	if schema == "" || schema == sqlq.DefaultSchema {
		return "bellhop_writer"
	}
	return schema + "_writer"
}

// CheckRole reports whether name is usable as the writer role: lower-case
// letters, digits and underscores, at most 63 bytes.
func CheckRole(name string) error {
	if !rolePattern.MatchString(name) {
		return fmt.Errorf("writer role %q is not valid: use 1-63 lower-case letters, digits or underscores, not starting with a digit", name)
	}
	return nil
}

// grantWriter creates role if it is missing and grants it what writers
// need in schema. Both are idempotent.
func grantWriter(ctx context.Context, conn *pgx.Conn, schema, role string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: look up role %s: %w", role, err)
	}
	if !exists {
		_, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" NOLOGIN")
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && (pgErr.Code == "42710" || pgErr.Code == "23505"):
			// Created meanwhile by a migration of another schema sharing it.
		case errors.As(err, &pgErr) && pgErr.Code == "42501":
			var user string
			_ = conn.QueryRow(ctx, "SELECT current_user").Scan(&user)
			return fmt.Errorf("migrate: create the writer role %s: %w; either give the migrating user CREATEROLE "+
				"(as a superuser: ALTER ROLE %s CREATEROLE), or create the role beforehand as one "+
				"(CREATE ROLE %s NOLOGIN) and migrate again, or name an existing role (BELLHOP_WRITER_ROLE for relay migrate)",
				role, err, pgx.Identifier{user}.Sanitize(), role)
		case err != nil:
			return fmt.Errorf("migrate: create the writer role %s: %w", role, err)
		}
	}
	sql := writerNames.ReplaceAllStringFunc(writerGrants, func(name string) string {
		if name == "bellhop_writer" {
			return pgx.Identifier{role}.Sanitize()
		}
		return pgx.Identifier{schema}.Sanitize()
	})
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("migrate: grant the writer role %s: %w", role, err)
	}
	return nil
}
