package pgserver

import (
	"context"
	"testing"

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

func TestStartPrefersTheEnvironment(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "postgres://example/db")
	s, err := Start(context.Background())
	require.NoError(t, err)
	require.Equal(t, "postgres://example/db", s.URL)
	require.NoError(t, s.Stop())
}
