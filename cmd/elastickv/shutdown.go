package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/elastickv/elastickv/internal/node"
)

// shutdownTimeout bounds a server's shutdown: after a storage failure
// Pebble may hold a write stalled forever, and the process must exit (so
// that its supervisor restarts it) whatever a component is waiting for.
const shutdownTimeout = 10 * time.Second

// failedExitDelay is how long a node that stopped serving keeps its
// listeners up before it shuts down: health probes and scrapers then see
// /healthz fail with the reason, elastickv_raft_group_failed and INFO's
// raft_state:failed, and clients get an error that says why, instead of a
// refused connection that says nothing.
const failedExitDelay = 2 * time.Second

// serveUntilDone waits for SIGINT or SIGTERM, or for the node to stop
// serving on its own (a storage failure: see node.Node.Failed), then shuts
// the node down within shutdownTimeout; a second signal cuts that short.
// A node that stopped on its own makes the result an error, so the process
// exits non-zero and is restarted: it recovers from its WAL.
func serveUntilDone(n *node.Node, log *slog.Logger) error {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	var failure error
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case <-n.Failed():
		failure = n.Err()
		log.Error("node stopped serving; exiting so that a supervisor restarts it", "err", failure, "in", failedExitDelay)
		select {
		case <-time.After(failedExitDelay):
		case s := <-sig:
			log.Info("shutting down", "signal", s.String())
		}
	}
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	timer := time.NewTimer(shutdownTimeout)
	defer timer.Stop()
	var closeErr error
	select {
	case closeErr = <-done:
	case s := <-sig:
		closeErr = fmt.Errorf("shutdown cut short by a second %s", s)
	case <-timer.C:
		closeErr = fmt.Errorf("shutdown did not finish within %v", shutdownTimeout)
		log.Error("shutdown timed out; exiting anyway", "timeout", shutdownTimeout)
	}
	if failure != nil {
		// The close error follows from the failure; the failure is the news.
		return fmt.Errorf("node stopped serving: %w", failure)
	}
	return closeErr
}
