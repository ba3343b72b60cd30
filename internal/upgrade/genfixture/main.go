// Command genfixture regenerates internal/upgrade/testdata/e75b20e: a data
// directory written by the previous release's binary (upgrade.OldRelease)
// and golden.txt, every key and value in it. scripts/gen-upgrade-fixture.sh
// runs it; see the upgrade package for what the fixture is for.
//
// How the directory is made, and why:
//  1. A single-node cluster of the old binary takes phase A's writes and is
//     stopped with SIGTERM; its Pebble directory (kv/) is copied aside.
//  2. It restarts and takes phase B's writes (overwrites, deletes, appends,
//     increments and new keys), and is stopped again.
//  3. kv/ is replaced by the copy from step 1. The Raft WAL now holds
//     phase B's entries and Pebble does not: the state a node is in after a
//     power loss in ELASTICKV_FSM_SYNC_MODE=nosync (Pebble is synced only
//     before the log is compacted), or within the ~10 ms sync window of the
//     default mode. A process exit alone cannot make it, since Pebble's own
//     WAL is written (unsynced) on every commit, and nosync only skips the
//     fsync. The old binary runs in nosync mode throughout. The binary that
//     opens the fixture must replay phase B from the Raft WAL.
//  4. The WAL's preallocated zero tail is trimmed (upgrade.TrimWALSegments)
//     and the result copied the way git will check it out (no empty
//     directories).
//  5. The old binary is started on that copy and must serve exactly the
//     model's keys; its DEBUG DIGEST is recorded.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elastickv/elastickv/internal/upgrade"
)

func main() {
	out := flag.String("out", filepath.Join("internal", "upgrade", "testdata", "e75b20e"), "fixture directory to (re)write")
	bin := flag.String("bin", "", "the old release's binary; empty builds commit "+upgrade.OldRelease+" from this repository's history")
	flag.Parse()
	if err := run(*out, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "genfixture:", err)
		os.Exit(1)
	}
}

// model is what the keyspace must hold after the writes made so far.
type model struct {
	vals    map[string]string
	fromWAL map[string]bool // last written in phase B
	absent  map[string]bool
	phaseB  bool
}

func (m *model) set(k, v string) {
	m.vals[k] = v
	delete(m.absent, k)
	m.fromWAL[k] = m.phaseB
}

func (m *model) del(k string) {
	delete(m.vals, k)
	delete(m.fromWAL, k)
	m.absent[k] = true
}

