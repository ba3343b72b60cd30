package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NemesisEvent is one injected fault and how the cluster came back from
// it. Times are on the history's clock (nanoseconds since the run began).
type NemesisEvent struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
	Start  int64  `json:"start"`
	Healed int64  `json:"healed"`
	// RecoveredAny is when the first node served a write and a read after
	// the heal; RecoveredAll when the last one did. 0 if never.
	RecoveredAny int64 `json:"recovered_any"`
	RecoveredAll int64 `json:"recovered_all"`
	// Ops counts the client operations invoked from Start until the next
	// fault began (fault window, recovery and quiet time).
	Ops int `json:"ops"`
	// Failure says what went wrong, "" if nothing did.
	Failure string `json:"failure,omitempty"`
}

// countEventOps fills in each event's Ops from the history.
func countEventOps(events []NemesisEvent, ops []Op) {
	for i := range events {
		end := int64(1<<63 - 1)
		if i+1 < len(events) {
			end = events[i+1].Start
		}
		n := 0
		for _, op := range ops {
			if op.Call >= events[i].Start && op.Call < end {
				n++
			}
		}
		events[i].Ops = n
	}
}

// RecoveryAll is the time from heal until every node served writes again.
func (e NemesisEvent) RecoveryAll() time.Duration {
	if e.RecoveredAll == 0 {
		return 0
	}
	return time.Duration(e.RecoveredAll - e.Healed)
}

// RecoveryAny is the time from heal until some node served writes again.
func (e NemesisEvent) RecoveryAny() time.Duration {
	if e.RecoveredAny == 0 {
		return 0
	}
	return time.Duration(e.RecoveredAny - e.Healed)
}

// fault is an injected nemesis: what it did, how long to hold it, how to
// heal it, and an optional check once the cluster recovered.
type fault struct {
	detail string
	hold   time.Duration // 0: the runner picks the configured fault length
	heal   func() error
	verify func(ctx context.Context) error
}

// nemesis is one kind of fault.
type nemesis struct {
	name string
	doc  string
	// inject breaks something; the runner holds, heals, and measures.
	inject func(ctx context.Context, e *env) (fault, error)
	// needsAdmin marks faults made with `elastickv admin`.
	needsAdmin bool
}

// env is what a nemesis works with. rng is the nemesis goroutine's own.
type env struct {
	c   *cluster
	cfg *Config
	rng *rand.Rand
	log *slog.Logger
}

// Nemeses lists every fault the harness can inject, by name.
func Nemeses() []string {
	var out []string
	for _, n := range allNemeses {
		out = append(out, n.name)
	}
	return out
}

// NemesisDoc describes a nemesis for help texts and docs.
func NemesisDoc(name string) string {
	for _, n := range allNemeses {
		if n.name == name {
			return n.doc
		}
	}
	return ""
}

var allNemeses = []nemesis{
	{"kill", "SIGKILL a random node, restart it after the fault window", injectKill(false), false},
	{"kill-leader", "SIGKILL the leader, restart it after the fault window", injectKill(true), false},
	{"pause-leader", "SIGSTOP the leader for longer than twice the election timeout, then SIGCONT", injectPauseLeader, false},
	{"partition-leader", "cut the leader (plus, with 5 nodes, one follower) off from the majority", injectPartition(true), false},
	{"partition-random", "split the cluster into a random minority and majority", injectPartition(false), false},
	{"partition-oneway", "cut every link the leader sends on; it still receives", injectOneWay, false},
	{"flap", "cut and restore both links between the leader and a follower every 100-400ms", injectFlap, false},
	{"delay", "add 100ms latency to both links between the leader and a follower", injectDelay, false},
	{"snapshot", "isolate a follower until the leader compacted past it, so it must catch up by snapshot", injectSnapshot, false},
	{"kill-all", "SIGKILL every node, restart them all", injectKillAll, false},
	{"storm", "for 4-7s, every 100-500ms one random action: cut a random link (refuse or stall), restore one, delay one, kill, restart, pause or continue a node (at most a minority down at once)", injectStorm, false},
	{"transfer-leader", "move leadership to a random follower with `elastickv admin transfer-leader`", injectTransfer, true},
	{"membership", "remove a random member with `elastickv admin remove-member`, leave it running for the fault window, then replace it by a new member (new id, empty disk) that joins with --join", injectMembership, true},
}

