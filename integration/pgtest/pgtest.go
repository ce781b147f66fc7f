// Package pgtest gives each test its own migrated Bellhop schema on a real
// PostgreSQL server, so tests run in parallel against one server. The server
// comes from internal/pgserver with its container finder (pgcontainer):
// TEST_DATABASE_URL or DATABASE_URL, else testcontainers-go, else local
// PostgreSQL binaries. A test that cannot get
// one fails, saying how to provide one; it never skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/internal/pgserver"
	"github.com/bellhophq/bellhop/internal/pgserver/pgcontainer"
	"github.com/bellhophq/bellhop/migrations"
)

var (
	once     sync.Once
	server   *pgserver.Server
	startErr error
	nSlots   int
	mainRan  bool

	slotMu  sync.Mutex
	holders = map[string]bool{} // names of the tests holding a slot
)

const (
	// SlotConns is what one test may use at once: its schema's pool (8),
	// a relay (6 and its listener) or a relay process or two.
	SlotConns = 20
	// otherClients is room left for connections that are not the tests'.
	otherClients = 10
	// slotLockClass is the first key of the slots' advisory locks ("bhts").
	slotLockClass = 0x62687473
)

// Main runs a package's tests, then the package's own cleanups (what its
// tests shared: a built binary, say), and stops any server this package
// started. Use it from TestMain.
func Main(m *testing.M, cleanups ...func()) {
	mainRan = true
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if server != nil {
		_ = server.Stop()
	}
	os.Exit(code)
}

// URL returns the URL of the shared test server, starting it on first use.
func URL(tb testing.TB) string {
	tb.Helper()
	url, err := serverURL()
	if err != nil {
		tb.Fatal(err)
	}
	return url
}

func serverURL() (string, error) {
	if !mainRan {
		// Without Main a server this package started would outlive the run.
		return "", errors.New("pgtest: the package's tests must run through pgtest.Main, which stops the server they share: " +
			"add func TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		server, startErr = pgcontainer.Start(ctx)
		if startErr == nil {
			nSlots, startErr = countSlots(ctx, server.URL)
		}
	})
	if startErr != nil {
		return "", startErr
	}
	return server.URL, nil
}

// DB is one test's schema.
type DB struct {
	// Pool connects to the server; its connections do not set search_path, as
	// an application's would not.
	Pool *pgxpool.Pool
	// Schema is the test's own Bellhop schema, migrated.
	Schema string
	// URL is the server's URL, for processes the test starts.
	URL string
}

// New creates and migrates a fresh schema for tb, dropped when tb ends. It
// first waits for one of the server's slots (see the package comment),
// which tb holds until it ends.
func New(tb testing.TB) *DB {
	tb.Helper()
	url := URL(tb)
	takeSlot(tb, url)
	return NewOn(tb, url)
}

