// Command elastickv runs an elastickv node (server), a local development
// cluster (dev), and admin tools.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `elastickv: a strongly consistent, Raft-replicated key-value store that speaks Redis.

Usage:
  elastickv server [flags]   run one node
  elastickv dev [flags]      run a local cluster of server processes
  elastickv admin [flags] <status|add-member|promote|remove-member|transfer-leader>
                             inspect and change a running cluster
  elastickv chaos [flags]    fault-injection run against a local cluster, checked for linearizability
  elastickv help             show this text

Run "elastickv <command> --help" for the flags of a command.
`

// errUsage marks a command-line mistake: exit status 2.
var errUsage = errors.New("usage error")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "server":
		err = runServer(args[1:], stdout, stderr)
	case "dev":
		err = runDev(args[1:], stdout, stderr)
	case "admin":
		err = runAdmin(args[1:], stdout, stderr)
	case "chaos":
		err = runChaos(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "elastickv: unknown command %q (try \"elastickv help\")\n", args[0])
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "elastickv %s: %v\n", args[0], errors.Unwrap(err))
		return 2
	default:
		fmt.Fprintf(stderr, "elastickv %s: %v\n", args[0], err)
		return 1
	}
}

// parseFlags parses args with fs, turning flag errors into errUsage. The
// flag package already printed nothing (its output is discarded); we print
// one line, as the CLI contract asks.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fmt.Fprintf(stdout, "Usage of elastickv %s:\n", fs.Name())
		fs.PrintDefaults()
		return flag.ErrHelp
	}
	if err != nil {
		return fmt.Errorf("%w", usageErr(err))
	}
	if fs.NArg() > 0 {
		return usageErr(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	return nil
}

type usageError struct{ err error }

func (u usageError) Error() string   { return u.err.Error() }
func (u usageError) Unwrap() error   { return u.err }
func (u usageError) Is(t error) bool { return t == errUsage }

func usageErr(err error) error { return usageError{err} }