func run(out, bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	work, err := os.MkdirTemp("", "elastickv-fixture-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	if bin == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		repo, err := upgrade.RepoRoot(ctx, wd)
		if err != nil {
			return err
		}
		bin = filepath.Join(work, "elastickv-old")
		began := time.Now()
		if err := upgrade.BuildCommit(ctx, repo, upgrade.OldRelease, bin); err != nil {
			return err
		}
		slog.Info("built the old release", "commit", upgrade.OldRelease, "took", time.Since(began).Round(time.Millisecond))
	}
	ports, err := upgrade.FreePorts(2)
	if err != nil {
		return err
	}
	self := upgrade.Member{ID: "n1", RaftAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), RedisAddr: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	data := filepath.Join(work, "data")
	logPath := filepath.Join(work, "n1.log")
	args := upgrade.ServerArgs(self, data, []upgrade.Member{self})
	m := &model{vals: map[string]string{}, fromWAL: map[string]bool{}, absent: map[string]bool{}}

	// Phase A, then a clean stop and a copy of Pebble as it is now.
	pebbleApplied, err := session(ctx, bin, args, logPath, self.RedisAddr, func(c *goredis.Client) error { return phaseA(ctx, c, m) })
	if err != nil {
		return fmt.Errorf("phase A: %w (node log %s)", err, dump(logPath))
	}
	kvA := filepath.Join(work, "kv-after-phase-a")
	if err := upgrade.CopyTree(filepath.Join(data, "kv"), kvA); err != nil {
		return err
	}
	// Phase B.
	m.phaseB = true
	walLast, err := session(ctx, bin, args, logPath, self.RedisAddr, func(c *goredis.Client) error { return phaseB(ctx, c, m) })
	if err != nil {
		return fmt.Errorf("phase B: %w (node log %s)", err, dump(logPath))
	}
	if walLast <= pebbleApplied {
		return fmt.Errorf("phase B applied up to %d, not past phase A's %d", walLast, pebbleApplied)
	}
	// Pebble back to phase A: phase B lives only in the Raft WAL.
	if err := os.RemoveAll(filepath.Join(data, "kv")); err != nil {
		return fmt.Errorf("reset kv: %w", err)
	}
	if err := upgrade.CopyTree(kvA, filepath.Join(data, "kv")); err != nil {
		return err
	}
	if err := upgrade.TrimWALSegments(filepath.Join(data, "raft", "wal")); err != nil {
		return err
	}
	fixtureData := filepath.Join(out, "data")
	if err := os.RemoveAll(fixtureData); err != nil {
		return fmt.Errorf("clear %s: %w", fixtureData, err)
	}
	if err := upgrade.CopyTree(data, fixtureData); err != nil {
		return err
	}

	// The old binary must read the checked-in directory back exactly.
	verify := filepath.Join(work, "verify")
	if err := upgrade.CopyTree(fixtureData, verify); err != nil {
		return err
	}
	vargs := upgrade.ServerArgs(self, verify, []upgrade.Member{self})
	g := &upgrade.Golden{PebbleApplied: pebbleApplied, WALLast: walLast}
	if _, err := session(ctx, bin, vargs, logPath, self.RedisAddr, func(c *goredis.Client) error {
		var err error
		g.OldDigest, err = verifyModel(ctx, c, m)
		return err
	}); err != nil {
		return fmt.Errorf("verify with the old binary: %w (node log %s)", err, dump(logPath))
	}
	for k, v := range m.vals {
		g.Keys = append(g.Keys, upgrade.KV{Key: []byte(k), Value: []byte(v), FromWAL: m.fromWAL[k]})
	}
	for k := range m.absent {
		g.Absent = append(g.Absent, []byte(k))
	}
	f, err := os.Create(filepath.Join(out, "golden.txt"))
	if err != nil {
		return fmt.Errorf("golden: %w", err)
	}
	if _, err := g.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("golden: %w", err)
	}
	slog.Info("fixture written", "dir", out, "keys", len(g.Keys), "absent", len(g.Absent),
		"pebble_applied", pebbleApplied, "wal_last", walLast, "old_digest", g.OldDigest)
	return nil
}

// session starts the old binary, runs fn against it once it serves, reads
// its applied index, and stops it with SIGTERM, which must exit cleanly.
func session(ctx context.Context, bin string, args []string, logPath, addr string, fn func(*goredis.Client) error) (uint64, error) {
	// nosync: the mode in which Pebble may lag the Raft WAL by more than
	// ~10 ms after a power loss, the state step 3 makes.
	p, err := upgrade.StartProcess(bin, args, []string{"ELASTICKV_FSM_SYNC_MODE=nosync"}, logPath)
	if err != nil {
		return 0, err
	}
	defer p.Kill()
	c := upgrade.NewClient(addr)
	defer func() { _ = c.Close() }()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := upgrade.WaitServing(wctx, p, c); err != nil {
		return 0, err
	}
	if err := fn(c); err != nil {
		return 0, err
	}
	applied, err := appliedIndex(ctx, c)
	if err != nil {
		return 0, err
	}
	return applied, p.Stop(30 * time.Second)
}

// appliedIndex reads the applied index from DEBUG DIGEST ("applied:hex").
func appliedIndex(ctx context.Context, c *goredis.Client) (uint64, error) {
	d, err := c.Do(ctx, "debug", "digest").Text()
	if err != nil {
		return 0, fmt.Errorf("DEBUG DIGEST: %w", err)
	}
	a, _, ok := strings.Cut(d, ":")
	if !ok {
		return 0, fmt.Errorf("DEBUG DIGEST answered %q, want applied:digest", d)
	}
	n, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("DEBUG DIGEST answered %q: %w", d, err)
	}
	return n, nil
}

// pattern is n bytes cycling through every byte value from seed.
func pattern(n int, seed byte) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return string(b)
}