// countSlots says how many tests the server at url can hold at once.
func countSlots(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("connect to the test server: %w", err)
	}
	defer conn.Close(ctx)
	var maxConns, reserved int
	err = conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('superuser_reserved_connections')::int`).Scan(&maxConns, &reserved)
	if err != nil {
		return 0, fmt.Errorf("read the test server's max_connections: %w", err)
	}
	// Connections in use now are not subtracted: most of them are other
	// test packages', which hold slots of their own.
	n := (maxConns - reserved - otherClients) / SlotConns
	if n < 1 {
		return 0, fmt.Errorf("the test server is too small: max_connections = %d (%d reserved for superusers); "+
			"the tests need %d or more: raise max_connections, or unset TEST_DATABASE_URL and DATABASE_URL "+
			"to let the tests start a server of their own", maxConns, reserved, reserved+otherClients+SlotConns)
	}
	return n, nil
}

// takeSlot waits for a free slot and holds it, on a connection of its own,
// until tb ends. A test inside one that holds a slot uses its parent's.
func takeSlot(tb testing.TB, url string) {
	tb.Helper()
	name := tb.Name()
	slotMu.Lock()
	for n := name; ; {
		if holders[n] {
			slotMu.Unlock()
			return
		}
		i := strings.LastIndex(n, "/")
		if i < 0 {
			break
		}
		n = n[:i]
	}
	holders[name] = true
	slotMu.Unlock()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect to the test server: %v", err)
	}
	tb.Cleanup(func() {
		conn.Close(context.Background())
		slotMu.Lock()
		delete(holders, name)
		slotMu.Unlock()
	})
	deadline := time.Now().Add(10 * time.Minute)
	for {
		for i := range nSlots {
			var ok bool
			if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", slotLockClass, i).Scan(&ok); err != nil {
				tb.Fatalf("take a test slot: %v", err)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no free test slot (of %d) in 10 minutes", nSlots)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// NewServer starts a PostgreSQL cluster of tb's own from local binaries,
// whatever TEST_DATABASE_URL says, and stops it when tb ends: a server a
// fault drill may restart (Server.Restart) without disturbing other tests,
// or one with settings of its own ("wal_level=logical").
// Get a schema on it with NewOn(tb, srv.URL).
func NewServer(tb testing.TB, settings ...string) *pgserver.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgserver.StartLocal(ctx, settings...)
	if err != nil {
		tb.Fatalf("start a local PostgreSQL cluster (needs initdb and pg_ctl on PATH or under /usr/lib/postgresql/*/bin): %v", err)
	}
	tb.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			tb.Errorf("stop local cluster: %v", err)
		}
	})
	return srv
}

// NewOn is New on the server at url (such as one from NewServer).
func NewOn(tb testing.TB, url string) *DB {
	tb.Helper()
	db, err := openURL(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// Open is New for code without a testing.TB, such as runnable examples.
// Close drops the schema.
func Open(ctx context.Context) (*DB, error) {
	url, err := serverURL()
	if err != nil {
		return nil, err
	}
	return openURL(ctx, url)
}

func openURL(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse test database URL: %w", err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to test database: %w", err)
	}
	schema := "t_" + randomHex(6)
	if err := migrations.Up(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate %s: %w", schema, err)
	}
	return &DB{Pool: pool, Schema: schema, URL: url}, nil
}

// Close drops db's schema, its publication and its writer role, and closes
// its pool.
func (db *DB) Close() error {
	err := DropSchema(context.Background(), db.Pool, db.Schema)
	db.Pool.Close()
	return err
}

// DropSchema drops schema and what its migrations made outside it: its
// publication (the database's) and its writer role (the server's, which
// outlives the test). The schema must exist; the other two need not.
//
// A relay process a test has just killed may leave a backend that has not
// yet seen its client go, midway through a stamp: DROP SCHEMA CASCADE,
// locking the schema's tables one by one, can deadlock with it, and
// PostgreSQL may cancel the drop. Such a drop is tried again.
func DropSchema(ctx context.Context, db interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}, schema string) error {
	for _, q := range []string{
		"DROP SCHEMA " + pgx.Identifier{schema}.Sanitize() + " CASCADE",
		// Publications belong to the database (migration 00010).
		"DROP PUBLICATION IF EXISTS " + pgx.Identifier{schema + "_wake"}.Sanitize(),
		"DROP ROLE IF EXISTS " + pgx.Identifier{migrations.WriterRole(schema)}.Sanitize(),
	} {
		for attempt := 1; ; attempt++ {
			_, err := db.Exec(ctx, q)
			var pgErr *pgconn.PgError
			if err != nil && errors.As(err, &pgErr) && pgErr.Code == "40P01" && attempt < 5 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if err != nil {
				return fmt.Errorf("drop schema %s: %s: %w", schema, q, err)
			}
			break
		}
	}
	return nil
}

// WriterRole is the name of db's writer role (see migrations.WriterRole).
func (db *DB) WriterRole() string { return migrations.WriterRole(db.Schema) }

// Table returns the schema-qualified, quoted name of a table in db's schema.
func (db *DB) Table(name string) string {
	return pgx.Identifier{db.Schema, name}.Sanitize()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("random: %v", err))
	}
	return hex.EncodeToString(b)
}
