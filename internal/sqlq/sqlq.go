// Package sqlq loads Bellhop's named queries from embedded .sql files and
// points them at the configured schema.
//
// Queries are written against the default schema, as "bellhop.notifications";
// Load rewrites every "bellhop." to the quoted schema name. The schema is a
// runtime setting, which is why the queries are not compiled by sqlc: it
// cannot parameterize an identifier.
package sqlq

import (
	"bufio"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultSchema is the schema Bellhop's objects live in unless configured.
const DefaultSchema = "bellhop"

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// CheckSchema reports whether name is usable as Bellhop's schema: lower-case
// letters, digits and underscores, at most 48 bytes, so that it and the
// channel names built from it ("<schema>_pending") stay valid identifiers.
func CheckSchema(name string) error {
	if !schemaPattern.MatchString(name) {
		return fmt.Errorf("schema %q is not valid: use 1-48 lower-case letters, digits or underscores, not starting with a digit", name)
	}
	return nil
}

// Channel is the LISTEN/NOTIFY channel of schema for the given purpose
// ("pending" or "relayed").
func Channel(schema, purpose string) string { return schema + "_" + purpose }

// Set is a set of named queries.
type Set struct {
	queries map[string]string
	missing []string
}

// defaultPrefix finds the default schema's qualifier outside string
// literals ('bellhop.quiet' is a setting's name, not a table's).
var defaultPrefix = regexp.MustCompile(`(^|[^'\w])bellhop\.`)

// Load reads every sql/*.sql file in fsys (a package's embedded sql
// folder). A query starts at a line "-- name: Name" and runs to the next
// such line.
func Load(fsys fs.FS, schema string) (*Set, error) {
	if err := CheckSchema(schema); err != nil {
		return nil, err
	}
	prefix := pgx.Identifier{schema}.Sanitize() + "."
	files, err := fs.Glob(fsys, "sql/*.sql")
	if err != nil {
		return nil, err
	}
	set := &Set{queries: map[string]string{}}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		var name string
		var body strings.Builder
		flush := func() {
			if name != "" {
				set.queries[name] = defaultPrefix.ReplaceAllString(strings.TrimSpace(body.String()), "${1}"+strings.ReplaceAll(prefix, "$", "$$"))
			}
			body.Reset()
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "-- name: "); ok {
				flush()
				name = strings.TrimSpace(n)
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
		}
		flush()
	}
	return set, nil
}

// Get returns the named query. A missing name is remembered and reported by
// Err, so a constructor can fetch all its queries and check once.
func (s *Set) Get(name string) string {
	q, ok := s.queries[name]
	if !ok {
		s.missing = append(s.missing, name)
	}
	return q
}

// Err reports the names Get did not find.
func (s *Set) Err() error {
	if len(s.missing) > 0 {
		return fmt.Errorf("sqlq: queries not found: %s", strings.Join(s.missing, ", "))
	}
	return nil
}