func lookupNemesis(name string) (nemesis, bool) {
	for _, n := range allNemeses {
		if n.name == name {
			return n, true
		}
	}
	return nemesis{}, false
}

// cutMode picks refuse or stall at random: both failure shapes matter
// (fast errors versus silent timeouts and late delivery).
func (e *env) cutMode() CutMode {
	if e.rng.IntN(2) == 0 {
		return CutRefuse
	}
	return CutStall
}

// randomOther picks a node other than not.
func (e *env) randomOther(not int) int {
	j := e.rng.IntN(len(e.c.nodes) - 1)
	if j >= not {
		j++
	}
	return j
}

func (e *env) name(i int) string { return e.c.nodes[i].name }

func injectKill(leader bool) func(context.Context, *env) (fault, error) {
	return func(ctx context.Context, e *env) (fault, error) {
		i := e.rng.IntN(len(e.c.nodes))
		if leader {
			var err error
			if i, err = e.c.leader(ctx, 10*time.Second); err != nil {
				return fault{}, err
			}
		}
		if err := e.c.kill(i); err != nil {
			return fault{}, err
		}
		return fault{detail: "killed " + e.name(i), heal: func() error { return e.c.start(i) }}, nil
	}
}

func injectKillAll(_ context.Context, e *env) (fault, error) {
	order := e.rng.Perm(len(e.c.nodes))
	var errs []error
	for _, i := range order {
		errs = append(errs, e.c.kill(i))
	}
	heal := func() error {
		var errs []error
		for i := range e.c.nodes {
			errs = append(errs, e.c.start(i))
		}
		return errors.Join(errs...)
	}
	hold := time.Duration(200+e.rng.IntN(800)) * time.Millisecond
	return fault{detail: "killed all nodes", hold: hold, heal: heal}, errors.Join(errs...)
}

func injectPauseLeader(ctx context.Context, e *env) (fault, error) {
	l, err := e.c.leader(ctx, 10*time.Second)
	if err != nil {
		return fault{}, err
	}
	if err := e.c.pause(l); err != nil {
		return fault{}, err
	}
	// Raft randomises the election timeout up to twice the setting: the
	// pause must outlast that for the others to elect a new leader, so the
	// woken node is a deposed leader that still believes it leads.
	hold := 2*e.cfg.ElectionTimeout + time.Second + time.Duration(e.rng.Int64N(int64(time.Second)))
	return fault{detail: "paused leader " + e.name(l), hold: hold, heal: func() error { return e.c.resume(l) }}, nil
}

// cutBetween cuts every link between the two groups, both ways, and
// returns the heal.
func (e *env) cutBetween(a, b []int, mode CutMode) func() error {
	var cut []*Proxy
	for _, i := range a {
		for _, j := range b {
			cut = append(cut, e.c.link(i, j), e.c.link(j, i))
		}
	}
	for _, p := range cut {
		p.Cut(mode)
	}
	return func() error {
		for _, p := range cut {
			p.Restore()
		}
		return nil
	}
}

func (e *env) names(is []int) string {
	var s []string
	for _, i := range is {
		s = append(s, e.name(i))
	}
	return "{" + strings.Join(s, ",") + "}"
}

