//go:build race

package chaos

// RaceEnabled is true when this binary was built with -race: tests build
// the servers they run the same way, so a race in a server under faults is
// reported like one in the test itself.
const RaceEnabled = true
