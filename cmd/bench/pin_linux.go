package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinning splits the machine's first two CPUs for scenario 3's pass that asks
// what the writers keep when the relay does not share their cores: the
// writers (this process, whose goroutines run them, and their PostgreSQL
// backends) on CPU 0, the relay (its process and its backends) on CPU 1.
// PostgreSQL's own processes (WAL writer, checkpointer, autovacuum) stay
// free.
type pinning struct {
	b        *bench
	relayApp string // application_name of the relay's connections
	relayPid int
}

// pinCPUs are the two CPUs of the split: writers, relay.
var pinCPUs = [2]int{0, 1}

// newPinning checks that the split can be made: two CPUs, and backends that
// are processes of this machine this process may pin (a server in a
// container or elsewhere is not).
func (b *bench) newPinning(ctx context.Context, relayApp string, relayPid int) (*pinning, error) {
	if runtime.NumCPU() < 2 {
		return nil, fmt.Errorf("%d CPU: nothing to split", runtime.NumCPU())
	}
	var pid int
	if err := b.pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return nil, err
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmd), "postgres") {
		return nil, fmt.Errorf("backend %d is not a process of this machine (a server in a container or elsewhere)", pid)
	}
	if err := setAffinity(pid, allCPUs()); err != nil {
		return nil, fmt.Errorf("backend %d: %w (run as root or as the server's user)", pid, err)
	}
	return &pinning{b: b, relayApp: relayApp, relayPid: relayPid}, nil
}

// pin puts every client backend of the database and both processes where
// they belong. Run it before each measured slice: the pools open
// connections as they need them.
func (p *pinning) pin(ctx context.Context) error {
	writers, relay := cpuSet(pinCPUs[0]), cpuSet(pinCPUs[1])
	if err := setAffinity(os.Getpid(), writers); err != nil {
		return err
	}
	if err := setAffinity(p.relayPid, relay); err != nil {
		return err
	}
	return p.backends(ctx, func(app string) *unix.CPUSet {
		if app == p.relayApp {
			return relay
		}
		return writers
	})
}

// unpin frees everything pin pinned.
func (p *pinning) unpin(ctx context.Context) error {
	all := allCPUs()
	err := setAffinity(os.Getpid(), all)
	_ = setAffinity(p.relayPid, all)
	if e := p.backends(ctx, func(string) *unix.CPUSet { return all }); err == nil {
		err = e
	}
	return err
}

func (p *pinning) backends(ctx context.Context, set func(app string) *unix.CPUSet) error {
	rows, err := p.b.pool.Query(ctx, `SELECT pid, application_name FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		var app string
		if err := rows.Scan(&pid, &app); err != nil {
			return err
		}
		// A backend that ended meanwhile is no matter.
		if err := setAffinity(pid, set(app)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("backend %d: %w", pid, err)
		}
	}
	return rows.Err()
}

func cpuSet(cpus ...int) *unix.CPUSet {
	var s unix.CPUSet
	for _, c := range cpus {
		s.Set(c)
	}
	return &s
}

func allCPUs() *unix.CPUSet {
	var s unix.CPUSet
	for c := range runtime.NumCPU() {
		s.Set(c)
	}
	return &s
}

// setAffinity sets the CPUs of every thread of process pid (a thread started
// later inherits its creator's).
func setAffinity(pid int, s *unix.CPUSet) error {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil {
		return err
	}
	if len(tasks) == 0 {
		return os.ErrNotExist
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, s); err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}