// want checks a reply against its expected value.
func want[T comparable](what string, got T, err error, exp T) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if got != exp {
		return fmt.Errorf("%s: got %v, want %v", what, got, exp)
	}
	return nil
}

func setAll(ctx context.Context, c *goredis.Client, m *model, kvs map[string]string) error {
	keys := make([]string, 0, len(kvs))
	for k := range kvs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the log is then the same on every regeneration
	for _, k := range keys {
		if err := c.Set(ctx, k, kvs[k], 0).Err(); err != nil {
			return fmt.Errorf("SET %q: %w", k, err)
		}
		m.set(k, kvs[k])
	}
	return nil
}

// phaseA writes a small but varied keyspace: plain keys, an empty value,
// binary keys and values, values at and around the 1 KiB chunking
// threshold of keyspace v2, a 20 KiB value, hash-tagged keys, an APPENDed
// log, counters, MSET, SETNX, GETSET and deleted keys.
func phaseA(ctx context.Context, c *goredis.Client, m *model) error {
	kvs := map[string]string{
		"empty":           "",
		"bin:nul-ff":      "\x00\xff\x00a\xffb\x00",
		"bin\x00key\xff":  "binary key",
		"\xff":            "key of one 0xff byte",
		"size:1023":       pattern(1023, 1),
		"size:1024":       pattern(1024, 2),
		"size:1025":       pattern(1025, 3),
		"size:20480":      pattern(20480, 4),
		"grow":            pattern(1000, 5),
		"{user1}.a":       "tagged a",
		"{user1}.b":       "tagged b",
		"{user1}.c":       "tagged c",
		"ключ:é":          "значение ✓",
		"over":            "first",
		"gone":            "deleted later",
		"gone:getdel":     "deleted by GETDEL",
		"big:number":      "9223372036854775806",
		"space key\r\n\t": "whitespace in the key",
	}
	for i := range 20 {
		kvs[fmt.Sprintf("k:%02d", i)] = fmt.Sprintf("v-%02d", i)
	}
	if err := setAll(ctx, c, m, kvs); err != nil {
		return err
	}
	if err := c.Set(ctx, "over", "second", 0).Err(); err != nil {
		return fmt.Errorf("SET over: %w", err)
	}
	m.set("over", "second")
	log := ""
	for i := range 60 {
		tok := fmt.Sprintf("entry-%03d;", i)
		log += tok
		n, err := c.Append(ctx, "log", tok).Result()
		if err := want("APPEND log", n, err, int64(len(log))); err != nil {
			return err
		}
	}
	m.set("log", log)
	for i := 1; i <= 37; i++ {
		n, err := c.Incr(ctx, "counter").Result()
		if err := want("INCR counter", n, err, int64(i)); err != nil {
			return err
		}
	}
	m.set("counter", "37")
	n, err := c.DecrBy(ctx, "counter:neg", 5).Result()
	if err := want("DECRBY counter:neg", n, err, -5); err != nil {
		return err
	}
	n, err = c.IncrBy(ctx, "counter:neg", 2).Result()
	if err := want("INCRBY counter:neg", n, err, -3); err != nil {
		return err
	}
	m.set("counter:neg", "-3")
	n, err = c.Incr(ctx, "big:number").Result()
	if err := want("INCR big:number", n, err, 9223372036854775807); err != nil {
		return err
	}
	m.set("big:number", "9223372036854775807")
	var pairs []any
	for i := 1; i <= 8; i++ {
		k, v := fmt.Sprintf("m:%d", i), fmt.Sprintf("mset value %d", i)
		pairs = append(pairs, k, v)
		m.set(k, v)
	}
	if err := c.MSet(ctx, pairs...).Err(); err != nil {
		return fmt.Errorf("MSET: %w", err)
	}
	ok, err := c.SetNX(ctx, "nx", "first", 0).Result()
	if err := want("SETNX nx", ok, err, true); err != nil {
		return err
	}
	ok, err = c.SetNX(ctx, "nx", "second", 0).Result()
	if err := want("SETNX nx again", ok, err, false); err != nil {
		return err
	}
	m.set("nx", "first")
	if err := c.Set(ctx, "gs", "old", 0).Err(); err != nil {
		return fmt.Errorf("SET gs: %w", err)
	}
	old, err := c.Do(ctx, "getset", "gs", "new").Text() // the command itself, which go-redis deprecates
	if err := want("GETSET gs", old, err, "old"); err != nil {
		return err
	}
	m.set("gs", "new")
	d, err := c.Del(ctx, "gone", "never-existed").Result()
	if err := want("DEL gone", d, err, 1); err != nil {
		return err
	}
	m.del("gone")
	v, err := c.GetDel(ctx, "gone:getdel").Result()
	if err := want("GETDEL gone:getdel", v, err, "deleted by GETDEL"); err != nil {
		return err
	}
	m.del("gone:getdel")
	return nil
}

