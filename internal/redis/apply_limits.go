package redis

// What the handlers draw on apply (inside an EXEC) must be the same on
// every replica: the executor's budgets have no deadline (exec.go), and
// new SCAN cursor ids come from the entry's seeded source.

// cursorGet returns the resume key of SCAN cursor id. On apply no cursor
// is known: the table is node memory, which differs between replicas
// (a restarted or newly joined one has none), so reading it would make a
// SCAN continue on one replica and fail on another.
func (s *Server) cursorGet(c *client, id uint64) ([]byte, bool) {
	if c.exec != nil {
		return nil, false
	}
	return s.cursors.get(id)
}

// cursorPut stores next under a new cursor id. On apply nothing is stored
// (see cursorGet): the id comes from the command's seeded source, so every
// replica replies the same one, and no later SCAN can resume from it.
func (s *Server) cursorPut(c *client, next []byte) uint64 {
	if c.exec != nil {
		for {
			if id := c.exec.rnd.Uint64(); id != 0 {
				return id
			}
		}
	}
	return s.cursors.put(next)
}
