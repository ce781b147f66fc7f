package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/integration/pgtest"
	"github.com/bellhophq/bellhop/internal/syncbuf"
	"github.com/bellhophq/bellhop/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// make demo without DATABASE_URL: cmd/demo finds a server (here the tests'
// own, from TEST_DATABASE_URL), builds the relay, runs `relay demo` on it,
// and a ^C (SIGINT to the whole process group, as a terminal sends it)
// stops everything cleanly: make reports no error. The relay binary cannot
// find a container itself, so this is the demo's only way to Docker.
//
// This runs the Makefile's recipe itself (it writes bin/demo and bin/relay,
// as make demo does): `go run` there made every ^C an error.
func TestMakeDemoFindsADatabaseAndStopsCleanlyOnInterrupt(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	require.NoError(t, err, "the demo's front door is make")
	// A database of its own: make demo has no schema setting.
	server, err := url.Parse(pgtest.URL(t))
	require.NoError(t, err)
	b := make([]byte, 6)
	_, err = rand.Read(b)
	require.NoError(t, err)
	dbName := "demo_" + hex.EncodeToString(b)
	admin, err := pgx.Connect(context.Background(), server.String())
	require.NoError(t, err)
	_, err = admin.Exec(context.Background(), "CREATE DATABASE "+dbName)
	require.NoError(t, err)
	// The demo's writer role belongs to the server: dropped afterwards
	// unless it was there before (another database's demo).
	writer := migrations.WriterRole("bellhop_demo") // the demo's schema (cmd/relay/demo.go)
	var hadWriter bool
	require.NoError(t, admin.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", writer).Scan(&hadWriter))
	t.Cleanup(func() {
		_, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)")
		require.NoError(t, err)
		if !hadWriter {
			_, err = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{writer}.Sanitize())
			require.NoError(t, err)
		}
		admin.Close(context.Background())
	})
	dbURL := *server
	dbURL.Path = "/" + dbName

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	demo := exec.Command(makeBin, "--no-print-directory", "demo", "DEMO_ADDR="+addr)
	demo.Dir = "../.."
	env := []string{"TEST_DATABASE_URL=" + dbURL.String(), "BELLHOP_LOG_LEVEL=error"}
	for _, kv := range os.Environ() {
		if !regexp.MustCompile(`^(DATABASE_URL|TEST_DATABASE_URL|BELLHOP_[A-Z_]+|DEMO_ADDR|MAKEFLAGS|MAKELEVEL)=`).MatchString(kv) {
			env = append(env, kv)
		}
	}
	demo.Env = env
	var out syncbuf.Buffer
	demo.Stdout, demo.Stderr = &out, &out
	// A group of its own, which the test interrupts as a terminal would.
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	demo.WaitDelay = 10 * time.Second
	require.NoError(t, demo.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = demo.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-demo.Process.Pid, syscall.SIGKILL)
		<-exited
	})

	require.Eventually(t, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		return strings.Contains(out.String(), "Bellhop demo: open http://"+addr+"/")
	}, 3*time.Minute, 50*time.Millisecond, "no banner: %s", &out)
	select {
	case <-exited:
		t.Fatalf("make demo stopped: %v\n%s", waitErr, &out)
	default:
	}
	res, err := http.Get("http://" + addr + "/")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	// The relay got the server cmd/demo found, as DATABASE_URL.
	var found bool
	require.NoError(t, admin.QueryRow(context.Background(),
		"SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = $1)", dbName).Scan(&found))
	require.True(t, found, "the demo is not connected to the server cmd/demo found")

	require.NoError(t, syscall.Kill(-demo.Process.Pid, syscall.SIGINT))
	select {
	case <-exited:
	case <-time.After(40 * time.Second):
		t.Fatalf("make demo did not stop:\n%s", &out)
	}
	require.Contains(t, out.String(), "relay demo: stopped")
	require.NotContains(t, out.String(), "make: ***", "make reported the ^C as an error")
	// make passes a ^C on to its caller by dying of it too; the demo
	// exited 0, or make would have said so above.
	if waitErr != nil {
		var exit *exec.ExitError
		require.ErrorAs(t, waitErr, &exit)
		ws := exit.Sys().(syscall.WaitStatus)
		require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGINT, "make demo: %v\n%s", waitErr, &out)
	}
}

// A taken or malformed address fails at once, naming DEMO_ADDR, before the
// relay is built or a database found.
func TestDemoChecksItsAddressFirst(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	require.NoError(t, os.Unsetenv("DATABASE_URL"))
	t.Setenv("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	relayBin := filepath.Join(t.TempDir(), "relay")

	for addr, want := range map[string]string{
		taken.Addr().String(): "cannot listen on " + taken.Addr().String() + ": it is taken",
		"8080":                `cannot listen on "8080"`,
	} {
		var stderr bytes.Buffer
		start := time.Now()
		code, err := run(context.Background(), &stderr, relayBin, addr, "")
		require.Equal(t, 1, code)
		require.ErrorContains(t, err, want)
		require.ErrorContains(t, err, "set DEMO_ADDR (make demo) or -addr to ")
		require.Less(t, time.Since(start), time.Second)
		require.Empty(t, stderr.String(), "the demo went on after the address check")
		require.NoFileExists(t, relayBin)
	}
}
