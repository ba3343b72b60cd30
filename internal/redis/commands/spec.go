package commands

import (
	"math/bits"
	"slices"
	"strings"
)

// Flag is a set of command flags.
type Flag uint64

// Command flags. The first group is in the order Redis lists them in
// COMMAND replies; the second group Redis keeps but never shows there.
const (
	FlagWrite Flag = 1 << iota
	FlagReadonly
	FlagDenyOOM
	FlagModule
	FlagAdmin
	FlagPubsub
	FlagNoscript
	FlagBlocking
	FlagLoading
	FlagStale
	FlagSkipMonitor
	FlagSkipSlowlog
	FlagAsking
	FlagFast
	FlagNoAuth
	FlagNoMandatoryKeys
	FlagNoAsyncLoading
	FlagNoMulti
	// FlagMovableKeys is derived, never in the reference: the keys cannot
	// be found from FirstKey, LastKey and Step alone.
	FlagMovableKeys
	FlagAllowBusy

	FlagMayReplicate
	FlagSentinel
	FlagOnlySentinel
	FlagProtected
	FlagTouchesArbitraryKeys
)

// flagNames are the names COMMAND reports, indexed by bit; "" is a flag
// Redis hides from COMMAND.
var flagNames = [...]string{
	"write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
	"blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "asking",
	"fast", "no_auth", "no_mandatory_keys", "no_async_loading", "no_multi",
	"movablekeys", "allow_busy",
	"", "", "", "", "",
}

// Names returns the flags COMMAND reports, in Redis's order.
func (f Flag) Names() []string {
	return names(uint64(f), flagNames[:])
}

// Category is a set of ACL categories.
type Category uint64

// ACL categories, in the order Redis lists them (ACL CAT, COMMAND).
const (
	CatKeyspace Category = 1 << iota
	CatRead
	CatWrite
	CatSet
	CatSortedSet
	CatList
	CatHash
	CatString
	CatBitmap
	CatHyperLogLog
	CatGeo
	CatStream
	CatPubsub
	CatAdmin
	CatFast
	CatSlow
	CatBlocking
	CatDangerous
	CatConnection
	CatTransaction
	CatScripting
)

var categoryNames = [...]string{
	"keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
	"bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
	"blocking", "dangerous", "connection", "transaction", "scripting",
}

// Names returns the categories without their '@', in Redis's order.
func (c Category) Names() []string {
	return names(uint64(c), categoryNames[:])
}

// CategoryNames lists every ACL category name, in Redis's order (ACL CAT).
func CategoryNames() []string {
	return slices.Clone(categoryNames[:])
}

// CategoryByName finds a category by its name without the '@' ("read"),
// case-insensitively, as Redis's ACL and COMMAND LIST do.
func CategoryByName(name string) (Category, bool) {
	for i, n := range categoryNames {
		if strings.EqualFold(n, name) {
			return Category(1) << i, true
		}
	}
	return 0, false
}

// KeyFlag is a set of key specification flags: how a command uses a key.
type KeyFlag uint64

// Key specification flags, in the order Redis lists them.
const (
	KeyRO KeyFlag = 1 << iota
	KeyRW
	KeyOW
	KeyRM
	KeyAccess
	KeyUpdate
	KeyInsert
	KeyDelete
	KeyNotKey
	KeyIncomplete
	KeyVariableFlags
)

var keyFlagNames = [...]string{
	"RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key",
	"incomplete", "variable_flags",
}

// Names returns the flags as Redis reports them (COMMAND, GETKEYSANDFLAGS).
func (k KeyFlag) Names() []string {
	return names(uint64(k), keyFlagNames[:])
}

// DocFlag is a set of documentation flags.
type DocFlag uint8

// Documentation flags.
const (
	DocDeprecated DocFlag = 1 << iota
	DocSyscmd
)

// Names returns the flags as COMMAND DOCS reports them.
func (d DocFlag) Names() []string {
	return names(uint64(d), []string{"deprecated", "syscmd"})
}

func names(set uint64, table []string) []string {
	out := make([]string, 0, bits.OnesCount64(set))
	for i, n := range table {
		if set&(1<<i) != 0 && n != "" {
			out = append(out, n)
		}
	}
	return out
}

// SearchKind says how a key specification finds its first key.
type SearchKind uint8

// Begin-search kinds.
const (
	// SearchUnknown: only parsing the command finds the keys.
	SearchUnknown SearchKind = iota
	// SearchIndex: the first key is at a fixed argument index.
	SearchIndex
	// SearchKeyword: the first key follows a keyword, searched from
	// StartFrom (from the end if negative).
	SearchKeyword
)

