package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bellhophq/bellhop/migrations"
)

// jwtSecret signs every token the harness mints; the relay gets the same.
const jwtSecret = "bellhop-bench-secret-0123456789abcdef"

// relayProc is one `bin/relay serve` child process on its own schema.
type relayProc struct {
	schema string
	addr   string // host:port
	mode   string
	cmd    *exec.Cmd
	logs   *syncBuffer
	pool   *pgxpool.Pool // the harness's pool (for cleanup)
}

var schemaCounter int

// newSchemaName returns a schema name unique to this harness run.
func newSchemaName() string {
	schemaCounter++
	return fmt.Sprintf("bench_%d_%d", os.Getpid(), schemaCounter)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (b *bench) relayEnv(schema, mode, addr string, extra []string) []string {
	env := append(os.Environ(),
		"DATABASE_URL="+b.dbURL,
		"BELLHOP_SCHEMA="+schema,
		"BELLHOP_JWT_SECRET="+jwtSecret,
		"BELLHOP_LISTEN_ADDR="+addr,
		"BELLHOP_WAKE_MODE="+mode,
		"BELLHOP_MAX_STREAMS=100000",
		"BELLHOP_LOG_LEVEL=warn",
	)
	return append(env, extra...)
}

// migrateSchema creates a fresh schema with `relay migrate`.
func (b *bench) migrateSchema(ctx context.Context) (string, error) {
	schema := newSchemaName()
	cmd := exec.CommandContext(ctx, b.relayBin, "migrate")
	cmd.Env = b.relayEnv(schema, "adaptive", "127.0.0.1:0", nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("relay migrate: %v: %s", err, out)
	}
	return schema, nil
}

// startRelay serves schema (fresh when empty) in mode; it returns once
// /readyz answers 200.
func (b *bench) startRelay(ctx context.Context, schema, mode string, extra ...string) (*relayProc, error) {
	if schema == "" {
		var err error
		if schema, err = b.migrateSchema(ctx); err != nil {
			return nil, err
		}
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &relayProc{schema: schema, addr: addr, mode: mode, logs: &syncBuffer{}, pool: b.pool}
	p.cmd = exec.Command(b.relayBin, "serve")
	p.cmd.Env = b.relayEnv(schema, mode, addr, extra)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("relay not ready after 30s: %s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rssKiB is the relay's resident set size from /proc.
func (p *relayProc) rssKiB() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// stop ends the relay (SIGTERM, then SIGKILL) and drops its schema.
func (p *relayProc) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
	}
	dropSchema(p.pool, p.schema)
}

func dropSchema(pool *pgxpool.Pool, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	// Its writer role belongs to the whole server.
	_, _ = pool.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{migrations.WriterRole(schema)}.Sanitize())
}

// warnings returns the relay's log lines at warn or above (it logs nothing
// else at BELLHOP_LOG_LEVEL=warn).
func (p *relayProc) warnings() string {
	s := strings.TrimSpace(p.logs.String())
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