func injectPartition(withLeader bool) func(context.Context, *env) (fault, error) {
	return func(ctx context.Context, e *env) (fault, error) {
		n := len(e.c.nodes)
		size := (n - 1) / 2 // largest minority
		var minority []int
		if withLeader {
			l, err := e.c.leader(ctx, 10*time.Second)
			if err != nil {
				return fault{}, err
			}
			minority = append(minority, l)
			for _, i := range e.rng.Perm(n) {
				if len(minority) < size && i != l {
					minority = append(minority, i)
				}
			}
		} else {
			minority = e.rng.Perm(n)[:1+e.rng.IntN(size)]
		}
		in := map[int]bool{}
		for _, i := range minority {
			in[i] = true
		}
		var majority []int
		for i := range n {
			if !in[i] {
				majority = append(majority, i)
			}
		}
		sort.Ints(minority)
		mode := e.cutMode()
		heal := e.cutBetween(minority, majority, mode)
		return fault{detail: fmt.Sprintf("%s | %s (%s)", e.names(minority), e.names(majority), mode), heal: heal}, nil
	}
}

func injectOneWay(ctx context.Context, e *env) (fault, error) {
	l, err := e.c.leader(ctx, 10*time.Second)
	if err != nil {
		return fault{}, err
	}
	mode := e.cutMode()
	var cut []*Proxy
	for j := range e.c.nodes {
		if j != l {
			cut = append(cut, e.c.link(l, j))
		}
	}
	for _, p := range cut {
		p.Cut(mode)
	}
	heal := func() error {
		for _, p := range cut {
			p.Restore()
		}
		return nil
	}
	return fault{detail: fmt.Sprintf("%s cannot send (%s)", e.name(l), mode), heal: heal}, nil
}

// leaderAndFollower picks the leader and a random other node.
func (e *env) leaderAndFollower(ctx context.Context) (int, int, error) {
	l, err := e.c.leader(ctx, 10*time.Second)
	if err != nil {
		return 0, 0, err
	}
	return l, e.randomOther(l), nil
}

func injectFlap(ctx context.Context, e *env) (fault, error) {
	l, f, err := e.leaderAndFollower(ctx)
	if err != nil {
		return fault{}, err
	}
	ps := []*Proxy{e.c.link(l, f), e.c.link(f, l)}
	for _, p := range ps {
		// Each flapper gets its own generator, seeded from the nemesis's,
		// since they run on their own goroutines.
		p.StartFlap(100*time.Millisecond, 400*time.Millisecond, rand.New(rand.NewPCG(e.rng.Uint64(), e.rng.Uint64())))
	}
	heal := func() error {
		for _, p := range ps {
			p.StopFlap()
		}
		return nil
	}
	return fault{detail: fmt.Sprintf("flapping %s<->%s", e.name(l), e.name(f)), heal: heal}, nil
}

func injectDelay(ctx context.Context, e *env) (fault, error) {
	l, f, err := e.leaderAndFollower(ctx)
	if err != nil {
		return fault{}, err
	}
	ps := []*Proxy{e.c.link(l, f), e.c.link(f, l)}
	for _, p := range ps {
		p.SetDelay(100 * time.Millisecond)
	}
	heal := func() error {
		for _, p := range ps {
			p.SetDelay(0)
		}
		return nil
	}
	return fault{detail: fmt.Sprintf("100ms delay %s<->%s", e.name(l), e.name(f)), heal: heal}, nil
}

// snapshotInstallLine is what a node logs when it installs a snapshot
// received from the leader (internal/raft).
const snapshotInstallLine = "installing snapshot from leader"

// countInLog counts the lines of a node's log that contain s.
func countInLog(path, s string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read log: %w", err)
	}
	return strings.Count(string(b), s), nil
}

