package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// raceMarker starts every report the Go race detector writes (to the
// process's stderr, which the harnesses send to the node's log).
const raceMarker = "WARNING: DATA RACE"

// BuildServer compiles ./cmd/elastickv (by import path, so it works from
// any package directory) into out, with -race exactly when this binary has
// it (RaceEnabled): `go test -race` then race-checks the servers it runs
// too. The race-built server is several times slower; the harnesses'
// timings allow for it (see TestChaos*, which run it on two cores).
func BuildServer(ctx context.Context, out string) error {
	args := []string{"build"}
	if RaceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", out, "github.com/elastickv/elastickv/cmd/elastickv")
	cmd := exec.CommandContext(ctx, "go", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, b)
	}
	return nil
}

// RaceReports returns the race detector reports found in the files that
// match the glob patterns (node logs), each prefixed with its file's name
// and cut to a readable length. An unreadable file is reported as an error
// rather than skipped: a check that could not look must not pass.
func RaceReports(patterns ...string) ([]string, error) {
	var out []string
	for _, pat := range patterns {
		files, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("glob %q: %w", pat, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read log for race reports: %w", err)
			}
			for _, r := range raceReportsIn(b) {
				out = append(out, fmt.Sprintf("data race in %s:\n%s", f, r))
			}
		}
	}
	return out, nil
}

// raceReportsIn splits log text into the race reports it holds. A report
// runs from its marker to the detector's closing line of '=' (or to the
// end of the text if the process died mid-report), cut at maxReport bytes.
func raceReportsIn(b []byte) []string {
	const maxReport = 6000
	var out []string
	for {
		at := bytes.Index(b, []byte(raceMarker))
		if at < 0 {
			return out
		}
		b = b[at:]
		end := bytes.Index(b, []byte("\n=================="))
		if end < 0 {
			end = len(b)
		}
		r := b[:end]
		if len(r) > maxReport {
			r = append(r[:maxReport:maxReport], "\n... (cut)"...)
		}
		out = append(out, string(r))
		b = b[end:]
	}
}

// ServerOnce builds the server binary (BuildServer) once per test binary,
// into a temporary directory that Remove deletes. Test packages that start
// servers share one: a zero value is ready, and TestMain calls Remove.
type ServerOnce struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds the binary on first use and returns where it is.
func (s *ServerOnce) Path() (string, error) {
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "elastickv-bin-"); s.err != nil {
			return
		}
		s.path = filepath.Join(s.dir, "elastickv")
		s.err = BuildServer(context.Background(), s.path)
	})
	return s.path, s.err
}

// Remove deletes the binary's directory, if it was built.
func (s *ServerOnce) Remove() {
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}
