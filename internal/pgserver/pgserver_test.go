package pgserver

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// With no URL, no Docker and no binaries, Start fails and says how to
// provide a server: tests never silently skip.
func TestStartFailsLoudlyWithNothingToUse(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "")
	t.Setenv("DATABASE_URL", "")
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	t.Setenv("PATH", t.TempDir())
	old := binGlob
	binGlob = "/nonexistent/*/bin"
	t.Cleanup(func() { binGlob = old })

	_, err := Start(context.Background())
	require.Error(t, err)
	for _, hint := range []string{"TEST_DATABASE_URL", "Docker", "initdb"} {
		require.Contains(t, err.Error(), hint)
	}
}

// The caller's finders come after the environment and before local
// binaries; a finder that fails is named in the error, and the next is tried.
func TestStartTriesFindersInOrder(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "")
	t.Setenv("DATABASE_URL", "")
	t.Setenv("PATH", t.TempDir())
	old := binGlob
	binGlob = "/nonexistent/*/bin"
	t.Cleanup(func() { binGlob = old })

	failing := Finder{Name: "first", Find: func(context.Context) (*Server, error) {
		return nil, errors.New("engine away")
	}}
	found := Finder{Name: "second", Find: func(context.Context) (*Server, error) {
		return NewServer("postgres://found/db", "second", nil), nil
	}}
	s, err := Start(context.Background(), failing, found)
	require.NoError(t, err)
	require.Equal(t, "postgres://found/db", s.URL)
	require.Equal(t, "second", s.Source)
	require.NoError(t, s.Stop())

	_, err = Start(context.Background(), failing)
	require.ErrorContains(t, err, "first: engine away")
	require.NotContains(t, err.Error(), "not linked")

	// Without finders the error says that Docker was not even tried.
	_, err = Start(context.Background())
	require.ErrorContains(t, err, "Docker: not linked into this program")
}

func TestStartPrefersTheEnvironment(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "postgres://example/db")
	s, err := Start(context.Background())
	require.NoError(t, err)
	require.Equal(t, "postgres://example/db", s.URL)
	require.NoError(t, s.Stop())
}

// A throwaway cluster whose owner died without Stop (a test binary killed
// by its timeout) is stopped and removed by the next StartLocal.
func TestStartLocalReapsOrphans(t *testing.T) {
	ctx := context.Background()
	orphan, err := StartLocal(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = orphan.Stop() })
	dir := filepath.Dir(orphan.DataDir)

	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	require.NoError(t, os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(dead.Process.Pid)), 0o644))

	next, err := StartLocal(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = next.Stop() })

	_, err = os.Stat(dir)
	require.True(t, os.IsNotExist(err), "the orphan's directory is gone")
	u, err := url.Parse(orphan.URL)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err == nil {
		conn.Close()
	}
	require.Error(t, err, "the orphan's server is stopped")
}
