package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/internal/syncbuf"
	"github.com/bellhophq/bellhop/relay"
	demopage "github.com/bellhophq/bellhop/relay/demo"
)

// These tests set the process environment (t.Setenv), so none of them runs
// in parallel.

func TestMain(m *testing.M) { pgtest.Main(m) }

const testSecret = "main-test-secret-0123456789abcdef0123"

// configVars are every variable the commands read; each test starts from
// none of them set, whatever the environment of `go test` holds.
var configVars = []string{
	"DATABASE_URL", "BELLHOP_LISTEN_ADDR", "BELLHOP_SCHEMA", "BELLHOP_JWT_SECRET",
	"BELLHOP_JWT_PUBLIC_KEY_FILE", "BELLHOP_JWT_ISSUER", "BELLHOP_JWT_AUDIENCE",
	"BELLHOP_COOKIE_NAME", "BELLHOP_ALLOWED_ORIGINS", "BELLHOP_HEARTBEAT",
	"BELLHOP_RETRY_HINT", "BELLHOP_STREAM_BUFFER", "BELLHOP_WRITE_TIMEOUT",
	"BELLHOP_MAX_STREAMS", "BELLHOP_MAX_STREAMS_PER_RECIPIENT", "BELLHOP_UNREAD_COUNT_CAP",
	"BELLHOP_REQUEST_TIMEOUT", "BELLHOP_WAKE_MODE", "BELLHOP_POLL_INTERVAL",
	"BELLHOP_SWEEP_INTERVAL", "BELLHOP_RETENTION", "BELLHOP_REPLAY_WINDOW",
	"BELLHOP_PRUNE_INTERVAL", "BELLHOP_DB_MAX_CONNS", "BELLHOP_LOG_LEVEL", "BELLHOP_LOG_FORMAT",
	"BELLHOP_WRITER_ROLE",
	"BELLHOP_JWKS_URL", "BELLHOP_JWT_MAX_LIFETIME", "BELLHOP_OPS_ADDR", "BELLHOP_PPROF_ADDR",
	"BELLHOP_TLS_CERT_FILE", "BELLHOP_TLS_KEY_FILE",
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
}

// cleanEnv unsets every configuration variable for the rest of t (restored
// afterwards) and returns the test database's URL.
func cleanEnv(t *testing.T) string {
	t.Helper()
	url := pgtest.URL(t) // before DATABASE_URL is unset: it may come from there
	for _, k := range configVars {
		t.Setenv(k, "") // registers the restore
		require.NoError(t, os.Unsetenv(k))
	}
	return url
}

// dropSchema removes what `relay migrate` made for schema (see
// pgtest.DropSchema) and closes conn.
func dropSchema(t *testing.T, conn *pgx.Conn, schema string) {
	t.Helper()
	require.NoError(t, pgtest.DropSchema(context.Background(), conn, schema))
	require.NoError(t, conn.Close(context.Background()))
}

// runCmd runs the binary's run() with a deadline, so a configuration that is
// wrongly accepted by serve fails the test instead of serving forever.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, &out, &errOut)
	require.NoError(t, ctx.Err(), "%v did not return before its deadline: the configuration was accepted", args)
	return out.String(), errOut.String(), err
}

