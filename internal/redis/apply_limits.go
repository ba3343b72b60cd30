package redis

import (
	"math/rand/v2"
)

// What the handlers draw on apply (inside an EXEC) must be the same on
// every replica: the executor's budgets have no deadline (exec.go), and
// new SCAN cursor ids come from the entry's seeded source.

// cursorRand is the source of a new SCAN cursor's id: the entry's own on
// apply, so that every replica replies the same id; nil (the global
// source) on a connection.
func cursorRand(c *client) *rand.Rand {
	if c.exec != nil {
		return c.exec.rnd
	}
	return nil
}
