package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/elastickv/elastickv/internal/node"
)

const adminUsage = `Usage: elastickv admin [--endpoint host:port] [--timeout 30s] [--json] <command> [args]

Commands (any member's peer address works; followers forward to the leader):
  status                      every member: id, address, role, match index, lag
  add-member ID ADDR [--learner]
                              add node ID whose peer address is ADDR (a voter,
                              or a learner that receives the log without voting)
  promote ID                  make learner ID a voter
  remove-member ID            remove ID (the leader hands leadership over first
                              when ID is the leader)
  transfer-leader [ID]        move leadership to ID, or to the most caught-up voter

Changes wait until they are committed and applied, then print the cluster.

Flags:
`

func runAdmin(args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "127.0.0.1:7001", "peer (Raft) address of any member")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline for the whole command")
	asJSON := fs.Bool("json", false, "print the cluster status as JSON")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printAdminUsage(fs, stdout)
			return flag.ErrHelp
		}
		return usageErr(err)
	}
	if fs.NArg() == 0 {
		return usageErr(errors.New("missing command: status, add-member, promote, remove-member or transfer-leader"))
	}
	if *timeout <= 0 {
		return usageErr(errors.New("--timeout must be positive"))
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	sub := flag.NewFlagSet("admin "+cmd, flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	learner := false
	if cmd == "add-member" {
		sub.BoolVar(&learner, "learner", false, "add as a learner (receives the log, does not vote)")
	}
	pos, err := parseInterleaved(sub, rest)
	if errors.Is(err, flag.ErrHelp) {
		printAdminUsage(fs, stdout)
		return flag.ErrHelp
	}
	if err != nil {
		return usageErr(err)
	}
	want := map[string][2]int{"status": {0, 0}, "add-member": {2, 2}, "promote": {1, 1}, "remove-member": {1, 1}, "transfer-leader": {0, 1}}
	n, ok := want[cmd]
	if !ok {
		return usageErr(fmt.Errorf("unknown admin command %q", cmd))
	}
	if len(pos) < n[0] || len(pos) > n[1] {
		return usageErr(fmt.Errorf("%s takes %s", cmd, map[string]string{
			"status": "no arguments", "add-member": "ID ADDR", "promote": "ID", "remove-member": "ID", "transfer-leader": "at most one ID",
		}[cmd]))
	}

	cl, err := node.DialAdmin(*endpoint)
	if err != nil {
		return err
	}
	// A failure to close changes nothing about the answer already printed.
	defer func() { _ = cl.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var st *node.ClusterStatus
	var done string
	switch cmd {
	case "status":
		st, err = cl.Status(ctx)
	case "add-member":
		st, err = cl.AddMember(ctx, pos[0], pos[1], learner, false)
		role := "voter"
		if learner {
			role = "learner"
		}
		done = fmt.Sprintf("added %s (%s) as a %s", pos[0], pos[1], role)
	case "promote":
		st, err = cl.PromoteMember(ctx, pos[0])
		done = fmt.Sprintf("promoted %s to voter", pos[0])
	case "remove-member":
		st, err = cl.RemoveMember(ctx, pos[0])
		done = fmt.Sprintf("removed %s", pos[0])
	case "transfer-leader":
		to := ""
		if len(pos) == 1 {
			to = pos[0]
		}
		st, err = cl.TransferLeader(ctx, to)
		done = "leadership transferred"
	}
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if done != "" {
		// The answer came from the node that made the change, which may no
		// longer lead (transfer, removal): show the leader's view now.
		if fresh, ferr := cl.Status(ctx); ferr == nil {
			st = fresh
		}
		if st.Leader != "" && cmd == "transfer-leader" {
			done += " to " + st.Leader
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	// The answer is built whole, then written once: a failed write (a full
	// disk, a closed pipe) fails the command instead of exiting 0 with the
	// table cut short.
	var out bytes.Buffer
	if done != "" {
		out.WriteString(done + "\n")
	}
	printStatus(&out, st)
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	return nil
}

func printAdminUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, adminUsage)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// parseInterleaved parses flags that may come after positional arguments
// ("add-member n4 127.0.0.1:7004 --learner") and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

// printStatus prints the cluster as an aligned table. Writes to a
// bytes.Buffer cannot fail.
func printStatus(w *bytes.Buffer, st *node.ClusterStatus) {
	leader := st.Leader
	if leader == "" {
		leader = "(none)"
	}
	fmt.Fprintf(w, "leader %s  term %d  commit %d  last index %d  (answered by %s)\n", leader, st.Term, st.Commit, st.LastIndex, st.Node)
	if st.Local {
		fmt.Fprintf(w, "no leader answered: roles as %s sees them, no progress\n", st.Node)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRAFT-ID\tADDRESS\tROLE\tMATCH\tLAG\tACTIVE")
	for _, m := range st.Members {
		match, lag, active := "-", "-", "-"
		if m.Known {
			match, lag = fmt.Sprint(m.Match), fmt.Sprint(m.Lag)
			active = map[bool]string{true: "yes", false: "no"}[m.Active]
		}
		role := m.Role
		if m.AutoPromote {
			role += "*"
		}
		fmt.Fprintf(tw, "%s\t%016x\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.ID, m.Addr, role, match, lag, active)
	}
	_ = tw.Flush()
	for _, m := range st.Members {
		if m.AutoPromote {
			fmt.Fprintln(w, "* promoted to voter automatically once caught up")
			break
		}
	}
}