func TestConfigIsCheckedAtStart(t *testing.T) {
	dbURL := pgtest.URL(t)
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	keyFile := filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))

	good := map[string]string{
		"DATABASE_URL":        dbURL,
		"BELLHOP_JWT_SECRET":  testSecret,
		"BELLHOP_LISTEN_ADDR": "127.0.0.1:0",
		"BELLHOP_SCHEMA":      "bellhop_never_created",
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string // over good; "" unsets
		// want: every string must appear in the error: the variable, and
		// what to do about it.
		want []string
	}{
		{"no DATABASE_URL", []string{"serve"}, map[string]string{"DATABASE_URL": ""},
			[]string{"DATABASE_URL", "export DATABASE_URL=postgres://"}},
		{"DATABASE_URL not a URL", []string{"serve"}, map[string]string{"DATABASE_URL": "postgres://%%"},
			[]string{"DATABASE_URL", "not a valid PostgreSQL URL"}},
		{"short secret", []string{"serve"}, map[string]string{"BELLHOP_JWT_SECRET": "too-short"},
			[]string{"BELLHOP_JWT_SECRET", "at least 32", "openssl rand"}},
		{"no key", []string{"serve"}, map[string]string{"BELLHOP_JWT_SECRET": ""},
			[]string{"BELLHOP_JWT_SECRET", "BELLHOP_JWT_PUBLIC_KEY_FILE", "set"}},
		{"secret and key file", []string{"serve"}, map[string]string{"BELLHOP_JWT_PUBLIC_KEY_FILE": keyFile},
			[]string{"only one of BELLHOP_JWT_SECRET, BELLHOP_JWT_PUBLIC_KEY_FILE and BELLHOP_JWKS_URL"}},
		{"key file missing", []string{"serve"}, map[string]string{"BELLHOP_JWT_SECRET": "", "BELLHOP_JWT_PUBLIC_KEY_FILE": filepath.Join(dir, "nope.pem")},
			[]string{"BELLHOP_JWT_PUBLIC_KEY_FILE", "nope.pem"}},
		{"JWKS without an audience", []string{"serve"}, map[string]string{"BELLHOP_JWT_SECRET": "", "BELLHOP_JWKS_URL": "http://127.0.0.1:1/jwks.json"},
			[]string{"BELLHOP_JWT_AUDIENCE is required with BELLHOP_JWKS_URL"}},
		{"JWKS over plain http", []string{"serve"}, map[string]string{"BELLHOP_JWT_SECRET": "", "BELLHOP_JWKS_URL": "http://id.example/jwks.json", "BELLHOP_JWT_AUDIENCE": "app"},
			[]string{"BELLHOP_JWKS_URL", "must use https://"}},
		{"max lifetime zero", []string{"serve"}, map[string]string{"BELLHOP_JWT_MAX_LIFETIME": "0s"},
			[]string{"BELLHOP_JWT_MAX_LIFETIME", "positive"}},
		{"max lifetime not a duration", []string{"serve"}, map[string]string{"BELLHOP_JWT_MAX_LIFETIME": "forever"},
			[]string{"BELLHOP_JWT_MAX_LIFETIME", "forever"}},
		{"token longer than the max lifetime", []string{"token", "--sub", "42", "--ttl", "48h"}, nil,
			[]string{"--ttl 48h0m0s", "BELLHOP_JWT_MAX_LIFETIME (24h0m0s)"}},
		{"bogus wake mode", []string{"serve"}, map[string]string{"BELLHOP_WAKE_MODE": "bogus"},
			[]string{"BELLHOP_WAKE_MODE", `"bogus"`, "adaptive", "notify", "poll"}},
		{"negative park rate", []string{"serve"}, map[string]string{"BELLHOP_PARK_RATE": "-1"},
			[]string{"BELLHOP_PARK_RATE=-1", "0 to turn parking off"}},
		{"schema with capitals", []string{"serve"}, map[string]string{"BELLHOP_SCHEMA": "Bad-Name"},
			[]string{"BELLHOP_SCHEMA", "lower-case letters, digits or underscores"}},
		{"schema injection", []string{"serve"}, map[string]string{"BELLHOP_SCHEMA": `x"; drop`},
			[]string{"BELLHOP_SCHEMA", "lower-case letters, digits or underscores"}},
		{"schema injection, migrate", []string{"migrate"}, map[string]string{"BELLHOP_SCHEMA": `x"; drop`},
			[]string{"BELLHOP_SCHEMA", "lower-case letters, digits or underscores"}},
		{"writer role injection, migrate", []string{"migrate"}, map[string]string{"BELLHOP_WRITER_ROLE": `w"; drop`},
			[]string{"BELLHOP_WRITER_ROLE", "lower-case letters, digits or underscores"}},
		{"schema injection, send", []string{"send", "--to", "1", "--type", "t"}, map[string]string{"BELLHOP_SCHEMA": `x"; drop`},
			[]string{"BELLHOP_SCHEMA", "lower-case letters, digits or underscores"}},
		{"heartbeat not a duration", []string{"serve"}, map[string]string{"BELLHOP_HEARTBEAT": "notaduration"},
			[]string{"BELLHOP_HEARTBEAT", "notaduration"}},
		{"max streams not a number", []string{"serve"}, map[string]string{"BELLHOP_MAX_STREAMS": "many"},
			[]string{"BELLHOP_MAX_STREAMS", "many"}},
		{"TLS certificate missing", []string{"serve"}, map[string]string{"BELLHOP_TLS_CERT_FILE": filepath.Join(dir, "nope.pem"), "BELLHOP_TLS_KEY_FILE": filepath.Join(dir, "nope.key")},
			[]string{"BELLHOP_TLS_CERT_FILE", "BELLHOP_TLS_KEY_FILE", "nope.pem", "no such file"}},
		{"TLS certificate not a certificate", []string{"serve"}, map[string]string{"BELLHOP_TLS_CERT_FILE": keyFile, "BELLHOP_TLS_KEY_FILE": keyFile},
			[]string{"BELLHOP_TLS_CERT_FILE", "PEM certificate and its key"}},
		{"TLS certificate without a key", []string{"serve"}, map[string]string{"BELLHOP_TLS_CERT_FILE": keyFile},
			[]string{"BELLHOP_TLS_CERT_FILE and BELLHOP_TLS_KEY_FILE go together"}},
		{"tracing exporter unknown", []string{"serve"}, map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"},
			[]string{"OTEL_TRACES_EXPORTER", "zipkin", "otlp"}},
		{"tracing over gRPC", []string{"serve"}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			[]string{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf"}},
		{"webhook URL not http", []string{"serve"}, map[string]string{"BELLHOP_WEBHOOK_URL": "ftp://hooks.example/in", "BELLHOP_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
			[]string{"BELLHOP_WEBHOOK_URL", "http:// or https://"}},
		{"webhook URL without a secret", []string{"serve"}, map[string]string{"BELLHOP_WEBHOOK_URL": "https://hooks.example/in"},
			[]string{"BELLHOP_WEBHOOK_SECRET is required with BELLHOP_WEBHOOK_URL"}},
		{"webhook secret not base64", []string{"serve"}, map[string]string{"BELLHOP_WEBHOOK_URL": "https://hooks.example/in", "BELLHOP_WEBHOOK_SECRET": "whsec_!!!"},
			[]string{"BELLHOP_WEBHOOK_SECRET", "base64"}},
		{"webhook event unknown", []string{"serve"}, map[string]string{"BELLHOP_WEBHOOK_URL": "https://hooks.example/in", "BELLHOP_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "BELLHOP_WEBHOOK_EVENTS": "notification.deleted"},
			[]string{"BELLHOP_WEBHOOK_EVENTS", "notification.deleted", "notification.read"}},
		{"escalation without a webhook URL", []string{"serve"}, map[string]string{"BELLHOP_ESCALATE_AFTER": "invoice.due:1h"},
			[]string{"BELLHOP_ESCALATE_AFTER needs BELLHOP_WEBHOOK_URL"}},
		{"escalation not a duration", []string{"serve"}, map[string]string{"BELLHOP_ESCALATE_AFTER": "invoice.due:soon"},
			[]string{"BELLHOP_ESCALATE_AFTER", "soon"}},
		{"fan-out URL of another broker", []string{"serve"}, map[string]string{"BELLHOP_FANOUT": "amqp://127.0.0.1:5672"},
			[]string{"BELLHOP_FANOUT", "nats://", "redis://"}},
		{"fan-out broker not there", []string{"serve"}, map[string]string{"BELLHOP_FANOUT": "nats://127.0.0.1:1"},
			[]string{"BELLHOP_FANOUT", "connect to NATS"}},
		{"fan-out Redis not there", []string{"serve"}, map[string]string{"BELLHOP_FANOUT": "redis://127.0.0.1:1"},
			[]string{"BELLHOP_FANOUT", "connect to Redis"}},
		{"fan-out prefix with a wildcard", []string{"serve"}, map[string]string{"BELLHOP_FANOUT": "nats://127.0.0.1:1", "BELLHOP_FANOUT_PREFIX": "app.*"},
			[]string{"BELLHOP_FANOUT", "prefix", "app.*"}},
		{"unknown command", []string{"serv"}, nil,
			[]string{`unknown command "serv"`}},
		{"no command", nil, nil,
			[]string{"no command"}},
		{"token without --to", []string{"token"}, nil,
			[]string{"--to is required", "relay token --to 42"}},
		{"token with a short secret", []string{"token", "--sub", "42"}, map[string]string{"BELLHOP_JWT_SECRET": "short"},
			[]string{"BELLHOP_JWT_SECRET", "at least 32"}},
		{"send without --to", []string{"send", "--type", "t"}, nil,
			[]string{"--to and --type are required"}},
		{"send data an array", []string{"send", "--to", "42", "--type", "t", "--data", "[1,2]"}, nil,
			[]string{"data", "JSON object"}},
		{"send data a string", []string{"send", "--to", "42", "--type", "t", "--data", `"hi"`}, nil,
			[]string{"data", "JSON object"}},
		{"send data not JSON", []string{"send", "--to", "42", "--type", "t", "--data", "{oops"}, nil,
			[]string{"data", "JSON"}},
		{"send sse not an object", []string{"send", "--to", "42", "--type", "t", "--sse", "7"}, nil,
			[]string{"sse", "JSON object"}},
		{"send data not JSON at all", []string{"send", "--to", "42", "--type", "t", "--data", "notjson"}, nil,
			[]string{`--data is not valid JSON: "notjson"`, `--data '{"amount":12}'`}},
		{"send sse not JSON", []string{"send", "--to", "42", "--type", "t", "--sse", "{a:1}"}, nil,
			[]string{`--sse is not valid JSON: "{a:1}"`}},

		// Every command refuses what it does not take, giving its usage:
		// serve and migrate used to run whatever followed them.
		{"serve with an unknown flag", []string{"serve", "--bogus"}, nil,
			[]string{"serve: flag provided but not defined: -bogus", "usage: relay serve"}},
		{"serve with an argument", []string{"serve", "now"}, nil,
			[]string{`serve: unexpected arguments ["now"]`, "usage: relay serve"}},
		{"migrate with an unknown flag", []string{"migrate", "--schema", "x"}, nil,
			[]string{"migrate: flag provided but not defined: -schema", "usage: relay migrate"}},
		{"migrate with an argument", []string{"migrate", "up"}, nil,
			[]string{`migrate: unexpected arguments ["up"]`, "usage: relay migrate"}},
		{"token with an argument", []string{"token", "--to", "42", "acme"}, nil,
			[]string{`token: unexpected arguments ["acme"]`, "usage: relay token --to ID"}},
		{"send with an argument", []string{"send", "--to", "42", "--type", "t", "{}"}, nil,
			[]string{`send: unexpected arguments ["{}"]`, "usage: relay send --to ID --type TYPE"}},
		{"send with an unknown flag", []string{"send", "--to", "42", "--type", "t", "--payload", "{}"}, nil,
			[]string{"send: flag provided but not defined: -payload", "usage: relay send"}},
		{"version with a flag", []string{"version", "--short"}, nil,
			[]string{"version: flag provided but not defined: -short", "usage: relay version"}},
		{"healthcheck with an argument", []string{"healthcheck", "now"}, nil,
			[]string{`healthcheck: unexpected arguments ["now"]`, "usage: relay healthcheck"}},

		// The relay takes 0 or less for its default; set, it is a mistake.
		{"heartbeat negative", []string{"serve"}, map[string]string{"BELLHOP_HEARTBEAT": "-1s"},
			[]string{"BELLHOP_HEARTBEAT=-1s must be positive, e.g. 25s (the default)", "unset it for the default"}},
		{"write timeout zero", []string{"serve"}, map[string]string{"BELLHOP_WRITE_TIMEOUT": "0s"},
			[]string{"BELLHOP_WRITE_TIMEOUT=0s must be positive"}},
		{"retry hint zero", []string{"serve"}, map[string]string{"BELLHOP_RETRY_HINT": "0"},
			[]string{"BELLHOP_RETRY_HINT=0s must be positive"}},
		{"request timeout negative", []string{"serve"}, map[string]string{"BELLHOP_REQUEST_TIMEOUT": "-5s"},
			[]string{"BELLHOP_REQUEST_TIMEOUT=-5s must be positive"}},
		{"stream buffer zero", []string{"serve"}, map[string]string{"BELLHOP_STREAM_BUFFER": "0"},
			[]string{"BELLHOP_STREAM_BUFFER=0 must be positive, e.g. 32 (the default)"}},
		{"unread count cap negative", []string{"serve"}, map[string]string{"BELLHOP_UNREAD_COUNT_CAP": "-1"},
			[]string{"BELLHOP_UNREAD_COUNT_CAP=-1 must be positive"}},
		{"sweep interval zero", []string{"serve"}, map[string]string{"BELLHOP_SWEEP_INTERVAL": "0s"},
			[]string{"BELLHOP_SWEEP_INTERVAL=0s must be positive, e.g. 1s (the default)"}},
		{"no webhook workers", []string{"serve"}, map[string]string{"BELLHOP_WEBHOOK_WORKERS": "0"},
			[]string{"BELLHOP_WEBHOOK_WORKERS=0 must be positive, e.g. 10 (the default)"}},
		{"pool of no connections", []string{"serve"}, map[string]string{"BELLHOP_DB_MAX_CONNS": "0"},
			[]string{"BELLHOP_DB_MAX_CONNS=0 must be positive"}},

		// An origin the browser never sends would silently never match.
		{"origin with a trailing slash", []string{"serve"}, map[string]string{"BELLHOP_ALLOWED_ORIGINS": "https://a.example.com/"},
			[]string{"BELLHOP_ALLOWED_ORIGINS", `"https://a.example.com/" is not an origin`, "scheme://host[:port]", "no trailing slash"}},
		{"origin with a path", []string{"serve"}, map[string]string{"BELLHOP_ALLOWED_ORIGINS": "https://ok.example.com, https://a.example.com/app"},
			[]string{"BELLHOP_ALLOWED_ORIGINS", `"https://a.example.com/app" is not an origin`}},
		{"origin without a scheme", []string{"serve"}, map[string]string{"BELLHOP_ALLOWED_ORIGINS": "a.example.com"},
			[]string{"BELLHOP_ALLOWED_ORIGINS", `"a.example.com" is not an origin`}},
		{"origin a wildcard", []string{"serve"}, map[string]string{"BELLHOP_ALLOWED_ORIGINS": "*"},
			[]string{"BELLHOP_ALLOWED_ORIGINS", `"*" is not an origin`}},
		{"origin with capitals", []string{"serve"}, map[string]string{"BELLHOP_ALLOWED_ORIGINS": "https://App.example.com"},
			[]string{"BELLHOP_ALLOWED_ORIGINS", `write "https://app.example.com"`}},
		{"origin with the default port", []string{"serve"}, map[string]string{"BELLHOP_ALLOWED_ORIGINS": "https://a.example.com:443"},
			[]string{"BELLHOP_ALLOWED_ORIGINS", "write https://a.example.com"}},
		{"origins with a stray comma", []string{"serve"}, map[string]string{"BELLHOP_ALLOWED_ORIGINS": "https://a.example.com,"},
			[]string{"BELLHOP_ALLOWED_ORIGINS", "stray comma"}},

		// The database's errors that have a known fix name it.
		{"schema not migrated", []string{"serve"}, nil,
			[]string{`schema "bellhop_never_created" is not migrated`, "run `relay migrate`", "BELLHOP_SCHEMA=bellhop_never_created", "42P01"}},
		{"schema not migrated, send", []string{"send", "--to", "42", "--type", "t"}, nil,
			[]string{`schema "bellhop_never_created" is not migrated`, "run `relay migrate`", "BELLHOP_SCHEMA=bellhop_never_created"}},
		{"database not there", []string{"serve"}, map[string]string{"DATABASE_URL": "postgres://postgres@" + closedAddr(t) + "/none"},
			[]string{"cannot connect to DATABASE_URL's database", "connection refused"}},
		{"database not there, migrate", []string{"migrate"}, map[string]string{"DATABASE_URL": "postgres://postgres@" + closedAddr(t) + "/none"},
			[]string{"cannot connect to DATABASE_URL's database", "connection refused"}},
		{"database not there, send", []string{"send", "--to", "42", "--type", "t"}, map[string]string{"DATABASE_URL": "postgres://postgres@" + closedAddr(t) + "/none"},
			[]string{"cannot connect to DATABASE_URL's database", "connection refused"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range good {
				t.Setenv(k, v)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
				if v == "" {
					require.NoError(t, os.Unsetenv(k))
				}
			}
			stdout, stderr, err := runCmd(t, c.args...)
			require.Error(t, err, "stdout %q stderr %q", stdout, stderr)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "MarshalJSON", "encoding/json's words, not the flag's")
			require.NotContains(t, err.Error(), testSecret, "the secret leaked into the message")
			require.Empty(t, stdout, "nothing is printed to stdout on failure")
		})
	}
	// Nothing above created the schema: a refused start touches nothing.
	var n int
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_namespace WHERE nspname IN ('bellhop_never_created', 'x\"; drop', 'Bad-Name')").Scan(&n))
	require.Zero(t, n)
}

func TestMainCommandsWorkAgainstTheDatabase(t *testing.T) {
	dbURL := cleanEnv(t)
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	schema := "main_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { dropSchema(t, conn, schema) })
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("BELLHOP_SCHEMA", schema)
	t.Setenv("BELLHOP_JWT_SECRET", testSecret)

	stdout, _, err := runCmd(t, "version")
	require.NoError(t, err)
	require.Equal(t, "bellhop relay dev\n", stdout)

	stdout, _, err = runCmd(t, "migrate")
	require.NoError(t, err)
	require.Contains(t, stdout, schema)
	stdout, _, err = runCmd(t, "migrate") // idempotent
	require.NoError(t, err)
	require.Contains(t, stdout, "up to date")
	require.Contains(t, stdout, "GRANT "+schema+"_writer TO your_app_role", "the schema's own writer role, named for it")
	var writer bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = $1", schema+"_writer").Scan(&writer))
	require.True(t, writer, "migrate created the NOLOGIN writer role")

	stdout, _, err = runCmd(t, "send", "--to", "42", "--tenant", "acme", "--type", "invoice.paid",
		"--data", `{"invoiceId": "1001"}`, "--sse", ` {"n":1} `)
	require.NoError(t, err)
	id := strings.TrimSpace(stdout)
	require.NoError(t, uuid.Validate(id), "send prints the new row's id: %q", stdout)
	var (
		tenant, typ, kind string
		data, sse         map[string]any
	)
	require.NoError(t, conn.QueryRow(ctx, "SELECT tenant_id, notifiable_type, type, data, sse FROM "+
		pgx.Identifier{schema, "notifications"}.Sanitize()+" WHERE id = $1", id).Scan(&tenant, &typ, &kind, &data, &sse))
	require.Equal(t, "acme", tenant)
	require.Equal(t, "User", typ)
	require.Equal(t, "invoice.paid", kind)
	require.Equal(t, map[string]any{"invoiceId": "1001"}, data)
	require.Equal(t, map[string]any{"n": float64(1)}, sse)

	// A keyed send updates the same row.
	stdout, _, err = runCmd(t, "send", "--to", "42", "--tenant", "acme", "--type", "export", "--key", "export:1", "--data", `{"p":10}`)
	require.NoError(t, err)
	keyed := strings.TrimSpace(stdout)
	stdout, _, err = runCmd(t, "send", "--to", "42", "--tenant", "acme", "--type", "export", "--key", "export:1", "--data", `{"p":90}`)
	require.NoError(t, err)
	require.Equal(t, keyed, strings.TrimSpace(stdout))

	// --sub and --type are token's deprecated spellings of --to and
	// --notifiable-type.
	stdout, _, err = runCmd(t, "token", "--sub", "7", "--type", "Team", "--ttl", "10m")
	require.NoError(t, err)
	var old relay.Claims
	_, err = jwt.ParseWithClaims(strings.TrimSpace(stdout), &old, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	require.NoError(t, err)
	require.Equal(t, "7", old.Subject)
	require.Equal(t, "Team", old.NotifiableType)

	stdout, _, err = runCmd(t, "token", "--to", "42", "--tenant", "acme", "--ttl", "10m")
	require.NoError(t, err)
	tok := strings.TrimSpace(stdout)
	var claims relay.Claims
	parsed, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	require.NoError(t, err)
	require.True(t, parsed.Valid)
	require.Equal(t, "42", claims.Subject)
	require.Equal(t, "acme", claims.Tenant)
	require.Equal(t, "User", claims.NotifiableType)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), claims.ExpiresAt.Time, time.Minute)

	// serve answers that token with what send wrote, and stops when its
	// context ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	t.Setenv("BELLHOP_LISTEN_ADDR", addr)
	t.Setenv("BELLHOP_LOG_LEVEL", "error")
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	var serveErr bytes.Buffer
	go func() { done <- run(sctx, []string{"serve"}, &bytes.Buffer{}, &serveErr) }()
	var count struct{ Count int64 }
	require.Eventually(t, func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/notifications/unread/count", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&count) == nil
	}, 15*time.Second, 50*time.Millisecond, "serve never answered: %s", &serveErr)
	require.EqualValues(t, 2, count.Count, "the sent notification and the keyed one")

	// healthcheck finds the live relay where serve listens, without
	// DATABASE_URL (a container's health check may run without it), from
	// BELLHOP_LISTEN_ADDR, an unspecified host meaning loopback, or --url.
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	require.NoError(t, os.Unsetenv("DATABASE_URL"))
	for _, listen := range []string{addr, ":" + port, "0.0.0.0:" + port} {
		t.Setenv("BELLHOP_LISTEN_ADDR", listen)
		stdout, stderr, err := runCmd(t, "healthcheck")
		require.NoError(t, err, "BELLHOP_LISTEN_ADDR=%s: %s", listen, stderr)
		require.Contains(t, stdout, "healthy: GET http://127.0.0.1:"+port+"/healthz answered 200 OK")
	}
	stdout, _, err = runCmd(t, "healthcheck", "--url", "http://"+addr)
	require.NoError(t, err)
	require.Contains(t, stdout, "http://"+addr+"/healthz answered 200 OK", "a --url without a path asks /healthz")
	// BELLHOP_OPS_ADDR, where serve would move /healthz, comes first.
	t.Setenv("BELLHOP_OPS_ADDR", closedAddr(t))
	_, _, err = runCmd(t, "healthcheck")
	require.ErrorContains(t, err, "BELLHOP_OPS_ADDR")
	require.NoError(t, os.Unsetenv("BELLHOP_OPS_ADDR"))
	stop()
	select {
	case err := <-done:
		require.NoError(t, err, "a graceful stop is not an error")
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop when its context ended")
	}
}

