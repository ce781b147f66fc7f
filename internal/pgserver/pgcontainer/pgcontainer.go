// Package pgcontainer is pgserver's Docker finder: a PostgreSQL container
// from testcontainers-go. It is a package of its own so that only the
// programs that want it link testcontainers-go and the Docker client (the
// tests' harness, cmd/bench and cmd/demo); the relay binary does not.
package pgcontainer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/bellhophq/bellhop/internal/pgserver"
)

// Finder starts a postgres:16-alpine container when a Docker engine answers.
var Finder = pgserver.Finder{Name: "testcontainers", Find: startContainer}

// Start is pgserver.Start with the container finder: the environment's
// server, else a container, else a cluster from local binaries.
func Start(ctx context.Context) (*pgserver.Server, error) {
	return pgserver.Start(ctx, Finder)
}

func startContainer(ctx context.Context) (*pgserver.Server, error) {
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			return nil, errors.New("no Docker engine (no DOCKER_HOST, no /var/run/docker.sock)")
		}
	}
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, err
	}
	defer provider.Close()
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := provider.Health(hctx); err != nil {
		return nil, fmt.Errorf("docker engine does not answer: %w", err)
	}
	ctr, err := postgres.Run(ctx, "postgres:16-alpine",
		postgres.WithDatabase("bellhop"),
		postgres.WithUsername("postgres"),
		postgres.WithPassword("postgres"),
		testcontainers.WithWaitStrategy(wait.ForLog("database system is ready to accept connections").
			WithOccurrence(2).WithStartupTimeout(60*time.Second)),
	)
	if err != nil {
		return nil, err
	}
	url, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, err
	}
	return pgserver.NewServer(url, "testcontainers", func() error { return testcontainers.TerminateContainer(ctr) }), nil
}
