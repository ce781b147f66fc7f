package main

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/bellhophq/bellhop/internal/sqlq"
)

func (s *soak) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	fmt.Println("soak: PROBLEM:", msg)
	s.problems = append(s.problems, msg)
}

// inject runs one fault. Process faults hit replicas 1.. only.
func (s *soak) inject(ctx context.Context, kind string) error {
	s.mu.Lock()
	s.faults[kind]++
	s.mu.Unlock()
	switch kind {
	case "listener kill":
		channels := []string{`listen "` + sqlq.Channel(s.schema, "relayed") + `"`, `listen "` + sqlq.Channel(s.schema, "pending") + `"`}
		tag, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND query = ANY ($1)`, channels)
		if err != nil {
			return err
		}
		fmt.Printf("       fault: terminated %d LISTEN connections\n", tag.RowsAffected())
		return nil
	case "SIGKILL + restart", "graceful restart":
		p := s.procs[1+mrand.IntN(len(s.procs)-1)]
		if !p.Running() {
			return p.Start(ctx)
		}
		if kind == "SIGKILL + restart" {
			p.Kill()
		} else if err := p.Stop(0); err != nil {
			s.note("%s did not shut down cleanly: %v", p.Name, err)
		}
		time.Sleep(time.Duration(200+mrand.IntN(800)) * time.Millisecond)
		fmt.Printf("       fault: %s of %s\n", kind, p.Name)
		return p.Start(ctx)
	}
	return fmt.Errorf("unknown fault %q", kind)
}

func (s *soak) sampleRSS() {
	for i, p := range s.procs {
		if kib, err := p.RSSKiB(); err == nil {
			s.rss[i] = append(s.rss[i], kib)
		}
	}
}
