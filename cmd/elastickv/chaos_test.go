package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestChaosCommandFlags checks the chaos command's flag handling in
// process (the runs themselves are internal/chaos's TestChaos tests).
func TestChaosCommandFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"chaos", "--help"}, 0, "-nemesis"},
		{[]string{"chaos", "--nodes", "4"}, 2, "--nodes must be 3 or 5"},
		{[]string{"chaos", "--nemesis", "kill,bogus"}, 2, `unknown nemesis "bogus"`},
		{[]string{"chaos", "--duration", "0s"}, 2, "--duration must be positive"},
		{[]string{"chaos", "--expiry-keys", "-1"}, 2, "--expiry-keys must be between 0 and 1000"},
		{[]string{"chaos", "--help"}, 0, "-workload"},
		{[]string{"chaos", "--workload", "queue,streams"}, 2, `unknown workload "streams"`},
		{[]string{"chaos", "--collection-keys", "0"}, 2, "--collection-keys must be between 1 and 100"},
		{[]string{"chaos", "extra"}, 2, "unexpected argument"},
	} {
		var stdout, stderr strings.Builder
		code := run(tc.args, &stdout, &stderr)
		require.Equal(t, tc.code, code, "%v: stderr %q", tc.args, stderr.String())
		require.Contains(t, stdout.String()+stderr.String(), tc.out, "%v", tc.args)
		if tc.code == 2 {
			require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one-line error for %v", tc.args)
		}
	}
}