// TestDemoIsSafeWithAnApplicationsEnvironment runs the demo with what a
// production shell holds (DATABASE_URL, BELLHOP_JWT_SECRET, BELLHOP_SCHEMA):
// it listens on loopback by default, signs its page's tokens with a secret
// of its own, writes to its own schema and says all of it in its banner.
func TestDemoIsSafeWithAnApplicationsEnvironment(t *testing.T) {
	dbURL := cleanEnv(t)

	fs, addr, schema := demoFlags()
	require.NoError(t, fs.Parse(nil))
	host, _, err := net.SplitHostPort(*addr)
	require.NoError(t, err)
	require.True(t, host == "localhost" || net.ParseIP(host).IsLoopback(), "the demo listens on %q by default, beyond loopback", *addr)
	require.Equal(t, "bellhop_demo", *schema, "the demo's schema is not the application's")

	b := make([]byte, 6)
	_, err = rand.Read(b)
	require.NoError(t, err)
	demoSchema := "demo_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { dropSchema(t, conn, demoSchema) })
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("BELLHOP_JWT_SECRET", testSecret)
	t.Setenv("BELLHOP_SCHEMA", "bellhop")
	t.Setenv("BELLHOP_LOG_LEVEL", "error")

	// startDemo runs the demo until the test stops it; it returns the page's
	// URL and the banner.
	startDemo := func(addr string) (string, string, func()) {
		dctx, cancel := context.WithCancel(ctx)
		var stdout, stderr syncbuf.Buffer
		done := make(chan error, 1)
		go func() { done <- run(dctx, []string{"demo", "--addr", addr, "--schema", demoSchema}, &stdout, &stderr) }()
		open := regexp.MustCompile(`open (http://\S+)/\n`)
		var base string
		require.Eventually(t, func() bool {
			select {
			case err := <-done:
				require.NoError(t, err, "the demo stopped: %s", stderr.String())
				t.Fatalf("the demo stopped: %s", stderr.String())
			default:
			}
			m := open.FindStringSubmatch(stdout.String())
			if m != nil {
				base = m[1]
			}
			return m != nil
		}, 30*time.Second, 20*time.Millisecond, "no banner: %s", &stderr)
		stop := func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("the demo did not stop")
			}
		}
		t.Cleanup(cancel)
		return base, stdout.String(), stop
	}
	get := func(url string, cookie *http.Cookie, bearer string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return res
	}
	unread := func(base string, cookie *http.Cookie) int64 {
		res := get(base+"/notifications/unread/count", cookie, "")
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		var c struct{ Count int64 }
		require.NoError(t, json.NewDecoder(res.Body).Decode(&c))
		return c.Count
	}

	base, banner, stop := startDemo("127.0.0.1:0")
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)
	require.Contains(t, banner, "never BELLHOP_JWT_SECRET")
	require.Contains(t, banner, "ignored from the environment: BELLHOP_JWT_SECRET, BELLHOP_SCHEMA")
	require.Contains(t, banner, dbURL)
	require.NotContains(t, banner, testSecret)
	// What the migration makes outside the schema, and how to drop it.
	require.Contains(t, banner, "writer role "+demoSchema+"_writer")
	require.Contains(t, banner, "publication "+demoSchema+"_wake")
	require.Contains(t, banner, "-c 'DROP SCHEMA "+demoSchema+" CASCADE' -c 'DROP PUBLICATION IF EXISTS "+demoSchema+"_wake' -c 'DROP ROLE IF EXISTS "+demoSchema+"_writer'")
	var roles int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", demoSchema+"_writer").Scan(&roles))
	require.Equal(t, 1, roles, "the banner names a role the demo did not make")
	require.NotContains(t, banner, "WARNING")

	// The page's cookie is not signed with the application's secret, and the
	// application's tokens are no use here.
	res := get(base+"/", nil, "")
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "bellhop_token" {
			cookie = c
		}
	}
	require.NotNil(t, cookie, "the page sets no token cookie")
	_, err = jwt.Parse(cookie.Value, func(*jwt.Token) (any, error) { return []byte(testSecret), nil }, jwt.WithValidMethods([]string{"HS256"}))
	require.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid, "the demo signed its token with BELLHOP_JWT_SECRET")
	appToken, err := relay.Mint(testSecret, demopage.Recipient, time.Hour)
	require.NoError(t, err)
	res = get(base+"/notifications/unread/count", nil, appToken)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "the demo accepted a token signed with BELLHOP_JWT_SECRET")

	// The banner's psql line writes to the demo's schema, for the page's user.
	require.Zero(t, unread(base, cookie))
	psql := regexp.MustCompile(`psql '([^']+)' -c "([^"]+)"`).FindStringSubmatch(banner)
	require.NotNil(t, psql, "no psql line in the banner:\n%s", banner)
	require.Equal(t, dbURL, psql[1])
	require.Contains(t, psql[2], "INSERT INTO "+demoSchema+".notifications")
	_, err = conn.Exec(ctx, psql[2])
	require.NoError(t, err)
	require.Eventually(t, func() bool { return unread(base, cookie) == 1 }, 10*time.Second, 20*time.Millisecond)
	stop()

	// Beyond loopback only when asked, and loudly; restarted, the demo keeps
	// its secret, so an open page's cookie still works.
	base, banner, stop = startDemo("0.0.0.0:0")
	defer stop()
	require.Contains(t, banner, "WARNING: listening on every interface")
	require.True(t, strings.HasPrefix(base, "http://localhost:"), base)
	require.EqualValues(t, 1, unread(base, cookie))
}

