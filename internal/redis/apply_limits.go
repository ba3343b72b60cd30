package redis

import (
	"math/rand/v2"
	"time"
)

// Limits of the handlers when they run on apply (inside an EXEC).
//
// On a connection, an expensive read stops at the request timeout; on
// apply, a deadline would make the reply depend on how fast this replica
// happens to be, so only the constant bounds hold there (the reply size,
// the LCS table size), and a KEYS inside MULTI runs to the end, holding
// the apply loop as it holds Redis's event loop.

// noDeadline is a deadline that never passes.
var noDeadline = time.Unix(1<<62, 0)

// onApplyBudget returns b, without a deadline when c runs on apply.
func onApplyBudget(c *client, b *budget) *budget {
	if c.exec != nil {
		b.deadline = noDeadline
	}
	return b
}

// cursorRand is the source of a new SCAN cursor's id: the entry's own on
// apply, so that every replica replies the same id; nil (the global
// source) on a connection.
func cursorRand(c *client) *rand.Rand {
	if c.exec != nil {
		return c.exec.rnd
	}
	return nil
}
