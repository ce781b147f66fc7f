package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinning splits two CPUs for scenario 3's pass that asks what the writers
// keep when the relay does not share their cores: the writers (this
// process, whose goroutines run them, and their PostgreSQL backends) on the
// first CPU this process may use, the relay (its process and its backends)
// on the second. PostgreSQL's own processes (WAL writer, checkpointer,
// autovacuum) stay free.
type pinning struct {
	b        *bench
	relayApp string // application_name of the relay's connections
	relayPid int
	writers  *unix.CPUSet
	relay    *unix.CPUSet
	// orig is each pinned process's CPUs before, for unpin.
	orig map[int]unix.CPUSet
}

// newPinning checks that the split can be made: two CPUs, and backends that
// are processes of this machine this process may pin (a server in a
// container or elsewhere is not).
func (b *bench) newPinning(ctx context.Context, relayApp string, relayPid int) (*pinning, error) {
	var mine unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		return nil, err
	}
	var cpus []int
	for c := 0; c < len(mine)*64 && len(cpus) < 2; c++ {
		if mine.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		return nil, fmt.Errorf("%d CPU to run on: nothing to split", mine.Count())
	}
	p := &pinning{b: b, relayApp: relayApp, relayPid: relayPid,
		writers: cpuSet(cpus[0]), relay: cpuSet(cpus[1]), orig: map[int]unix.CPUSet{}}
	var pid int
	if err := b.pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return nil, err
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmd), "postgres") {
		return nil, fmt.Errorf("backend %d is not a process of this machine (a server in a container or elsewhere)", pid)
	}
	// A trial on this backend: its server may not let it run there, or this
	// process may not pin it.
	if err = p.set(pid, p.writers); err == nil {
		err = p.set(pid, p.relay)
	}
	if o, ok := p.orig[pid]; ok {
		if e := setAffinity(pid, &o); err == nil {
			err = e
		}
	}
	if err != nil {
		return nil, fmt.Errorf("backend %d: %w (run as root or as the server's user)", pid, err)
	}
	return p, nil
}

// pin puts every client backend of the database and both processes where
// they belong. Run it before each measured slice: the pools open
// connections as they need them.
func (p *pinning) pin(ctx context.Context) error {
	if err := p.set(os.Getpid(), p.writers); err != nil {
		return err
	}
	if err := p.set(p.relayPid, p.relay); err != nil {
		return err
	}
	return p.backends(ctx, func(app string) *unix.CPUSet {
		if app == p.relayApp {
			return p.relay
		}
		return p.writers
	})
}

// unpin gives every process pin pinned its CPUs back.
func (p *pinning) unpin(context.Context) error {
	var err error
	for pid, s := range p.orig {
		// A backend or a relay that ended meanwhile is no matter.
		if e := setAffinity(pid, &s); e != nil && !os.IsNotExist(e) && err == nil {
			err = fmt.Errorf("process %d: %w", pid, e)
		}
	}
	return err
}

// set pins process pid to s (nil: only records its CPUs), recording its
// CPUs first.
func (p *pinning) set(pid int, s *unix.CPUSet) error {
	if _, ok := p.orig[pid]; !ok {
		var o unix.CPUSet
		if err := unix.SchedGetaffinity(pid, &o); err != nil {
			if err == unix.ESRCH {
				return os.ErrNotExist
			}
			return err
		}
		p.orig[pid] = o
	}
	if s == nil {
		return nil
	}
	return setAffinity(pid, s)
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
		if err := p.set(pid, set(app)); err != nil && !os.IsNotExist(err) {
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
