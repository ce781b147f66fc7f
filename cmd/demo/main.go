// Command demo is `make demo`: it finds or starts a PostgreSQL and runs
// `relay demo` on it.
//
// The database is DATABASE_URL when set; else TEST_DATABASE_URL; else a
// container from testcontainers-go when a Docker engine answers; else a
// throwaway cluster from local PostgreSQL binaries. A server it started is
// stopped when the demo ends. The relay binary cannot look in Docker
// itself: testcontainers-go and the Docker client would be most of its
// size, so the container finder lives here and in the tests.
//
//	go run ./cmd/demo [-relay bin/relay] [-addr 127.0.0.1:8080] [-schema bellhop_demo]
//
// It checks that it can listen on -addr (make demo's DEMO_ADDR) before
// anything else, builds the relay (-relay is relative to the working
// directory) and runs it as a child process with DATABASE_URL set; a SIGINT
// or SIGTERM is passed on, and a demo stopped by one exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bellhophq/bellhop/internal/pgserver/pgcontainer"
	demopage "github.com/bellhophq/bellhop/relay/demo"
)

func main() {
	relayBin := flag.String("relay", "bin/relay", "where to build the relay binary")
	addr := flag.String("addr", "127.0.0.1:8080", "where the demo listens: relay demo's --addr (make demo DEMO_ADDR=...)")
	schema := flag.String("schema", "", "relay demo's --schema (default bellhop_demo)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected arguments %q (the flags are -relay, -addr and -schema)\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Stderr, *relayBin, *addr, *schema)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
	}
	if err != nil && code == 0 || code < 0 {
		code = 1
	}
	os.Exit(code)
}

func run(ctx context.Context, stderr io.Writer, relayBin, addr, schema string) (int, error) {
	// The address before the build and the database, so a taken one fails
	// at once. The relay listens on it again in a moment: a listener cannot
	// be handed to another process simply.
	ln, err := demopage.Listen(addr, "DEMO_ADDR (make demo) or -addr")
	if err != nil {
		return 1, err
	}
	ln.Close()
	args := []string{"--addr", addr}
	if schema != "" {
		args = append(args, "--schema", schema)
	}

	// Built from the module's root, wherever in the repository this runs.
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return 1, fmt.Errorf("run this inside the Bellhop repository (go env GOMOD names no go.mod): %v", err)
	}
	bin, err := filepath.Abs(relayBin)
	if err != nil {
		return 1, err
	}
	fmt.Fprintf(stderr, "demo: building %s ...\n", relayBin)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/relay")
	build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return 1, fmt.Errorf("go build ./cmd/relay: %w", err)
	}

	env := os.Environ()
	if os.Getenv("DATABASE_URL") == "" {
		fmt.Fprintln(stderr, "demo: DATABASE_URL is not set; finding a PostgreSQL (TEST_DATABASE_URL, Docker, else local binaries)...")
		// Not ctx: the server must outlive a ^C until the relay has stopped.
		pg, err := pgcontainer.Start(context.WithoutCancel(ctx))
		if err != nil {
			return 1, err
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				fmt.Fprintln(stderr, "demo: stopping PostgreSQL:", err)
			}
		}()
		fmt.Fprintf(stderr, "demo: PostgreSQL from %s\n", pg.Source)
		if u, err := url.Parse(pg.URL); err == nil {
			if _, ok := u.User.Password(); ok {
				// The relay's banner hides the password and reads it
				// from $DATABASE_URL, which this shell does not have.
				fmt.Fprintf(stderr, "demo: for the psql line below: export DATABASE_URL='%s'\n", pg.URL)
			}
		}
		env = append(env, "DATABASE_URL="+pg.URL)
	}

	cmd := exec.CommandContext(ctx, bin, append([]string{"demo"}, args...)...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, stderr
	// On SIGINT or SIGTERM the relay gets SIGTERM and shuts down as it
	// does on its own (it ends streams and drains within 20 s).
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case ctx.Err() != nil && cmd.ProcessState != nil && cmd.ProcessState.Success():
		return 0, nil
	case errors.As(err, &exit):
		// The relay said why on its stderr.
		return exit.ExitCode(), nil
	default:
		return 1, fmt.Errorf("run %s demo: %w", relayBin, err)
	}
}