// phaseB changes phase A's keys and adds new ones; the fixture keeps these
// writes only in the Raft WAL.
func phaseB(ctx context.Context, c *goredis.Client, m *model) error {
	log := m.vals["log"]
	for i := 60; i < 100; i++ {
		tok := fmt.Sprintf("entry-%03d;", i)
		log += tok
		n, err := c.Append(ctx, "log", tok).Result()
		if err := want("APPEND log", n, err, int64(len(log))); err != nil {
			return err
		}
	}
	m.set("log", log)
	for i := 38; i <= 42; i++ {
		n, err := c.Incr(ctx, "counter").Result()
		if err := want("INCR counter", n, err, int64(i)); err != nil {
			return err
		}
	}
	m.set("counter", "42")
	grow := m.vals["grow"] + pattern(30, 6) // crosses 1 KiB by appending
	n, err := c.Append(ctx, "grow", pattern(30, 6)).Result()
	if err := want("APPEND grow", n, err, int64(len(grow))); err != nil {
		return err
	}
	m.set("grow", grow)
	if err := setAll(ctx, c, m, map[string]string{
		"k:05":      "v-05 rewritten in the WAL",
		"size:1025": pattern(1025, 7),
		"{user1}.d": "tagged d, WAL only",
		"wal:new":   "a key that exists only in the WAL",
	}); err != nil {
		return err
	}
	d, err := c.Del(ctx, "k:06", "{user1}.c").Result()
	if err := want("DEL k:06 {user1}.c", d, err, 2); err != nil {
		return err
	}
	m.del("k:06")
	m.del("{user1}.c")
	var pairs []any
	for i := 1; i <= 3; i++ {
		k, v := fmt.Sprintf("wal:m:%d", i), fmt.Sprintf("mset in the WAL %d", i)
		pairs = append(pairs, k, v)
		m.set(k, v)
	}
	pairs = append(pairs, "m:1", "mset value 1, rewritten")
	m.set("m:1", "mset value 1, rewritten")
	if err := c.MSet(ctx, pairs...).Err(); err != nil {
		return fmt.Errorf("MSET: %w", err)
	}
	return nil
}

// verifyModel checks that the server holds exactly the model's keys and
// values, and returns its DEBUG DIGEST.
func verifyModel(ctx context.Context, c *goredis.Client, m *model) (string, error) {
	for k, v := range m.vals {
		got, err := c.Get(ctx, k).Result()
		if err := want(fmt.Sprintf("GET %q", k), got, err, v); err != nil {
			return "", err
		}
	}
	for k := range m.absent {
		n, err := c.Exists(ctx, k).Result()
		if err := want(fmt.Sprintf("EXISTS %q", k), n, err, 0); err != nil {
			return "", err
		}
	}
	size, err := c.DBSize(ctx).Result()
	if err := want("DBSIZE", size, err, int64(len(m.vals))); err != nil {
		return "", err
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		return "", fmt.Errorf("KEYS: %w", err)
	}
	for _, k := range keys {
		if _, ok := m.vals[k]; !ok {
			return "", fmt.Errorf("KEYS lists %q, which the model does not hold", k)
		}
	}
	d, err := c.Do(ctx, "debug", "digest").Text()
	if err != nil {
		return "", fmt.Errorf("DEBUG DIGEST: %w", err)
	}
	return d, nil
}

// dump returns the tail of a node's log, for an error message.
func dump(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return path + " (unreadable: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return path + ":\n" + string(bytes.TrimSpace(b))
}
