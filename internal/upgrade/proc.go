package upgrade

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Process is one running `elastickv server`, its output appended to a log
// file. Its owner stops it with Stop or Kill; Process reaps it in a
// goroutine of its own that ends when the process does.
type Process struct {
	// Bin and Args are the command line it was started with.
	Bin  string
	Args []string
	// Log is the file holding its stdout and stderr.
	Log string

	cmd    *exec.Cmd
	exited chan struct{} // closed once the process is reaped
	err    error         // Wait's result; read only after exited is closed
}

// logHeader begins the line StartProcess writes to the log before each
// process's output, so that a test can tell one run's output from an
// earlier run's on the same log.
const logHeader = "=== upgrade: starting at "

// StartProcess starts bin with args and extra environment variables, its
// output appended to logPath (a header line records the command line).
func StartProcess(bin string, args, env []string, logPath string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", logPath, err)
	}
	if _, err := fmt.Fprintf(logf, "%s%s: %s %s\n", logHeader, time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " ")); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("write log %s: %w", logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Small caches: three nodes and the test share a small machine.
	cmd.Env = append(append(os.Environ(), "ELASTICKV_PEBBLE_CACHE_MB=16"), env...)
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{Bin: bin, Args: args, Log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to timeout for a clean exit (status 0).
// A process still running then is SIGKILLed and Stop reports it: a server
// that cannot shut down cleanly is a failure the caller should see.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Running() {
		return p.exitError()
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGTERM %s: %w", p.Log, err)
	}
	select {
	case <-p.exited:
		return p.exitError()
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("server did not exit within %v of SIGTERM (killed; see %s)", timeout, p.Log)
	}
}

// Kill SIGKILLs the process and waits until it is reaped.
func (p *Process) Kill() {
	if p.Running() {
		_ = p.cmd.Process.Kill() // it may have exited meanwhile; the wait below settles it
	}
	<-p.exited
}

// exitError is nil for a clean exit, else the exit status with the log's
// name. Only valid once exited is closed.
func (p *Process) exitError() error {
	<-p.exited
	if p.err != nil {
		return fmt.Errorf("server exited: %w (see %s)", p.err, p.Log)
	}
	return nil
}

// FreePorts reserves n distinct loopback ports below the kernel's ephemeral
// range (which starts at 32768 by default), so that outgoing connections,
// which take ephemeral ports, cannot grab one between this check and the
// server's bind. The ports are released before they are returned.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	start := 20000 + os.Getpid()%1000*10
	for p := start; p < 32768 && len(ports) < n; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		lns = append(lns, l)
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("found only %d free ports of %d in [%d, 32768)", len(ports), n, start)
	}
	return ports, nil
}

// Member is one node's id and addresses.
type Member struct {
	ID        string
	RaftAddr  string
	RedisAddr string
}

// ServerArgs is the `elastickv server` command line of member self of the
// cluster peers, in flags that the OldRelease binary already had: the new
// binary must accept an old node's command line unchanged, which the
// rolling upgrade test relies on (and so proves). The metrics listener is
// off: nothing here reads it, and it would need a third port per node.
func ServerArgs(self Member, dataDir string, peers []Member) []string {
	var ps []string
	for _, m := range peers {
		ps = append(ps, m.ID+"="+m.RaftAddr)
	}
	return []string{"server",
		"--id", self.ID,
		"--data-dir", dataDir,
		"--raft-addr", self.RaftAddr,
		"--redis-addr", self.RedisAddr,
		"--metrics-addr=",
		"--peers", strings.Join(ps, ","),
	}
}

// NewClient is a go-redis client for addr that never retries on its own,
// so a test knows exactly which attempt a reply belongs to.
func NewClient(addr string) *goredis.Client {
	const timeout = 5 * time.Second
	return goredis.NewClient(&goredis.Options{
		Addr:                     addr,
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		MaxRetries:               -1,
		DialTimeout:              timeout,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		PoolSize:                 4,
		ContextTimeoutEnabled:    true,
	})
}

// WaitServing waits until the node behind cl answers a linearizable read
// (which needs a known leader, and on a follower a read index it has
// applied up to), or ctx ends. It writes nothing, so it can wait on a
// fixture whose key count is checked. It fails at once if p exits.
func WaitServing(ctx context.Context, p *Process, cl *goredis.Client) error {
	var last error
	for {
		op, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = cl.Exists(op, "upgrade:probe").Err()
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return fmt.Errorf("server exited before serving: %w", p.exitError())
		case <-ctx.Done():
			return fmt.Errorf("server at %s not serving: %w (last error: %v; see %s)", cl.Options().Addr, ctx.Err(), last, p.Log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
