package redis

import (
	"slices"
	"strings"

	"github.com/elastickv/elastickv/internal/redis/commands"
)

// COMMAND and its subcommands, in Redis 7.2's reply shapes (RESP2: sets
// and maps are arrays), over the commands elastickv implements. Clients
// use COMMAND to route by key position and redis-cli uses COMMAND DOCS
// for hints; the ACL of a later issue reads the same table.

// cmdCommand runs COMMAND; the dispatcher has resolved the subcommand and
// checked its arity.
func cmdCommand(_ *Server, c *client, args [][]byte) {
	if len(args) == 1 {
		writeCommandInfos(c, sortedCommands())
		return
	}
	switch sub := strings.ToLower(string(args[1])); sub {
	case "count":
		c.int(int64(len(commandTable)))
	case "list":
		commandList(c, args[2:])
	case "info":
		if len(args) == 2 {
			writeCommandInfos(c, sortedCommands())
			return
		}
		cmds := make([]*command, len(args)-2)
		for i, name := range args[2:] {
			cmds[i] = lookupFullName(name) // nil is answered with a nil entry
		}
		writeCommandInfos(c, cmds)
	case "docs":
		commandDocs(c, args[2:])
	case "getkeys", "getkeysandflags":
		commandGetKeys(c, args[2:], sub == "getkeysandflags")
	default: // not reached: the dispatcher refuses unknown subcommands
		c.err("ERR unknown subcommand '" + truncate(args[1]) + "'. Try COMMAND HELP.")
	}
}

func sortedCommands() []*command {
	cmds := make([]*command, 0, len(commandTable))
	for _, cmd := range commandTable {
		cmds = append(cmds, cmd)
	}
	slices.SortFunc(cmds, func(a, b *command) int { return strings.Compare(a.name, b.name) })
	return cmds
}

// writeCommandInfos writes each command's description, or a nil for a nil
// entry.
func writeCommandInfos(c *client, cmds []*command) {
	c.array(len(cmds))
	for _, cmd := range cmds {
		if cmd == nil {
			c.null()
			continue
		}
		writeCommandInfo(c, cmd)
	}
}

// writeCommandInfo writes Redis 7's ten-field description: name, arity,
// flags, first key, last key, step, ACL categories, tips, key specs and
// subcommands (each described the same way).
func writeCommandInfo(c *client, cmd *command) {
	sp := cmd.spec
	c.array(10)
	c.bulkString(cmd.name)
	c.int(int64(sp.Arity))
	simples(c, sp.Flags.Names())
	c.int(int64(sp.FirstKey))
	c.int(int64(sp.LastKey))
	c.int(int64(sp.Step))
	cats := sp.Categories.Names()
	c.array(len(cats))
	for _, cat := range cats {
		c.simple("@" + cat)
	}
	c.array(len(sp.Tips))
	for _, tip := range sp.Tips {
		c.bulkString(tip)
	}
	c.array(len(sp.KeySpecs))
	for _, ks := range sp.KeySpecs {
		writeKeySpec(c, ks)
	}
	subs := cmd.subcommandsSorted()
	c.array(len(subs))
	for _, sub := range subs {
		writeCommandInfo(c, sub)
	}
}

func simples(c *client, ss []string) {
	c.array(len(ss))
	for _, s := range ss {
		c.simple(s)
	}
}

