package pgcontainer

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Without a Docker engine the finder says so, and Start goes on to the next
// source (here the environment's URL comes first anyway).
func TestFinderWithoutDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	_, err := Finder.Find(context.Background())
	require.Error(t, err)

	t.Setenv("TEST_DATABASE_URL", "postgres://example/db")
	s, err := Start(context.Background())
	require.NoError(t, err)
	require.Equal(t, "env TEST_DATABASE_URL", s.Source)
	require.NoError(t, s.Stop())
}
