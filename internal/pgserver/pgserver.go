// Package pgserver finds or starts a PostgreSQL server for tests, benchmarks
// and the demo, in this order:
//
//  1. the URL in TEST_DATABASE_URL, then DATABASE_URL;
//  2. the finders the caller passes to Start: the tests, the benchmarks and
//     cmd/demo pass pgcontainer.Find, a container from testcontainers-go when
//     a Docker engine answers;
//  3. a throwaway cluster started from local PostgreSQL binaries (initdb and
//     pg_ctl on PATH or under /usr/lib/postgresql/*/bin).
//
// When none works, Start fails with a message that says how to provide one.
//
// This package links no container code: the relay binary imports it for
// `relay demo`, and testcontainers-go with the Docker client would be most of
// its size. The container finder lives in internal/pgserver/pgcontainer.
package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is a reachable PostgreSQL server.
type Server struct {
	// URL connects to a database on the server as a superuser-capable role.
	URL string
	// Source says where the server came from: "env TEST_DATABASE_URL",
	// "env DATABASE_URL", "local binaries" or a finder's name, such as
	// "testcontainers".
	Source string
	// DataDir is set for a local cluster; it can be restarted with Restart.
	DataDir string
	pgCtl   string
	logFile string
	// asUser prefixes pg_ctl when the cluster runs as another user.
	asUser []string
	stop   func() error
}

// NewServer is a server a Finder found or started: stop releases it (nil
// when there is nothing to release).
func NewServer(url, source string, stop func() error) *Server {
	if stop == nil {
		stop = func() error { return nil }
	}
	return &Server{URL: url, Source: source, stop: stop}
}

// A Finder finds or starts a server, or says why it cannot. Its name goes
// into Start's error.
type Finder struct {
	Name string
	Find func(ctx context.Context) (*Server, error)
}

// HowToProvide is what to tell a user when no server can be had.
const HowToProvide = `no PostgreSQL server for the tests:
  - set TEST_DATABASE_URL (or DATABASE_URL), e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, or
  - start a Docker engine so testcontainers-go can run postgres:16-alpine (the tests, cmd/bench and make demo do; the relay binary does not link it), or
  - install PostgreSQL's server binaries (Debian: apt-get install postgresql) so a throwaway cluster can be started`

// Start finds or starts a server: the environment's, then each finder's in
// order, then a local cluster. Stop it with Stop when done.
func Start(ctx context.Context, finders ...Finder) (*Server, error) {
	for _, name := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if url := os.Getenv(name); url != "" {
			return NewServer(url, "env "+name, nil), nil
		}
	}
	var tried []string
	for _, f := range finders {
		s, err := f.Find(ctx)
		if err == nil {
			return s, nil
		}
		tried = append(tried, f.Name+": "+err.Error())
	}
	if len(finders) == 0 {
		tried = append(tried, "Docker: not linked into this program")
	}
	s, err := StartLocal(ctx)
	if err == nil {
		return s, nil
	}
	tried = append(tried, "local binaries: "+err.Error())
	return nil, fmt.Errorf("%s\n(tried %s)", HowToProvide, strings.Join(tried, "; "))
}

// Stop stops a server this package started; for one named by the
// environment it does nothing.
func (s *Server) Stop() error { return s.stop() }

// binGlob is where Debian and Ubuntu install PostgreSQL's server binaries.
var binGlob = "/usr/lib/postgresql/*/bin"

// binDir finds a directory holding initdb and pg_ctl.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob(binGlob)
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin")
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// StartLocal always starts a throwaway cluster from local binaries, whatever
// the environment names: a server of the caller's own, which it may restart
// (see Restart) without disturbing anyone else's. Stop removes it. Each of
// settings ("wal_level=logical") is passed as a -c option after the
// cluster's own (fsync=off), which it may override.
func StartLocal(ctx context.Context, settings ...string) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	reapOrphans(ctx, bin)
	dir, err := os.MkdirTemp("", "bellhop-pg-")
	if err != nil {
		return nil, err
	}
	// The owner's pid lets a later start reap this cluster if the owner
	// dies without Stop (a test binary killed by its timeout or a ^C).
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// initdb refuses to run as root; run the cluster as the postgres user then.
	var asUser []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root and there is no postgres user to own the cluster")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(args ...string) error {
		full := append(append([]string{}, asUser...), args...)
		cmd := exec.CommandContext(ctx, full[0], full[1:]...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(args[0]), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=500", port, dir)
	for _, kv := range settings {
		opts += " -c " + kv
	}
	s := &Server{
		URL:     fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		Source:  "local binaries",
		DataDir: data,
		pgCtl:   filepath.Join(bin, "pg_ctl"),
		logFile: filepath.Join(dir, "log"),
		asUser:  asUser,
	}
	if err := s.ctl(ctx, "-o", opts, "-w", "start"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.stop = func() error {
		// Not ctx: it may be long gone (it only bounded the start).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := s.ctl(ctx, "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
		return err
	}
	return s, nil
}

// ownerFile, in a throwaway cluster's directory, holds the pid of the
// process that started it.
const ownerFile = "owner.pid"

// reapOrphans stops and removes throwaway clusters whose owner process is
// gone: pg_ctl daemonizes the server, so it outlives a test binary that was
// killed before its cleanup ran. Best effort: a cluster it cannot stop is
// left as it is.
func reapOrphans(ctx context.Context, bin string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "bellhop-pg-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // being set up, or not ours to judge
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		orphan := &Server{DataDir: filepath.Join(dir, "data"), pgCtl: filepath.Join(bin, "pg_ctl"), logFile: filepath.Join(dir, "log")}
		if os.Geteuid() == 0 {
			orphan.asUser = []string{"runuser", "-u", "postgres", "--"}
		}
		if _, err := os.Stat(filepath.Join(orphan.DataDir, "postmaster.pid")); err == nil {
			if orphan.ctl(ctx, "-m", "immediate", "-w", "stop") != nil {
				continue
			}
		}
		os.RemoveAll(dir)
	}
}

// ctl runs pg_ctl on the local cluster, as its owner.
func (s *Server) ctl(ctx context.Context, args ...string) error {
	full := append(append(append([]string{}, s.asUser...), s.pgCtl, "-D", s.DataDir, "-l", s.logFile), args...)
	out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", args[len(args)-1], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Restart stops a local cluster in mode ("smart", "fast" or "immediate",
// as pg_ctl's -m) and starts it again with the same options and port, and
// returns once it accepts connections. "immediate" is a crash: the start
// runs crash recovery. Servers from the environment or a container cannot
// be restarted: Restart fails for them.
func (s *Server) Restart(mode string) error {
	switch mode {
	case "smart", "fast", "immediate":
	default:
		return fmt.Errorf("restart mode %q is not smart, fast or immediate", mode)
	}
	if s.DataDir == "" || s.pgCtl == "" {
		return fmt.Errorf("only a local cluster can be restarted; this server is from %s", s.Source)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return s.ctl(ctx, "-m", mode, "-w", "-t", "90", "restart")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