// writeKeySpec writes one key specification as Redis's map (flat in
// RESP2): flags, begin_search and find_keys, each search a type and a spec.
// The reference's notes are prose and left out, as Redis allows.
func writeKeySpec(c *client, ks commands.KeySpec) {
	c.array(6)
	c.bulkString("flags")
	simples(c, ks.Flags.Names())
	c.bulkString("begin_search")
	c.array(4)
	c.bulkString("type")
	switch ks.Begin.Kind {
	case commands.SearchIndex:
		c.bulkString("index")
		c.bulkString("spec")
		c.array(2)
		c.bulkString("index")
		c.int(int64(ks.Begin.Index))
	case commands.SearchKeyword:
		c.bulkString("keyword")
		c.bulkString("spec")
		c.array(4)
		c.bulkString("keyword")
		c.bulkString(ks.Begin.Keyword)
		c.bulkString("startfrom")
		c.int(int64(ks.Begin.StartFrom))
	default:
		c.bulkString("unknown")
		c.bulkString("spec")
		c.array(0)
	}
	c.bulkString("find_keys")
	c.array(4)
	c.bulkString("type")
	switch ks.Find.Kind {
	case commands.FindRange:
		c.bulkString("range")
		c.bulkString("spec")
		c.array(6)
		c.bulkString("lastkey")
		c.int(int64(ks.Find.LastKey))
		c.bulkString("keystep")
		c.int(int64(ks.Find.Step))
		c.bulkString("limit")
		c.int(int64(ks.Find.Limit))
	case commands.FindKeynum:
		c.bulkString("keynum")
		c.bulkString("spec")
		c.array(6)
		c.bulkString("keynumidx")
		c.int(int64(ks.Find.KeynumIdx))
		c.bulkString("firstkey")
		c.int(int64(ks.Find.FirstKey))
		c.bulkString("keystep")
		c.int(int64(ks.Find.Step))
	default:
		c.bulkString("unknown")
		c.bulkString("spec")
		c.array(0)
	}
}

// commandList runs COMMAND LIST [FILTERBY MODULE name|ACLCAT cat|PATTERN
// pattern]: the names of the implemented commands and subcommands.
func commandList(c *client, opts [][]byte) {
	match := func(*command) bool { return true }
	for len(opts) > 0 {
		if len(opts) != 3 || !equalFold(opts[0], "filterby") {
			c.err(errTextSyntax)
			return
		}
		arg := opts[2]
		switch {
		case equalFold(opts[1], "module"):
			match = func(*command) bool { return false } // no modules
		case equalFold(opts[1], "aclcat"):
			cat, ok := commands.CategoryByName(string(arg))
			match = func(cmd *command) bool { return ok && cmd.spec.Categories&cat != 0 }
		case equalFold(opts[1], "pattern"):
			g := compileGlob([]byte(strings.ToLower(string(arg)))) // Redis matches case-insensitively
			match = func(cmd *command) bool { return g.match([]byte(cmd.name)) }
		default:
			c.err(errTextSyntax)
			return
		}
		opts = opts[3:]
	}
	var names []string
	for _, cmd := range sortedCommands() {
		if match(cmd) {
			names = append(names, cmd.name)
		}
		for _, sub := range cmd.subcommandsSorted() {
			if match(sub) {
				names = append(names, sub.name)
			}
		}
	}
	c.array(len(names))
	for _, n := range names {
		c.bulkString(n)
	}
}

// commandDocs runs COMMAND DOCS [name...]: a map from each command to its
// documentation. elastickv does not carry the reference's prose, so a
// command's docs hold our own summary and facts only: since, group, doc
// flags, the version
// that deprecated it, its arguments' syntax (redis-cli's hints) and its
// subcommands' docs. Unknown names are left out, as in Redis.
func commandDocs(c *client, names [][]byte) {
	var cmds []*command
	if len(names) == 0 {
		cmds = sortedCommands()
	} else {
		for _, n := range names {
			if cmd := lookupFullName(n); cmd != nil {
				cmds = append(cmds, cmd)
			}
		}
	}
	c.array(2 * len(cmds))
	for _, cmd := range cmds {
		c.bulkString(cmd.name)
		writeCommandDocs(c, cmd)
	}
}

