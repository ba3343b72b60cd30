package upgrade

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// OldRelease is the full hash of the previous release (issue #14 calls it
// "today's main, commit e75b20e"): the fixture was written by its binary and
// the rolling upgrade starts from it.
const OldRelease = "e75b20e05f9ec2c2b8489129c195bc950137729e"

// Format2Release is the full hash of the last release before the
// collection ops (commit 0e2add6): its binaries run a cluster at log
// format 2 (keyspace v2, TTLs) and know nothing of format 3. The second
// rolling upgrade starts from it.
const Format2Release = "0e2add66689cdc369417b95962e6f30d0b58acb2"

// Format3Release is the full hash of the last release before
// transactions and scripts (commit 763774d, issues #15 and #16): its
// binaries run a cluster at log format 3 (collections) and know nothing of
// format 4 (kv.OpExec). The third rolling upgrade starts from it.
const Format3Release = "763774ddb2c554beac4144025507313058585401"

// ErrCommitMissing is returned by BuildCommit when the commit is not in the
// repository's history (a shallow clone, say). Tests fail on it: an upgrade
// test that silently skipped would prove nothing.
var ErrCommitMissing = errors.New("commit not in this repository's history")

// RepoRoot returns the top directory of the git work tree holding dir.
func RepoRoot(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("find the git work tree of %s (the upgrade tests build an old release from history): %w%s", dir, err, stderrOf(err))
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildCommit builds commit's ./cmd/elastickv into out. The source is
// exported with `git archive` into a temporary directory (the repository's
// work tree and worktree list are left alone) and built with -trimpath, so
// that the Go build cache serves later builds of the same commit from any
// directory: a cold build of the old release's dependencies takes about two
// minutes on the 2-core CI machine, a warm one a few seconds. The old
// release is built without -race: its own races are not what an upgrade
// test checks, and the race-built server is several times slower.
func BuildCommit(ctx context.Context, repo, commit, out string) error {
	if err := exec.CommandContext(ctx, "git", "-C", repo, "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		return fmt.Errorf("%w: %s in %s (a shallow clone? run `git fetch --unshallow`): %v", ErrCommitMissing, commit, repo, err)
	}
	src, err := os.MkdirTemp("", "elastickv-src-")
	if err != nil {
		return fmt.Errorf("build %s: %w", commit, err)
	}
	defer func() { _ = os.RemoveAll(src) }()
	archive := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", commit)
	var stderr bytes.Buffer
	archive.Stderr = &stderr
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return fmt.Errorf("git archive %s: %w", commit, err)
	}
	if err := archive.Start(); err != nil {
		return fmt.Errorf("git archive %s: %w", commit, err)
	}
	xerr := extractTar(pipe, src)
	_, _ = io.Copy(io.Discard, pipe) // let git finish even if extraction stopped early
	if werr := archive.Wait(); werr != nil {
		return fmt.Errorf("git archive %s: %w: %s", commit, werr, strings.TrimSpace(stderr.String()))
	}
	if xerr != nil {
		return fmt.Errorf("extract %s: %w", commit, xerr)
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("build %s: %w", commit, err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", absOut, "./cmd/elastickv")
	build.Dir = src
	// The old release's go.mod is its own module; a go.work around the
	// caller's checkout must not pull it in.
	build.Env = append(os.Environ(), "GOWORK=off")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -trimpath ./cmd/elastickv at %s: %w: %s", commit, err, b)
	}
	return nil
}

// extractTar writes the regular files and directories of a tar stream
// under dir. Names that would land outside dir are refused.
func extractTar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("tar entry %q escapes the target directory", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", path, err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
			}
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return fmt.Errorf("create %s: %w", path, err)
			}
			_, cerr := io.Copy(f, tr)
			if err := f.Close(); cerr == nil {
				cerr = err
			}
			if cerr != nil {
				return fmt.Errorf("write %s: %w", path, cerr)
			}
		default:
			// Symlinks and pax headers: the source tree has no symlinks the
			// build needs, and archive/tar has already applied pax headers.
		}
	}
}

// stderrOf returns ": <stderr>" for an exec.ExitError that captured it.
func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