// The demo's page sets its token in the cookie the relay reads,
// BELLHOP_COOKIE_NAME when set: an application's cookie name in the shell
// must not break the demo's sign-in, nor be silently ignored.
func TestDemoUsesTheConfiguredCookieName(t *testing.T) {
	dbURL := cleanEnv(t)
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	demoSchema := "demo_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { dropSchema(t, conn, demoSchema) })
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("BELLHOP_COOKIE_NAME", "app_session")
	t.Setenv("BELLHOP_LOG_LEVEL", "error")

	dctx, cancel := context.WithCancel(ctx)
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(dctx, []string{"demo", "--addr", "127.0.0.1:0", "--schema", demoSchema}, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("the demo did not stop")
		}
	})
	open := regexp.MustCompile(`open (http://\S+)/\n`)
	var base string
	require.Eventually(t, func() bool {
		if m := open.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		return base != ""
	}, 30*time.Second, 20*time.Millisecond, "no banner: %s", &stderr)
	require.NotContains(t, stdout.String(), "BELLHOP_COOKIE_NAME", "the demo ignored BELLHOP_COOKIE_NAME")

	res, err := http.Get(base + "/")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "app_session" {
			cookie = c
		}
	}
	require.NotNil(t, cookie, "the page set no app_session cookie: %v", res.Cookies())

	req, err := http.NewRequest(http.MethodGet, base+"/notifications/unread/count", nil)
	require.NoError(t, err)
	req.AddCookie(cookie)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "the relay refused the page's own cookie")
}

