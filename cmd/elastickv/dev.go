package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// devNode is one child server process of a dev cluster.
type devNode struct {
	name                 string
	redis, raft, metrics string
	args                 []string
	cmd                  *exec.Cmd
	logPath              string
	exited               chan struct{}
}

func runDev(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fs.String("dir", filepath.Join("data", "dev"), "directory holding every node's data, logs and command lines")
	nodes := fs.Int("nodes", 3, "number of nodes")
	offset := fs.Int("port-offset", 0, "added to every port (Redis 638i, Raft 700i, metrics 910i)")
	// Arguments after "--" go to every server, e.g. -- --snapshot-count 500.
	var extra []string
	for i, a := range args {
		if a == "--" {
			args, extra = args[:i], args[i+1:]
			break
		}
	}
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 9 {
		return usageErr(fmt.Errorf("--nodes must be between 1 and 9"))
	}
	if *offset < 0 || *offset > 50000 {
		return usageErr(fmt.Errorf("--port-offset must be between 0 and 50000"))
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("resolve --dir: %w", err)
	}
	if err := os.MkdirAll(absDir, 0o750); err != nil {
		return fmt.Errorf("create %s: %w", absDir, err)
	}

	ns := make([]*devNode, *nodes)
	var peers []string
	for i := range ns {
		k := i + 1
		n := &devNode{
			name:    fmt.Sprintf("n%d", k),
			redis:   fmt.Sprintf("127.0.0.1:%d", 6380+k+*offset),
			raft:    fmt.Sprintf("127.0.0.1:%d", 7000+k+*offset),
			metrics: fmt.Sprintf("127.0.0.1:%d", 9100+k+*offset),
			exited:  make(chan struct{}),
		}
		n.logPath = filepath.Join(absDir, n.name+".log")
		ns[i] = n
		peers = append(peers, n.name+"="+n.raft)
	}
	for _, n := range ns {
		n.args = []string{"server", "--id", n.name, "--data-dir", filepath.Join(absDir, n.name),
			"--raft-addr", n.raft, "--redis-addr", n.redis, "--metrics-addr", n.metrics,
			"--peers", strings.Join(peers, ",")}
		n.args = append(n.args, extra...)
		line := shellQuote(append([]string{self}, n.args...))
		if err := os.WriteFile(filepath.Join(absDir, n.name+".cmd"), []byte(line+"\n"), 0o640); err != nil {
			return fmt.Errorf("write command line of %s: %w", n.name, err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	defer func() {
		stopChildren(ns)
		wg.Wait()
	}()
	for _, n := range ns {
		if err := n.start(self, &wg, stderr); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "elastickv dev: starting %d nodes in %s\n", len(ns), absDir)
	if err := waitForLeader(ctx, ns, 30*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "elastickv dev: cluster is up")
	for _, n := range ns {
		fmt.Fprintf(stdout, "  %s  redis %s  raft %s  metrics http://%s/metrics  log %s\n", n.name, n.redis, n.raft, n.metrics, n.logPath)
		fmt.Fprintf(stdout, "      restart with: %s\n", shellQuote(append([]string{self}, n.args...)))
	}
	fmt.Fprintf(stdout, "Try: redis-cli -p %s set hello world\nPress Ctrl-C to stop the cluster.\n", portOf(ns[0].redis))
	<-ctx.Done()
	fmt.Fprintln(stdout, "elastickv dev: stopping")
	return nil
}

func (n *devNode) start(self string, wg *sync.WaitGroup, stderr io.Writer) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", n.name, err)
	}
	n.cmd = exec.Command(self, n.args...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C in the terminal reaches dev only, which
	// then stops the children in order.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	pidFile := strings.TrimSuffix(n.logPath, ".log") + ".pid"
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", n.cmd.Process.Pid)), 0o640); err != nil {
		fmt.Fprintf(stderr, "elastickv dev: write %s: %v\n", pidFile, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := n.cmd.Wait()
		_ = logf.Close()
		close(n.exited)
		// A dead child is not restarted: the others keep running, and the
		// operator restarts it with its command line.
		fmt.Fprintf(stderr, "elastickv dev: %s exited (%v); restart it with the command in %s\n", n.name, err, strings.TrimSuffix(n.logPath, ".log")+".cmd")
	}()
	return nil
}

func stopChildren(ns []*devNode) {
	for _, n := range ns {
		if n.cmd != nil && n.cmd.Process != nil {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(10 * time.Second)
	for _, n := range ns {
		if n.cmd == nil || n.cmd.Process == nil {
			continue
		}
		select {
		case <-n.exited:
		case <-deadline:
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	}
}

// waitForLeader polls every node's /readyz until one reports ready.
func waitForLeader(ctx context.Context, ns []*devNode, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		for _, n := range ns {
			resp, err := client.Get("http://" + n.metrics + "/readyz")
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("no leader elected within %v; see the node logs", limit)
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func portOf(addr string) string {
	_, p, _ := strings.Cut(addr, ":")
	return p
}

func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