func writeCommandDocs(c *client, cmd *command) {
	sp := cmd.spec
	subs := cmd.subcommandsSorted()
	summary := summaries[cmd.name]
	n := 2 // since, group
	if summary != "" {
		n++
	}
	if sp.DocFlags != 0 {
		n++
	}
	if sp.DeprecatedSince != "" {
		n++
	}
	if len(sp.Args) > 0 {
		n++
	}
	if len(subs) > 0 {
		n++
	}
	c.array(2 * n)
	if summary != "" {
		c.bulkString("summary")
		c.bulkString(summary)
	}
	c.bulkString("since")
	c.bulkString(sp.Since)
	c.bulkString("group")
	c.bulkString(docGroup(sp.Group))
	if sp.DocFlags != 0 {
		c.bulkString("doc_flags")
		simples(c, sp.DocFlags.Names())
	}
	if sp.DeprecatedSince != "" {
		c.bulkString("deprecated_since")
		c.bulkString(sp.DeprecatedSince)
	}
	if len(sp.Args) > 0 {
		c.bulkString("arguments")
		writeArgDocs(c, sp.Args)
	}
	if len(subs) > 0 {
		c.bulkString("subcommands")
		c.array(2 * len(subs))
		for _, sub := range subs {
			c.bulkString(sub.name)
			writeCommandDocs(c, sub)
		}
	}
}

// writeArgDocs writes arguments as Redis 7.2's COMMAND DOCS does: name,
// type, then what is set of key_spec_index, token, since,
// deprecated_since, flags, and the nested arguments of a oneof or block,
// or else the display text.
func writeArgDocs(c *client, args []commands.Arg) {
	c.array(len(args))
	for _, a := range args {
		nested := a.Type == commands.ArgOneof || a.Type == commands.ArgBlock
		n := 3 // name, type, and arguments or display_text
		for _, set := range []bool{a.HasKeySpec, a.Token != "", a.Since != "", a.DeprecatedSince != "", a.Flags != 0} {
			if set {
				n++
			}
		}
		c.array(2 * n)
		c.bulkString("name")
		c.bulkString(a.Name)
		c.bulkString("type")
		c.bulkString(string(a.Type))
		if a.HasKeySpec {
			c.bulkString("key_spec_index")
			c.int(int64(a.KeySpecIndex))
		}
		for _, f := range [][2]string{{"token", a.Token}, {"since", a.Since}, {"deprecated_since", a.DeprecatedSince}} {
			if f[1] != "" {
				c.bulkString(f[0])
				c.bulkString(f[1])
			}
		}
		if a.Flags != 0 {
			c.bulkString("flags")
			simples(c, a.Flags.Names())
		}
		if nested {
			c.bulkString("arguments")
			writeArgDocs(c, a.Args)
			continue
		}
		c.bulkString("display_text")
		if a.DisplayText != "" {
			c.bulkString(a.DisplayText)
		} else {
			c.bulkString(a.Name)
		}
	}
}

// docGroup is the group's name as COMMAND DOCS spells it.
func docGroup(g string) string {
	if g == "sorted_set" {
		return "sorted-set"
	}
	return g
}

// commandGetKeys runs COMMAND GETKEYS and GETKEYSANDFLAGS for the command
// in argv, with Redis's error words. A command elastickv does not
// implement is an invalid command, as it is for COMMAND INFO.
func commandGetKeys(c *client, argv [][]byte, withFlags bool) {
	cmd := commandTable[strings.ToLower(string(argv[0]))]
	if cmd != nil && cmd.subs != nil && len(argv) >= 2 {
		cmd = cmd.subs[strings.ToLower(string(argv[1]))]
	}
	switch {
	case cmd == nil:
		c.err("ERR Invalid command specified")
		return
	case !cmd.spec.HasKeys():
		c.err("ERR The command has no key arguments")
		return
	case !arityOK(cmd.arity, len(argv)):
		c.err("ERR Invalid number of arguments specified for command")
		return
	}
	keys, err := cmd.spec.Keys(argv)
	if err != nil || len(keys) == 0 {
		if cmd.spec.Flags&commands.FlagNoMandatoryKeys != 0 {
			c.array(0)
			return
		}
		c.err("ERR Invalid arguments specified for command")
		return
	}
	c.array(len(keys))
	for _, k := range keys {
		if !withFlags {
			c.bulk(argv[k.Pos])
			continue
		}
		c.array(2)
		c.bulk(argv[k.Pos])
		simples(c, k.Flags.Names())
	}
}
