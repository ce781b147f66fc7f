package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// relayBinary builds cmd/relay once per test run.
func relayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bellhop-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "relay")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/relay").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build relay: %v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// relayProcess is `relay serve` running as a child process.
type relayProcess struct {
	cmd  *exec.Cmd
	URL  string
	addr string
	env  []string
	log  *os.File
}

// startProcess runs `relay serve` on a free port against b's schema.
func (b *testBundle) startProcess(t *testing.T, extraEnv ...string) *relayProcess {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	p := &relayProcess{addr: addr, URL: "http://" + addr, env: append([]string{
		"DATABASE_URL=" + b.db.URL,
		"BELLHOP_SCHEMA=" + b.db.Schema,
		"BELLHOP_JWT_SECRET=" + secret,
		"BELLHOP_LISTEN_ADDR=" + addr,
		"BELLHOP_DB_MAX_CONNS=6",
		"BELLHOP_LOG_LEVEL=warn",
	}, extraEnv...)}
	p.start(t)
	return p
}

func (p *relayProcess) start(t *testing.T) {
	t.Helper()
	log, err := os.CreateTemp("", "relay-*.log")
	require.NoError(t, err)
	p.log = log
	p.cmd = exec.Command(relayBinary(t), "serve")
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	require.NoError(t, p.cmd.Start())
	cmd := p.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("relay log:\n%s", b)
		}
		os.Remove(log.Name())
	})
	waitReady(t, p.URL)
}

// kill ends the relay with SIGKILL: no graceful shutdown at all.
func (p *relayProcess) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	_ = p.cmd.Wait()
}

// stop ends the relay with SIGTERM and waits: a graceful shutdown.
func (p *relayProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.cmd.Wait(), "relay did not exit cleanly")
}