// BeginSearch is where a key specification's keys begin.
type BeginSearch struct {
	Kind      SearchKind
	Index     int    // SearchIndex: argument index (0 is the command name)
	Keyword   string // SearchKeyword: the keyword, upper case
	StartFrom int    // SearchKeyword: where the search starts; negative counts from the end
}

// FindKind says how a key specification finds its keys once it has begun.
type FindKind uint8

// Find-keys kinds.
const (
	// FindUnknown: only parsing the command finds the keys.
	FindUnknown FindKind = iota
	// FindRange: keys up to LastKey (relative to the first; negative counts
	// from the end), every Step arguments; Limit > 1 keeps only 1/Limit of
	// the remaining arguments when LastKey is -1.
	FindRange
	// FindKeynum: the argument at KeynumIdx (relative to the begin) counts
	// the keys, which start at FirstKey (relative) every Step arguments.
	FindKeynum
)

// FindKeys is how a key specification finds its keys.
type FindKeys struct {
	Kind FindKind
	// FindRange
	LastKey, Limit int
	// FindKeynum
	KeynumIdx, FirstKey int
	// Step is the distance between keys, for both kinds.
	Step int
}

// KeySpec is one key specification: where some of a command's keys are
// and how the command uses them.
type KeySpec struct {
	Flags KeyFlag
	Begin BeginSearch
	Find  FindKeys
}

// ArgType is an argument's type, named as COMMAND DOCS names it.
type ArgType string

// Argument types.
const (
	ArgString    ArgType = "string"
	ArgInteger   ArgType = "integer"
	ArgDouble    ArgType = "double"
	ArgKey       ArgType = "key"
	ArgPattern   ArgType = "pattern"
	ArgUnixTime  ArgType = "unix-time"
	ArgPureToken ArgType = "pure-token"
	// ArgOneof: exactly one of Args.
	ArgOneof ArgType = "oneof"
	// ArgBlock: all of Args, in order.
	ArgBlock ArgType = "block"
)

// ArgFlag is a set of argument flags.
type ArgFlag uint8

// Argument flags, in the order COMMAND DOCS lists them.
const (
	ArgOptional ArgFlag = 1 << iota
	ArgMultiple
	// ArgMultipleToken: the token repeats with each value.
	ArgMultipleToken
)

// Names returns the flags as COMMAND DOCS reports them.
func (f ArgFlag) Names() []string {
	return names(uint64(f), []string{"optional", "multiple", "multiple_token"})
}

// Arg is the syntax of one argument.
type Arg struct {
	Name string
	Type ArgType
	// KeySpecIndex is the key spec the argument belongs to, if HasKeySpec
	// (always for ArgKey; also SORT's BY and GET patterns).
	KeySpecIndex int
	HasKeySpec   bool
	// Token is the literal that precedes the value, or is the whole
	// argument of an ArgPureToken ("EX", "NX").
	Token string
	// DisplayText is how the value is shown in hints, if not Name.
	DisplayText     string
	Since           string
	DeprecatedSince string
	Flags           ArgFlag
	// Args are the choices of an ArgOneof or the parts of an ArgBlock.
	Args []Arg
}

// Spec is the facts of one command or subcommand.
type Spec struct {
	// Name is lowercase; "container|sub" for a subcommand.
	Name string
	// Container is the parent's name for a subcommand, "" otherwise.
	Container string
	// Arity follows Redis: N > 0 means exactly N arguments, the name (and
	// subcommand) included; -N means at least N.
	Arity int
	// Flags include FlagMovableKeys where Redis derives it.
	Flags Flag
	// Categories include those Redis implies from the flags (@write,
	// @read, @admin, @dangerous, @pubsub, @fast, @slow, @blocking).
	Categories Category
	// Group is the reference's group, such as "string" or "server".
	Group string
	// Since is the Redis version that introduced the command.
	Since string
	// DeprecatedSince is the version that deprecated it, if any.
	DeprecatedSince string
	// DocFlags are the documentation flags.
	DocFlags DocFlag
	// Tips are the command tips, lowercase ("request_policy:all_shards").
	Tips []string
	// KeySpecs are the key specifications, in the reference's order.
	KeySpecs []KeySpec
	// Args are the arguments' syntax, after the name (and subcommand).
	Args []Arg
	// FirstKey, LastKey and Step are Redis's legacy key range, derived
	// from KeySpecs: 0, 0, 0 for a command without such a range.
	FirstKey, LastKey, Step int

	subcommands []*Spec // sorted by name; nil unless a container
}

// Subcommands returns a container's subcommands, sorted by name.
func (s *Spec) Subcommands() []*Spec { return s.subcommands }