// BELLHOP_PPROF_ADDR's handler serves the profiles (the binary's own mux:
// the relay package no longer imports net/http/pprof).
func TestPprofHandlerServesProfiles(t *testing.T) {
	srv := httptest.NewServer(pprofHandler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/debug/pprof/")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}

// The libraries' errors name Config fields; the binary reports them under
// the variables that set them.
func TestEnvErrorNamesVariables(t *testing.T) {
	for in, want := range map[string]string{
		"worker: Config.WakeMode=\"x\" is not one of adaptive, notify, poll, logical": "worker: BELLHOP_WAKE_MODE=\"x\" is not one of adaptive, notify, poll, logical",
		"Config.JWTAudience is required with Config.JWKSURL":                          "BELLHOP_JWT_AUDIENCE is required with BELLHOP_JWKS_URL",
		"Config.Worker.Schema: bad":                                                   "BELLHOP_SCHEMA: bad",
		"Config.DatabaseURL or Config.Pool is required":                               "DATABASE_URL or Config.Pool is required",
		"Config.Unknown stays":                                                        "Config.Unknown stays",
	} {
		require.Equal(t, want, envError(errors.New(in)).Error())
	}
	require.NoError(t, envError(nil))
}

// BELLHOP_PARK_RATE=0 turns parking off (worker.Config.ParkRate < 0);
// unset, the worker parks below 400 commits a second.
func TestParkRateZeroTurnsParkingOff(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/none")
	t.Setenv("BELLHOP_JWT_SECRET", testSecret)
	cfg, err := loadConfig(context.Background())
	require.NoError(t, err)
	require.Equal(t, 400, cfg.relayConfig().Worker.ParkRate)
	t.Setenv("BELLHOP_PARK_RATE", "0")
	cfg, err = loadConfig(context.Background())
	require.NoError(t, err)
	require.Negative(t, cfg.relayConfig().Worker.ParkRate)
}

// Every variable checkPositive names is one envConfig reads, as a duration
// or an integer: a misspelt name would check nothing.
func TestMustBePositiveNamesVariables(t *testing.T) {
	typ := reflect.TypeOf(envConfig{})
	kinds := map[string]reflect.Kind{}
	for i := range typ.NumField() {
		kinds[envName(typ.Field(i))] = typ.Field(i).Type.Kind()
	}
	for name := range mustBePositive {
		require.Contains(t, []reflect.Kind{reflect.Int, reflect.Int32, reflect.Int64}, kinds[name], "%s is not an integer or duration variable of envConfig", name)
	}
}

// Every origin a browser sends is accepted in BELLHOP_ALLOWED_ORIGINS.
func TestAllowedOriginsTakeWhatBrowsersSend(t *testing.T) {
	cleanEnv(t)
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/none")
	t.Setenv("BELLHOP_ALLOWED_ORIGINS", "https://app.example.com, http://localhost:3000,http://[::1]:8080,https://xn--bcher-kva.example,capacitor://localhost")
	cfg, err := loadConfig(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"https://app.example.com", "http://localhost:3000", "http://[::1]:8080", "https://xn--bcher-kva.example", "capacitor://localhost"}, cfg.AllowedOrigins)
}

// -h prints a command's usage and succeeds, doing nothing else: migrate
// migrates nothing, serve serves nothing.
func TestHelpDoesNothingElse(t *testing.T) {
	dbURL := cleanEnv(t)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("BELLHOP_SCHEMA", "bellhop_never_created")
	t.Setenv("BELLHOP_JWT_SECRET", testSecret)
	t.Setenv("BELLHOP_LISTEN_ADDR", "127.0.0.1:0")
	for _, cmd := range []string{"serve", "migrate", "token", "send", "demo", "healthcheck", "version"} {
		for _, h := range []string{"-h", "--help"} {
			stdout, stderr, err := runCmd(t, cmd, h)
			require.NoError(t, err, "relay %s %s", cmd, h)
			require.True(t, strings.HasPrefix(stdout, "usage: relay "+cmd), "relay %s %s printed %q", cmd, h, stdout)
			require.Empty(t, stderr)
		}
	}
	stdout, _, err := runCmd(t, "send", "-h")
	require.NoError(t, err)
	require.Contains(t, stdout, "-data string", "the flags are listed")

	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'bellhop_never_created'").Scan(&n))
	require.Zero(t, n, "migrate -h migrated")
}

// serve listens before it connects, as the demo does: a taken or malformed
// address fails at once, naming its variable, before "relay serving".
func TestServeChecksItsAddressesFirst(t *testing.T) {
	cleanEnv(t)
	t.Setenv("DATABASE_URL", "postgres://postgres@"+closedAddr(t)+"/none?connect_timeout=5")
	t.Setenv("BELLHOP_JWT_SECRET", testSecret)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	t.Setenv("BELLHOP_LISTEN_ADDR", taken.Addr().String())
	_, stderr, err := runCmd(t, "serve")
	require.Error(t, err)
	require.Contains(t, err.Error(), "cannot listen on "+taken.Addr().String()+": it is taken")
	require.Contains(t, err.Error(), "set BELLHOP_LISTEN_ADDR to another address")
	require.NotContains(t, err.Error(), "DATABASE_URL")
	require.NotContains(t, stderr, "relay serving")

	t.Setenv("BELLHOP_LISTEN_ADDR", "8080")
	_, _, err = runCmd(t, "serve")
	require.ErrorContains(t, err, `cannot listen on "8080"`)
	require.ErrorContains(t, err, "set BELLHOP_LISTEN_ADDR to a host:port")

	t.Setenv("BELLHOP_LISTEN_ADDR", "127.0.0.1:0")
	t.Setenv("BELLHOP_OPS_ADDR", taken.Addr().String())
	_, _, err = runCmd(t, "serve")
	require.ErrorContains(t, err, "set BELLHOP_OPS_ADDR to another address")
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// healthcheck fails, saying why and where the address came from, when no
// relay answers 200: the container runtime shows that message.
func TestHealthcheckFailsClearly(t *testing.T) {
	cleanEnv(t)
	closed := closedAddr(t)

	t.Setenv("BELLHOP_LISTEN_ADDR", closed)
	stdout, _, err := runCmd(t, "healthcheck")
	require.Error(t, err)
	require.Contains(t, err.Error(), "GET http://"+closed+"/healthz: connection refused")
	require.Contains(t, err.Error(), "BELLHOP_LISTEN_ADDR")
	require.Empty(t, stdout)

	_, _, err = runCmd(t, "healthcheck", "--url", "http://"+closed+"/healthz")
	require.ErrorContains(t, err, "connection refused")
	require.ErrorContains(t, err, "--url")

	// A relay that answers, but not 200.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"not_ready"}`)
	}))
	defer down.Close()
	_, _, err = runCmd(t, "healthcheck", "--url", down.URL+"/healthz")
	require.ErrorContains(t, err, "answered 503 Service Unavailable, want 200 OK: {\"error\":\"not_ready\"}")

	// One that never answers: the check gives up at its timeout.
	hung := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hung)
	start := time.Now()
	_, _, err = runCmd(t, "healthcheck", "--url", slow.URL, "--timeout", "300ms")
	require.ErrorContains(t, err, "no answer within 300ms")
	require.Less(t, time.Since(start), 5*time.Second)

	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"healthcheck", "--url", "localhost:8080"}, nil, "not an http:// or https:// URL"},
		{[]string{"healthcheck", "extra"}, nil, "unexpected arguments"},
		{[]string{"healthcheck"}, map[string]string{"BELLHOP_LISTEN_ADDR": "8080"}, `BELLHOP_LISTEN_ADDR="8080" is not host:port`},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		_, _, err := runCmd(t, c.args...)
		require.ErrorContains(t, err, c.want, "%v", c.args)
	}
}

