// Package relayproc drives the relay binary as a child process, for the
// integration tests, the benchmark and the soak run: build it once into a
// temp folder (Remove deletes it), start `relay serve` on a free loopback
// port with the given environment, wait for /readyz, stop it with SIGTERM,
// kill it with SIGKILL, start it again on the same port, read its RSS and
// the tail of its log.
package relayproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary is a relay binary built into a temp folder of its own.
type Binary struct {
	// Path is the executable.
	Path string
	dir  string
}

// Build compiles the relay command at pkg (a go build package path such as
// "./cmd/relay" or "../cmd/relay") into a new temp folder. Remove it when
// done.
func Build(ctx context.Context, pkg string) (*Binary, error) {
	dir, err := os.MkdirTemp("", "bellhop-bin-")
	if err != nil {
		return nil, fmt.Errorf("temp folder for the relay binary: %w", err)
	}
	b := &Binary{Path: filepath.Join(dir, "relay"), dir: dir}
	out, err := exec.CommandContext(ctx, "go", "build", "-o", b.Path, pkg).CombinedOutput()
	if err != nil {
		_ = b.Remove()
		return nil, fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(out)))
	}
	return b, nil
}

// Remove deletes the binary and its folder.
func (b *Binary) Remove() error {
	if b == nil || b.dir == "" {
		return nil
	}
	return os.RemoveAll(b.dir)
}

// Run runs the binary once with args (`migrate`, say) and env added to this
// process's environment, and returns its combined output.
func (b *Binary) Run(ctx context.Context, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, b.Path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("relay %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Proc is one `relay serve`, which may be started, stopped and started
// again on the same address.
type Proc struct {
	// Name names the process in errors ("relay 1").
	Name string
	// Addr is its listen address, host:port; URL is http://Addr.
	Addr, URL string
	// ReadyTimeout bounds Start's wait for /readyz (default 30 s).
	ReadyTimeout time.Duration
	// Client asks /readyz, e.g. one that trusts the relay's certificate
	// when it serves HTTPS (then set URL to https://Addr). Defaults to a
	// plain client.
	Client *http.Client

	bin  string
	env  []string
	logs *TailBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
	err  error         // cmd's exit
}

// New prepares a relay on a free loopback port: env (DATABASE_URL,
// BELLHOP_SCHEMA, ...) is added to this process's environment, with
// BELLHOP_LISTEN_ADDR set to the port. Start starts it.
func New(b *Binary, name string, env ...string) (*Proc, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	env = append(append(os.Environ(), env...), "BELLHOP_LISTEN_ADDR="+addr)
	return &Proc{Name: name, Addr: addr, URL: "http://" + addr, bin: b.Path, env: env, logs: &TailBuffer{Max: 64 << 10}}, nil
}

// FreeAddr returns a loopback address no one listens on right now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start runs `relay serve` and returns once /readyz answers 200; it fails
// if the relay exits first or is not ready in time (and then kills it).
func (p *Proc) Start(ctx context.Context) error {
	if p.Running() {
		return fmt.Errorf("%s is already running", p.Name)
	}
	cmd := exec.Command(p.bin, "serve")
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, done, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	timeout := p.ReadyTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	hc := p.Client
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	deadline := time.Now().Add(timeout)
	for {
		if res, err := hc.Get(p.URL + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting (%v): %s", p.Name, p.exitErr(), p.Logs())
		case <-ctx.Done():
			p.Kill()
			return fmt.Errorf("%s not ready: %w", p.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("%s not ready after %s: %s", p.Name, timeout, p.Logs())
		}
	}
}

// Running says whether the process runs.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Pid is the process id of the running (or last) process; 0 before Start.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Kill ends the process with SIGKILL, no shutdown at all, and waits for it.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if done == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Stop is a graceful shutdown: SIGTERM, then a clean exit within timeout
// (30 s when 0). A non-zero exit, or none in time (then SIGKILL), is an
// error carrying the log's tail. Stopping a stopped process does nothing.
func (p *Proc) Stop(timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s still running %s after SIGTERM", p.Name, timeout)
	}
	if err := p.exitErr(); err != nil {
		return fmt.Errorf("%s did not exit cleanly: %w: %s", p.Name, err, p.Logs())
	}
	return nil
}

// Restart is Stop, then Start on the same address.
func (p *Proc) Restart(ctx context.Context) error {
	if err := p.Stop(0); err != nil {
		return err
	}
	return p.Start(ctx)
}

// Logs is the tail of what the process (every run of it) wrote.
func (p *Proc) Logs() string { return p.logs.String() }

// RSSKiB is the running process's resident set size.
func (p *Proc) RSSKiB() (int64, error) {
	if !p.Running() {
		return 0, errors.New(p.Name + " is down")
	}
	return RSSKiB(p.Pid())
}

// RSSKiB is a process's resident set size, from /proc.
func RSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// TailBuffer keeps the last Max bytes written to it (all when Max is 0).
type TailBuffer struct {
	Max int
	mu  sync.Mutex
	b   []byte
}

func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if t.Max > 0 && len(t.b) > t.Max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.Max:]...)
	}
	return len(p), nil
}

func (t *TailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