// injectSnapshot isolates a follower and writes through the majority until
// the leader has taken several snapshots past the follower's applied index
// (each snapshot compacts the log behind it), so the follower can only
// come back through a snapshot. verify checks that it did.
func injectSnapshot(ctx context.Context, e *env) (fault, error) {
	l, f, err := e.leaderAndFollower(ctx)
	if err != nil {
		return fault{}, err
	}
	before, err := countInLog(e.c.nodes[f].logPath, snapshotInstallLine)
	if err != nil {
		return fault{}, err
	}
	var rest []int
	for i := range e.c.nodes {
		if i != f {
			rest = append(rest, i)
		}
	}
	// Refuse, not stall: a stalled connection keeps the append messages the
	// leader pipelined before the cut and delivers them on restore, which
	// lets the follower catch up by log whatever was compacted meanwhile.
	mode := CutRefuse
	heal := e.cutBetween([]int{f}, rest, mode)
	fst, err := e.c.status(ctx, f)
	if err != nil {
		return fault{}, errors.Join(err, heal())
	}
	target := fst.applied + 3*uint64(e.cfg.SnapshotCount)
	if err := e.fill(ctx, l, target); err != nil {
		return fault{}, errors.Join(err, heal())
	}
	verify := func(ctx context.Context) error {
		// The follower is back once it applied what the leader had.
		deadline := time.Now().Add(e.cfg.RecoveryBound)
		for {
			st, err := e.c.status(ctx, f)
			if err == nil && st.applied >= target {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not catch up to index %d within %v after the heal (at %d, err %v)", e.name(f), target, e.cfg.RecoveryBound, st.applied, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		after, err := countInLog(e.c.nodes[f].logPath, snapshotInstallLine)
		if err != nil {
			return err
		}
		if after <= before {
			return fmt.Errorf("%s caught up without installing a snapshot: the snapshot path was not exercised", e.name(f))
		}
		return nil
	}
	return fault{
		detail: fmt.Sprintf("isolated %s (%s) from applied index %d until the leader passed %d", e.name(f), mode, fst.applied, target),
		hold:   time.Millisecond, // the fill above was the fault window
		heal:   heal,
		verify: verify,
	}, nil
}

// fill writes filler keys through node l (and whoever leads if it changes)
// until the leader's applied index reaches target.
func (e *env) fill(ctx context.Context, l int, target uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cl := newClient(e.c.nodes[l].redisAddr, 2*time.Second, 8)
	defer func() { _ = cl.Close() }() // a filler client: nothing to flush on close
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				// Failures do not matter: filler keys are not checked, the
				// applied index is what counts.
				_ = cl.Set(cctx, "chaos:fill:"+strconv.Itoa(g), strconv.Itoa(n), 0).Err()
				ccancel()
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	for {
		st, err := e.c.status(ctx, l)
		if err == nil && st.applied >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("filling the log to index %d through %s: %w (at %d)", target, e.name(l), ctx.Err(), st.applied)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func injectTransfer(ctx context.Context, e *env) (fault, error) {
	l, f, err := e.leaderAndFollower(ctx)
	if err != nil {
		return fault{}, err
	}
	if _, err := e.c.adminCommand(ctx, l, 10*time.Second, "transfer-leader", e.c.id(f)); err != nil {
		return fault{}, err
	}
	// The transfer itself is the fault: proposals are refused while it
	// runs, and the old leader must not serve reads once it is over.
	return fault{detail: fmt.Sprintf("%s -> %s", e.name(l), e.name(f)), hold: time.Millisecond, heal: func() error { return nil }}, nil
}

// injectMembership removes a member while the workload runs (it may be the
// leader, which then hands leadership over first), leaves the removed
// process running through the fault window — it must neither disrupt the
// cluster nor answer reads with stale data — and heals by replacing it with
// a brand-new member in the same slot, which has to join and catch up.
func injectMembership(ctx context.Context, e *env) (fault, error) {
	x := e.rng.IntN(len(e.c.nodes))
	via := e.randomOther(x)
	id := e.c.id(x)
	if _, err := e.c.adminCommand(ctx, via, 20*time.Second, "remove-member", id); err != nil {
		return fault{}, err
	}
	e.c.expectExit(x)
	var next string
	heal := func() error {
		if e.c.running(x) {
			if err := e.c.kill(x); err != nil {
				return err
			}
		}
		var err error
		next, err = e.c.replace(x)
		return err
	}
	verify := func(ctx context.Context) error {
		// The replacement serves requests (measured already); it must also
		// have become a voter, or the cluster silently lost a vote.
		deadline := time.Now().Add(e.cfg.RecoveryBound)
		for {
			out, err := e.c.adminCommand(ctx, via, 5*time.Second, "--json", "status")
			if err == nil && voterIn(out, next) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("replacement %s did not become a voter within %v: %v\n%s", next, e.cfg.RecoveryBound, err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return fault{detail: fmt.Sprintf("removed %s (via %s), then replaced it", id, e.name(via)), heal: heal, verify: verify}, nil
}

// voterIn reports whether `elastickv admin status --json` output lists id
// as a voter (leader or follower, not learner) in the leader's view.
func voterIn(status, id string) bool {
	var st struct {
		Local   bool `json:"local"`
		Members []struct {
			Name string `json:"name"`
			Role string `json:"role"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(status), &st); err != nil || st.Local {
		return false
	}
	for _, m := range st.Members {
		if m.Name == id {
			return m.Role == "leader" || m.Role == "follower"
		}
	}
	return false
}

// injectStorm layers many small faults on top of each other: links cut in
// random directions and modes, slow links, and a minority of nodes killed
// or paused, changing every few hundred milliseconds. Single faults test
// each recovery path; overlapping ones test their interactions (a node
// restarting into a partition, a deposed leader waking behind a one-way
// cut). The heal restores everything.
func injectStorm(ctx context.Context, e *env) (fault, error) {
	n := len(e.c.nodes)
	budget := (n - 1) / 2 // nodes that may be down or paused at once
	down := func() int {
		k := 0
		for i := range n {
			if !e.c.running(i) || e.c.paused(i) {
				k++
			}
		}
		return k
	}
	var actions []string
	end := time.Now().Add(4*time.Second + time.Duration(e.rng.Int64N(int64(3*time.Second))))
	for time.Now().Before(end) && ctx.Err() == nil {
		i := e.rng.IntN(n)
		j := e.randomOther(i)
		var act string
		switch r := e.rng.IntN(10); {
		case r < 3:
			mode := e.cutMode()
			e.c.link(i, j).Cut(mode)
			act = fmt.Sprintf("cut %s->%s (%s)", e.name(i), e.name(j), mode)
		case r < 5:
			e.c.link(i, j).Restore()
			act = fmt.Sprintf("restore %s->%s", e.name(i), e.name(j))
		case r < 6:
			e.c.link(i, j).SetDelay(time.Duration(20+e.rng.IntN(180)) * time.Millisecond)
			act = fmt.Sprintf("delay %s->%s", e.name(i), e.name(j))
		case r < 7 && down() < budget && e.c.running(i):
			if err := e.c.kill(i); err != nil {
				return fault{}, err
			}
			act = "kill " + e.name(i)
		case r < 8 && down() < budget && e.c.running(i):
			if err := e.c.pause(i); err != nil {
				return fault{}, err
			}
			act = "pause " + e.name(i)
		default:
			// Bring one node back, if any is down or paused.
			for k := range n {
				if e.c.paused(k) {
					if err := e.c.resume(k); err != nil {
						return fault{}, err
					}
					act = "continue " + e.name(k)
					break
				}
				if !e.c.running(k) {
					if err := e.c.start(k); err != nil {
						return fault{}, err
					}
					act = "restart " + e.name(k)
					break
				}
			}
		}
		if act != "" {
			actions = append(actions, act)
		}
		t := time.NewTimer(time.Duration(100+e.rng.IntN(400)) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	detail := fmt.Sprintf("%d actions: %s", len(actions), strings.Join(actions, ", "))
	return fault{detail: detail, hold: time.Millisecond, heal: e.c.healAll}, nil
}
