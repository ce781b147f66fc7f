package integration

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bellhophq/bellhop/internal/relayproc"
)

var (
	buildOnce sync.Once
	relayBin  *relayproc.Binary // removed by TestMain
	buildErr  error
)

// relayBinary builds cmd/relay once per test run.
func relayBinary(t *testing.T) *relayproc.Binary {
	t.Helper()
	buildOnce.Do(func() {
		relayBin, buildErr = relayproc.Build(context.Background(), "../cmd/relay")
	})
	require.NoError(t, buildErr)
	return relayBin
}

// relayProcess is `relay serve` running as a child process.
type relayProcess struct {
	*relayproc.Proc
}

// startProcess runs `relay serve` on a free port against b's schema.
func (b *testBundle) startProcess(t *testing.T, extraEnv ...string) *relayProcess {
	t.Helper()
	p, err := relayproc.New(relayBinary(t), "relay", append([]string{
		"DATABASE_URL=" + b.db.URL,
		"BELLHOP_SCHEMA=" + b.db.Schema,
		"BELLHOP_JWT_SECRET=" + secret,
		"BELLHOP_DB_MAX_CONNS=6",
		"BELLHOP_LOG_LEVEL=warn",
	}, extraEnv...)...)
	require.NoError(t, err)
	checkRelay(t, p.URL)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("relay log (tail):\n%s", p.Logs())
		}
	})
	rp := &relayProcess{Proc: p}
	rp.start(t)
	return rp
}

// start starts the relay (again) and waits until it is ready.
func (p *relayProcess) start(t *testing.T) {
	t.Helper()
	require.NoError(t, p.Start(context.Background()))
}

// kill ends the relay with SIGKILL: no graceful shutdown at all.
func (p *relayProcess) kill(t *testing.T) {
	t.Helper()
	require.True(t, p.Running(), "the relay to kill is not running")
	p.Kill()
}

// stop ends the relay with SIGTERM and waits: a graceful shutdown.
func (p *relayProcess) stop(t *testing.T) {
	t.Helper()
	require.True(t, p.Running(), "the relay to stop is not running")
	require.NoError(t, p.Stop(0), "relay did not exit cleanly")
}