// Subcommand finds a subcommand by its name alone ("setname"),
// case-insensitively, or returns nil.
func (s *Spec) Subcommand(name string) *Spec {
	return byName[s.Name+"|"+strings.ToLower(name)]
}

// byName indexes every Spec by Name; all lists them sorted by Name.
var (
	byName map[string]*Spec
	all    []*Spec
)

func init() {
	byName = make(map[string]*Spec, len(reference))
	all = make([]*Spec, len(reference))
	for i := range reference {
		s := &reference[i]
		derive(s)
		byName[s.Name] = s
		all[i] = s
	}
	for _, s := range all { // reference is sorted, so subcommands come sorted
		if s.Container != "" {
			if p := byName[s.Container]; p != nil {
				p.subcommands = append(p.subcommands, s)
			}
		}
	}
}

// Lookup finds a command or subcommand ("client|setname") by its full
// name, case-insensitively, or returns nil.
func Lookup(name string) *Spec {
	if s, ok := byName[name]; ok {
		return s
	}
	return byName[strings.ToLower(name)]
}

// LookupArgs finds the Spec a command line runs: the subcommand named by
// argv[1] when argv[0] is a container and argv has one, else the command.
// It returns nil for an unknown command or an unknown subcommand, as
// Redis's command lookup does.
func LookupArgs(argv [][]byte) *Spec {
	if len(argv) == 0 {
		return nil
	}
	s := Lookup(string(argv[0]))
	if s == nil || s.subcommands == nil || len(argv) < 2 {
		return s
	}
	return s.Subcommand(string(argv[1]))
}

// All returns every command and subcommand, sorted by name. The slice is
// shared: do not modify it.
func All() []*Spec { return all }

// derive fills in what Redis derives from the reference at start-up.
func derive(s *Spec) {
	s.Categories |= impliedCategories(s.Flags, s.Categories)
	var movable bool
	movable, s.FirstKey, s.LastKey, s.Step = legacyRange(s.KeySpecs)
	if movable {
		s.Flags |= FlagMovableKeys
	}
}

// impliedCategories are the categories Redis adds from a command's flags:
// every command is @fast or else @slow, and read-only scripting commands
// are not @read.
func impliedCategories(f Flag, c Category) Category {
	var add Category
	if f&FlagWrite != 0 {
		add |= CatWrite
	}
	if f&FlagReadonly != 0 && c&CatScripting == 0 {
		add |= CatRead
	}
	if f&FlagAdmin != 0 {
		add |= CatAdmin | CatDangerous
	}
	if f&FlagPubsub != 0 {
		add |= CatPubsub
	}
	if f&FlagFast != 0 {
		add |= CatFast
	}
	if f&FlagBlocking != 0 {
		add |= CatBlocking
	}
	if (c|add)&CatFast == 0 {
		add |= CatSlow
	}
	return add
}

// legacyRange derives Redis's (first, last, step) key range from the key
// specs, and whether the keys are movable (not all described by it): one
// range spec is used as is; several are merged when they are index/range
// specs of step 1, each following the previous one. Any other spec, or
// an incomplete one, makes the keys movable.
func legacyRange(specs []KeySpec) (movable bool, first, last, step int) {
	if len(specs) == 0 {
		return false, 0, 0, 0
	}
	abs := func(ks KeySpec) int { // LastKey as an absolute index, or negative
		if ks.Find.LastKey >= 0 {
			return ks.Begin.Index + ks.Find.LastKey
		}
		return ks.Find.LastKey
	}
	if len(specs) == 1 && specs[0].Begin.Kind == SearchIndex && specs[0].Find.Kind == FindRange {
		ks := specs[0]
		return ks.Flags&KeyIncomplete != 0, ks.Begin.Index, abs(ks), ks.Find.Step
	}
	first, last = -1, 0
	prevLast := 0
	for _, ks := range specs {
		if ks.Begin.Kind != SearchIndex || ks.Find.Kind != FindRange {
			movable = true
			continue
		}
		if ks.Find.Step != 1 || (prevLast != 0 && prevLast != ks.Begin.Index-1) {
			movable = true
			continue
		}
		if ks.Flags&KeyIncomplete != 0 {
			movable = true
		}
		if first < 0 || ks.Begin.Index < first {
			first = ks.Begin.Index
		}
		// Redis compares as unsigned, so a negative (from the end) last key
		// wins over any positive one.
		if l := abs(ks); uint(l) > uint(last) {
			last = l
		}
		prevLast = last
	}
	if first < 0 {
		return true, 0, 0, 0
	}
	return movable, first, last, 1
}
