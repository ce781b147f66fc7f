package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// make demo without DATABASE_URL: cmd/demo finds a server (here the tests'
// own, from TEST_DATABASE_URL), builds the relay, runs `relay demo` on it
// and stops it on a signal. The relay binary cannot find a container
// itself, so this is the demo's only way to Docker.
func TestDemoFindsADatabaseAndRunsTheRelayDemo(t *testing.T) {
	dbURL := pgtest.URL(t)
	t.Setenv("TEST_DATABASE_URL", dbURL)
	t.Setenv("DATABASE_URL", "")
	require.NoError(t, os.Unsetenv("DATABASE_URL"))
	t.Setenv("BELLHOP_LOG_LEVEL", "error")

	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	schema := "demo_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		require.NoError(t, err)
		conn.Close(context.Background())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	relayBin := filepath.Join(t.TempDir(), "relay")
	go func() {
		code, err := run(ctx, relayBin, []string{"--addr", addr, "--schema", schema})
		done <- result{code, err}
	}()

	require.Eventually(t, func() bool {
		select {
		case r := <-done:
			t.Fatalf("the demo stopped: code %d, %v", r.code, r.err)
		default:
		}
		res, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 2*time.Minute, 50*time.Millisecond, "the demo page never answered")

	// The relay got the server cmd/demo found, as DATABASE_URL.
	var found bool
	require.NoError(t, conn.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&found))
	require.True(t, found, "the demo's schema is not on the server cmd/demo found")

	cancel()
	select {
	case r := <-done:
		require.NoError(t, r.err)
		require.Zero(t, r.code, "the relay demo did not stop cleanly")
	case <-time.After(40 * time.Second):
		t.Fatal("the demo did not stop")
	}
}
