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
	"reflect"
	"regexp"
	"strings"
	"sync"

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

// ListenerLock is the first key of the advisory lock that every process
// listening on a schema's relayed channel holds, shared, on its LISTEN
// connection for as long as that lives (the second key is hashtext of the
// schema). A stamp NOTIFYs the relayed channel only while a process other
// than its own holds it: a lone relay pushes its own stamps without one.
const ListenerLock = 0x6c69_7374 // "list"

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

// ScanStruct reads row into a T by column name: each column goes to the
// field whose db tag names it, following fields tagged db:",inline" into
// nested structs (pgx.RowToStructByName follows only embedded ones). A
// column no field names is an error; a field no column names stays zero.
func ScanStruct[T any](row pgx.CollectableRow) (T, error) {
	var v T
	rv := reflect.ValueOf(&v).Elem()
	fields := columnsOf(rv.Type())
	fds := row.FieldDescriptions()
	dest := make([]any, len(fds))
	for i, fd := range fds {
		path, ok := fields[fd.Name]
		if !ok {
			return v, fmt.Errorf("scan %s: no field for column %q", rv.Type(), fd.Name)
		}
		dest[i] = rv.FieldByIndex(path).Addr().Interface()
	}
	return v, row.Scan(dest...)
}

var columnCache sync.Map // reflect.Type -> map[string][]int

// columnsOf maps the column names of t's db tags to field index paths.
func columnsOf(t reflect.Type) map[string][]int {
	if m, ok := columnCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, ok := f.Tag.Lookup("db")
			if !ok || tag == "-" || !f.IsExported() {
				continue
			}
			path := append(append([]int(nil), prefix...), i)
			name, opt, _ := strings.Cut(tag, ",")
			if opt == "inline" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, path)
				continue
			}
			m[name] = path
		}
	}
	walk(t, nil)
	columnCache.Store(t, m)
	return m
}