// River logs "Producer job counts" at info every 5 s while jobs run (the
// relay's sweep runs one a second), and more routine lines besides: none of
// them belongs in the relay's default log, only River's warnings and errors.
func TestServeLogHasNoRiverChatter(t *testing.T) {
	cleanEnv(t)
	db := pgtest.New(t)
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("BELLHOP_SCHEMA", db.Schema)
	t.Setenv("BELLHOP_JWT_SECRET", testSecret)
	t.Setenv("BELLHOP_LISTEN_ADDR", "127.0.0.1:0")
	t.Setenv("BELLHOP_DB_MAX_CONNS", "4")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, io.Discard, &stderr) }()
	// River's producer reports every 5 s (not configurable), when the job
	// counts moved: give it one report and a margin.
	time.Sleep(6500 * time.Millisecond)
	stop()
	select {
	case err := <-done:
		require.NoError(t, err, "%s", &stderr)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	log := stderr.String()
	require.Contains(t, log, `"level":"INFO"`, "the default log is at info: %s", log)
	require.NotContains(t, log, "Producer job counts")
	require.NotContains(t, log, `"component":"river"`, "River logged below warn: %s", log)
}

// The demo listens before it looks for a database: a taken or malformed
// address fails at once, naming --addr, whatever the database would say.
func TestDemoChecksItsAddressFirst(t *testing.T) {
	cleanEnv(t)
	t.Setenv("DATABASE_URL", "postgres://postgres@"+closedAddr(t)+"/none?connect_timeout=5")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()

	_, stderr, err := runCmd(t, "demo", "--addr", taken.Addr().String())
	require.Error(t, err)
	require.Contains(t, err.Error(), "cannot listen on "+taken.Addr().String()+": it is taken")
	require.Contains(t, err.Error(), "set --addr to another address")
	require.NotContains(t, err.Error(), "DATABASE_URL")
	require.NotContains(t, stderr, "PostgreSQL")

	_, _, err = runCmd(t, "demo", "--addr", "8080")
	require.ErrorContains(t, err, `cannot listen on "8080"`)
	require.ErrorContains(t, err, "set --addr to a host:port, such as 127.0.0.1:8090")
}

// A schema from before this binary's migrations fails on a missing
// column or function as often as on a missing table: each names the fix.
func TestDBErrorNamesMigrate(t *testing.T) {
	for _, code := range []string{"42P01", "3F000", "42703", "42883"} {
		err := dbError(fmt.Errorf("read relay head: %w", &pgconn.PgError{Code: code, Message: "x does not exist"}), "app")
		require.ErrorContains(t, err, "run `relay migrate` with the same DATABASE_URL and BELLHOP_SCHEMA=app", code)
	}
	other := &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	require.Equal(t, other, dbError(other, "app"), "other errors pass as they are")
}
