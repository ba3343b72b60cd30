package chaos

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRaceReportsFindTheDetectorsOutput runs a real racy program built with
// -race, its stderr going to a log file as a node's does, and checks that
// RaceReports finds the report: the log search matches what the detector
// really writes, not a string nobody prints.
func TestRaceReportsFindTheDetectorsOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with -race")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "racy.go")
	require.NoError(t, os.WriteFile(src, []byte(`package main

import "fmt"

func main() {
	n := 0
	done := make(chan bool)
	go func() { n++; done <- true }()
	n++
	<-done
	fmt.Println("served", n)
}
`), 0o600))
	bin := filepath.Join(dir, "racy")
	out, err := exec.Command("go", "build", "-race", "-o", bin, src).CombinedOutput()
	require.NoError(t, err, "go build -race: %s", out)

	logPath := filepath.Join(dir, "n1.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Run()
	require.NoError(t, logf.Close())
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "a race-built program that raced exits non-zero")

	races, err := RaceReports(filepath.Join(dir, "*.log"))
	require.NoError(t, err)
	require.Len(t, races, 1)
	require.Contains(t, races[0], logPath)
	require.Contains(t, races[0], "racy.go", "the report's stacks are kept")

	// A clean log has none.
	require.NoError(t, os.WriteFile(logPath, []byte("level=INFO msg=\"cluster up\"\n"), 0o600))
	races, err = RaceReports(filepath.Join(dir, "*.log"))
	require.NoError(t, err)
	require.Empty(t, races)
}

func TestRaceReportsInSplitsReports(t *testing.T) {
	sep := "==================\n"
	report := func(s string) string { return sep + raceMarker + "\n" + s + "\n" + sep }
	log := "start\n" + report("Write at 0x1 by goroutine 7") + "between\n" + report("Read at 0x2 by goroutine 9") +
		raceMarker + "\nprocess killed mid-report"
	got := raceReportsIn([]byte(log))
	require.Len(t, got, 3)
	require.Contains(t, got[0], "goroutine 7")
	require.NotContains(t, got[0], "goroutine 9")
	require.Contains(t, got[1], "goroutine 9")
	require.True(t, strings.HasSuffix(got[2], "mid-report"))
	long := raceReportsIn([]byte(raceMarker + strings.Repeat("x", 20000)))
	require.Len(t, long, 1)
	require.Less(t, len(long[0]), 7000)
}
