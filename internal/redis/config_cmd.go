package redis

import (
	"errors"
	"strings"

	"github.com/elastickv/elastickv/internal/config"
)

// CONFIG GET, SET, RESETSTAT, REWRITE and HELP over the node's
// configuration registry (internal/config), in Redis 7.2's words and reply
// shapes.

var configHelp = []string{
	"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GET <pattern> [<pattern> ...]",
	"    Return parameters matching the glob-like <pattern>s and their values.",
	"SET <directive> <value> [<directive> <value> ...]",
	"    Set node-local parameters on this node, all or none. Replicated parameters",
	"    are refused until the Raft log carries configuration.",
	"RESETSTAT",
	"    Reset the statistics reported by the INFO command.",
	"REWRITE",
	"    Refused: elastickv has no config file; change the node's flags instead.",
	"HELP",
	"    Print this help.",
}

func cmdConfig(s *Server, c *client, args [][]byte) {
	sub := args[1]
	switch {
	case equalFold(sub, "get"):
		configGet(s, c, args[2:])
	case equalFold(sub, "set"):
		configSet(s, c, args)
	case equalFold(sub, "resetstat"):
		// INFO reports no resettable statistics yet (its counters are
		// Prometheus metrics, which must only grow).
		c.ok()
	case equalFold(sub, "rewrite"):
		c.err("ERR The server is running without a config file: elastickv is configured by flags, so persist a change by changing the node's command line")
	case equalFold(sub, "help"):
		c.array(len(configHelp))
		for _, l := range configHelp {
			c.simple(l)
		}
	default:
		c.err("ERR unknown subcommand '" + truncate(sub) + "'. Try CONFIG HELP.")
	}
}

// configGet replies with every parameter whose name or alias matches one of
// pats, each name once, as Redis 7 does: a glob matches names and aliases
// (case-insensitively), and a pattern without glob characters names a
// parameter or alias directly.
func configGet(s *Server, c *client, pats [][]byte) {
	snap := s.params.Snapshot()
	params := s.params.Params()
	type pair struct{ name, value string }
	var out []pair
	seen := make(map[string]bool)
	add := func(name string, p *config.Param) {
		if !seen[name] {
			seen[name] = true
			out = append(out, pair{name, snap.Format(p)})
		}
	}
	for _, raw := range pats {
		pat := strings.ToLower(string(raw))
		if !strings.ContainsAny(pat, "*?[") {
			if p, ok := s.params.Lookup(pat); ok {
				add(pat, p)
			}
			continue
		}
		g := compileGlob([]byte(pat))
		for _, p := range params {
			for _, name := range append([]string{p.Name}, p.Aliases...) {
				if g.match([]byte(name)) {
					add(name, p)
				}
			}
		}
	}
	c.array(2 * len(out))
	for _, p := range out {
		c.bulkString(p.name)
		c.bulkString(p.value)
	}
}

// configSet applies CONFIG SET's name/value pairs, all or none.
func configSet(s *Server, c *client, args [][]byte) {
	if len(args) < 4 || len(args)%2 != 0 {
		c.err(wrongArity("config|set"))
		return
	}
	pairs := make([][2]string, 0, (len(args)-2)/2)
	for i := 2; i < len(args); i += 2 {
		pairs = append(pairs, [2]string{string(args[i]), string(args[i+1])})
	}
	err := s.params.Set(pairs)
	if err == nil {
		s.log.Info("CONFIG SET", "client", c.id, "addr", c.addr, "params", pairs)
		c.ok()
		return
	}
	var se *config.SetError
	if !errors.As(err, &se) {
		c.err("ERR CONFIG SET failed - " + oneLine(err.Error()))
		return
	}
	if errors.Is(se.Err, config.ErrUnknown) {
		c.err("ERR Unknown option or number of arguments for CONFIG SET - '" + truncate([]byte(se.Name)) + "'")
		return
	}
	c.err("ERR CONFIG SET failed (possibly related to argument '" + truncate([]byte(se.Name)) + "') - " + oneLine(se.Err.Error()))
}

// oneLine keeps an error on one line, as RESP requires.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
