package integration

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/outbox"
)

// writerExample is one program of examples/writers.
type writerExample struct {
	lang string
	// dir is the example's folder; the program runs there.
	dir string
	// run is the interpreter and the program.
	run []string
	// check succeeds when the interpreter and its driver are installed;
	// install says how to install them when it fails.
	check   []string
	install string
}

var writerExamples = []writerExample{
	{
		lang:    "node",
		dir:     "../examples/writers/node",
		run:     []string{"node", "place_order.js"},
		check:   []string{"node", "-e", "require('pg')"},
		install: "install Debian's nodejs and run `npm ci` in examples/writers/node (.ci/run does)",
	},
	{
		lang: "python",
		dir:  "../examples/writers/python",
		// Debian's interpreter, whose driver python3-psycopg2 is, whatever
		// python3 comes first on PATH.
		run:     []string{"/usr/bin/python3", "place_order.py"},
		check:   []string{"/usr/bin/python3", "-c", "import psycopg2"},
		install: "install Debian's python3-psycopg2: apt-get install python3-psycopg2 (.ci/run does)",
	},
	{
		lang:    "php",
		dir:     "../examples/writers/php",
		run:     []string{"php", "place_order.php"},
		check:   []string{"php", "-r", "exit(extension_loaded('pdo_pgsql') ? 0 : 1);"},
		install: "install Debian's php-cli and php-pgsql: apt-get install php-cli php-pgsql (.ci/run does)",
	},
	{
		lang:    "ruby",
		dir:     "../examples/writers/ruby",
		run:     []string{"ruby", "place_order.rb"},
		check:   []string{"ruby", "-e", "require 'pg'"},
		install: "install Debian's ruby and ruby-pg: apt-get install ruby ruby-pg (.ci/run does)",
	},
}

// exampleSetupSQL is the sql block of examples/writers/README.md's Setup,
// for role (and its schema) and writerRole in place of shop and
// bellhop_writer.
func exampleSetupSQL(t *testing.T, role, writerRole string) string {
	t.Helper()
	b, err := os.ReadFile("../examples/writers/README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "\n## Setup\n")
	require.True(t, ok, "examples/writers/README.md has a Setup section")
	m := regexp.MustCompile("(?s)```sql\n(.*?)```").FindStringSubmatch(section)
	require.NotNil(t, m, "the Setup section has an sql block")
	return regexp.MustCompile(`\b(shop|bellhop_writer)\b`).ReplaceAllStringFunc(m[1], func(name string) string {
		if name == "shop" {
			return pgx.Identifier{role}.Sanitize()
		}
		return pgx.Identifier{writerRole}.Sanitize()
	})
}

var (
	placedLine    = regexp.MustCompile(`^order (\d+) placed: notification ([0-9a-f-]{36})\n$`)
	discardedLine = regexp.MustCompile(`^order (\d+) rolled back \(payment declined\): notification ([0-9a-f-]{36}) discarded\n$`)
)

// Issue 12: each example writer, with its language's own driver, runs as a
// login role holding only the writer role (and its orders table). Its
// order and notification, written in one transaction, reach an open
// stream once committed; with --rollback neither is ever seen: the next
// event is a marker sent after the program ended.
func TestExampleWriters(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	r := b.startRelay(t)
	// The languages take turns, to stay within the test's connection slot.
	for i, ex := range writerExamples {
		t.Run(ex.lang, func(t *testing.T) {
			check := exec.Command(ex.check[0], ex.check[1:]...)
			check.Dir = ex.dir
			if out, err := check.CombinedOutput(); err != nil {
				t.Fatalf("the %s writer example cannot run here: %v\n%s\n%s", ex.lang, err, out, ex.install)
			}

			// The README's setup: the app's role, holding only the writer
			// role, and its orders table in a schema of its name.
			role := b.db.Schema + "_" + ex.lang
			shop := pgx.Identifier{role}.Sanitize()
			_, err := b.db.Pool.Exec(ctx, exampleSetupSQL(t, role, b.db.WriterRole()))
			require.NoError(t, err, "the setup in examples/writers/README.md")
			t.Cleanup(func() {
				ctx := context.Background()
				_, err := b.db.Pool.Exec(ctx, "DROP SCHEMA "+shop+" CASCADE")
				require.NoError(t, err)
				_, err = b.db.Pool.Exec(ctx, "DROP OWNED BY "+shop)
				require.NoError(t, err)
				_, err = b.db.Pool.Exec(ctx, "DROP ROLE "+shop)
				require.NoError(t, err)
			})
			var member []string
			require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT array_agg(roleid::regrole::text) FROM pg_auth_members
				WHERE member = $1::regrole`, role).Scan(&member))
			require.Equal(t, []string{b.db.WriterRole()}, member, "the app role holds the writer role only")
			dbURL, err := url.Parse(b.db.URL)
			require.NoError(t, err)
			dbURL.User = url.User(role)

			customer := strconv.Itoa(100 + i)
			to := outbox.User(customer)
			s := openStream(t, r.URL, to, -1)
			run := func(args ...string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, ex.run[0], append(ex.run[1:], args...)...)
				cmd.Dir = ex.dir
				cmd.Env = append(cmd.Environ(), "DATABASE_URL="+dbURL.String(), "BELLHOP_SCHEMA="+b.db.Schema)
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s %v:\n%s", ex.run, args, out)
				return string(out)
			}
			orders := func(title string) (n int) {
				t.Helper()
				require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+shop+".orders WHERE customer_id = $1 AND title = $2",
					customer, title).Scan(&n))
				return n
			}
			notifications := func(id string) (n int) {
				t.Helper()
				require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+b.db.Table("notifications")+" WHERE id = $1",
					id).Scan(&n))
				return n
			}

			// Committed: the order is there and its notification arrives,
			// with the payload the program built.
			out := run(customer, "Blue mug")
			m := placedLine.FindStringSubmatch(out)
			require.NotNil(t, m, "the program's output: %q", out)
			orderID, id := m[1], m[2]
			ev := s.next(t, 5*time.Second)
			require.Equal(t, id, ev.Data.ID)
			require.Equal(t, "created", ev.Data.Op)
			require.Equal(t, "order.placed", ev.Data.Type)
			want, err := json.Marshal(map[string]any{"title": "Order " + orderID + " placed: Blue mug", "orderId": json.Number(orderID)})
			require.NoError(t, err)
			require.JSONEq(t, string(want), string(ev.Data.SSE), "sse")
			var data string
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT data::text FROM "+b.db.Table("notifications")+" WHERE id = $1", id).Scan(&data))
			require.JSONEq(t, string(want), data, "data")
			require.Equal(t, 1, orders("Blue mug"))

			// Rolled back after both writes: neither is there, and the next
			// event is a marker committed after the program ended (events
			// arrive in commit order, so a committed notification would
			// come first).
			out = run("--rollback", customer, "Red mug")
			m = discardedLine.FindStringSubmatch(out)
			require.NotNil(t, m, "the program's output: %q", out)
			discarded := m[2]
			marker := b.send(t, to, "marker")
			ev = s.next(t, 5*time.Second)
			require.Equal(t, marker, ev.Data.ID, "the next event is the marker, not the rolled-back notification %s", discarded)
			require.Zero(t, orders("Red mug"), "the rolled-back order")
			require.Zero(t, notifications(discarded), "the rolled-back notification")
		})
	}
}
