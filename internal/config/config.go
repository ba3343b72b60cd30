// Package config is elastickv's registry of configuration parameters: the
// single table that `elastickv server` flags fill at start and that CONFIG
// GET and CONFIG SET read and change at run time.
//
// Each parameter has a name (Redis's where Redis has one), aliases, a kind
// that fixes how values are parsed and printed, a default, bounds, whether
// it may change at run time, and a scope: node-local, or replicated through
// the Raft log. Replicated parameters are declared so later issues can fill
// them in, but until the log carries configuration entries they can only be
// set at start (by flag), never by CONFIG SET.
//
// Invariants:
//   - A Registry's current values are an immutable snapshot behind one
//     atomic pointer (copy on write): a reader never sees a half-applied
//     CONFIG SET, and reading costs one atomic load.
//   - A set of changes is parsed, validated (each value, then every check
//     over the whole proposed snapshot) and only then published, so a
//     CONFIG SET of several parameters applies all or none.
//   - Change hooks run after publication, under the registry's write lock,
//     in the order the changes are published: a hook never observes an
//     older snapshot after a newer one.
//
// The package imports nothing of elastickv, so every layer may import it.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind says how a parameter's values are parsed and printed.
type Kind int

const (
	// Bool is "yes" or "no".
	Bool Kind = iota
	// Int is a decimal integer within [Min, Max].
	Int
	// Bytes is a size in redis.conf's forms (512mb, 1gb, 64kb, 100),
	// within [Min, Max]; it is printed in bytes, as Redis's CONFIG GET does.
	Bytes
	// Seconds is a duration: a whole number of seconds within [Min, Max],
	// as Redis writes it, or a Go duration ("300ms") for finer values. It
	// is held in nanoseconds and printed in seconds when whole.
	Seconds
	// Enum is one of Enum, case-insensitively; printed in lower case.
	Enum
	// String is any text.
	String
	// OutputLimit is client-output-buffer-limit's "normal <hard> <soft>
	// <seconds>" form (see ParseOutputLimit).
	OutputLimit
)

// Scope says where a parameter's value lives.
type Scope int

const (
	// Local parameters are this node's own; CONFIG SET changes them on the
	// node it is sent to only, as Redis Cluster does.
	Local Scope = iota
	// Replicated parameters must be equal on every replica because apply
	// depends on them; they change only through the Raft log.
	Replicated
)

// Param describes one parameter.
type Param struct {
	// Name is the canonical, lower-case name.
	Name string
	// Aliases are other names CONFIG GET and SET accept (Redis's old names).
	Aliases []string
	// Kind fixes the value's syntax.
	Kind Kind
	// Default is the value before any flag or CONFIG SET, in the kind's syntax.
	Default string
	// Min and Max bound Int, Bytes and Seconds values.
	Min, Max int64
	// Enum lists the values of an Enum parameter, in lower case.
	Enum []string
	// Mutable parameters may be changed by CONFIG SET.
	Mutable bool
	// Scope is Local or Replicated.
	Scope Scope
	// Flag is the `elastickv server` flag that sets the parameter at start
	// ("" if none). It is usually Name.
	Flag string
	// Usage is the flag's help text.
	Usage string
}

// Value is a parsed value. Int holds Bool (0 or 1), Int, Bytes and Seconds
// values; Str holds Enum and String values; Out holds OutputLimit values.
type Value struct {
	Int int64
	Str string
	Out OutputBufferLimit
}

// OutputBufferLimit is the value of client-output-buffer-limit for normal
// clients: Hard and Soft in bytes, Seconds the soft limit's time.
type OutputBufferLimit struct {
	Hard, Soft, Seconds int64
}

// Errors a Set returns, wrapped with the parameter's name; callers map them
// to Redis's error words.
var (
	// ErrUnknown: no parameter has this name.
	ErrUnknown = errors.New("unknown parameter")
	// ErrImmutable: the parameter can be set only at start.
	ErrImmutable = errors.New("can't set immutable config")
	// ErrReplicated: the parameter is replicated and the log does not carry
	// configuration yet.
	ErrReplicated = errors.New("replicated parameter: every node must hold the same value, and the Raft log does not carry configuration changes yet, so it keeps its default")
	// ErrDuplicate: one Set names a parameter twice.
	ErrDuplicate = errors.New("duplicate parameter")
)

// SetError is a failed Set: Name is the argument that caused it, as given.
type SetError struct {
	Name string
	Err  error
}

func (e *SetError) Error() string { return fmt.Sprintf("%s: %v", e.Name, e.Err) }

// Unwrap returns the cause.
func (e *SetError) Unwrap() error { return e.Err }

// Check validates a whole proposed snapshot (relations between parameters);
// its error is reported against the parameter named in the returned
// *SetError when it is one, else against the first parameter being set.
type Check func(Snapshot) error

// Registry holds the parameters and their current values. It is safe for
// concurrent use.
type Registry struct {
	params []*Param
	index  map[string]int // canonical names and aliases, lower case

	cur atomic.Pointer[[]Value]

	mu     sync.Mutex // serialises Set; held while hooks run
	checks []Check
	hooks  []func(Snapshot)
}

// NewRegistry builds a registry of params at their defaults. A param whose
// default does not parse is a programming error, reported here.
func NewRegistry(params []Param) (*Registry, error) {
	r := &Registry{index: map[string]int{}}
	vals := make([]Value, len(params))
	for i := range params {
		p := params[i]
		for _, n := range append([]string{p.Name}, p.Aliases...) {
			if _, dup := r.index[n]; dup || n != strings.ToLower(n) {
				return nil, fmt.Errorf("config: parameter name %q is duplicate or not lower case", n)
			}
			r.index[n] = i
		}
		v, err := p.parse(p.Default, Value{})
		if err != nil {
			return nil, fmt.Errorf("config: default of %s: %w", p.Name, err)
		}
		vals[i] = v
		r.params = append(r.params, &p)
	}
	r.cur.Store(&vals)
	return r, nil
}

// Params returns the parameters in table order. The caller must not
// change them.
func (r *Registry) Params() []*Param { return r.params }

// Lookup finds a parameter by name or alias, case-insensitively.
func (r *Registry) Lookup(name string) (*Param, bool) {
	i, ok := r.index[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	return r.params[i], true
}

// Snapshot returns the current values; it never changes afterwards.
func (r *Registry) Snapshot() Snapshot { return Snapshot{r: r, v: *r.cur.Load()} }

// AddCheck adds a validation of whole snapshots, run on every Set. The
// current values must pass it.
func (r *Registry) AddCheck(c Check) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := c(r.Snapshot()); err != nil {
		return fmt.Errorf("config: current values fail a check: %w", err)
	}
	r.checks = append(r.checks, c)
	return nil
}

// OnChange registers f to run after every successful Set with the new
// snapshot. f runs with the registry locked: it must be quick and must not
// call Set.
func (r *Registry) OnChange(f func(Snapshot)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, f)
}

// Set parses and applies name/value pairs as CONFIG SET does: every
// parameter must exist, be mutable and node-local, appear once and parse;
// the resulting snapshot must pass every check; then all are published at
// once. On error nothing changes and the error is a *SetError.
func (r *Registry) Set(pairs [][2]string) error { return r.set(pairs, false) }

// SetAtStart is Set for flags: immutable and replicated parameters are
// accepted too, since nothing has read them yet.
func (r *Registry) SetAtStart(pairs [][2]string) error { return r.set(pairs, true) }

func (r *Registry) set(pairs [][2]string, atStart bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	vals := slicesClone(*r.cur.Load())
	// Names first, then values, as Redis checks them: an unknown or
	// repeated name is reported before any bad value.
	idx := make([]int, len(pairs))
	seen := make(map[int]bool, len(pairs))
	for j, kv := range pairs {
		i, ok := r.index[strings.ToLower(kv[0])]
		if !ok {
			return &SetError{Name: kv[0], Err: ErrUnknown}
		}
		if seen[i] {
			return &SetError{Name: kv[0], Err: ErrDuplicate}
		}
		seen[i], idx[j] = true, i
	}
	for j, kv := range pairs {
		i := idx[j]
		p := r.params[i]
		v, err := p.parse(kv[1], vals[i])
		// Setting a parameter to the value it has changes nothing and is
		// accepted even when the parameter is immutable or replicated, so
		// that a client re-applying the configuration CONFIG GET gave it
		// does not fail. Any other value is refused for being immutable
		// (or replicated), whether or not it parses, as Redis does.
		if !atStart && (err != nil || v != vals[i]) {
			switch {
			case p.Scope == Replicated:
				return &SetError{Name: kv[0], Err: ErrReplicated}
			case !p.Mutable:
				return &SetError{Name: kv[0], Err: ErrImmutable}
			}
		}
		if err != nil {
			return &SetError{Name: kv[0], Err: err}
		}
		vals[i] = v
	}
	next := Snapshot{r: r, v: vals}
	for _, c := range r.checks {
		if err := c(next); err != nil {
			var se *SetError
			if errors.As(err, &se) {
				return se
			}
			name := ""
			if len(pairs) > 0 {
				name = pairs[0][0]
			}
			return &SetError{Name: name, Err: err}
		}
	}
	r.cur.Store(&vals)
	for _, h := range r.hooks {
		h(next)
	}
	return nil
}

func slicesClone(v []Value) []Value { return append([]Value(nil), v...) }

// Snapshot is an immutable view of every parameter's value.
type Snapshot struct {
	r *Registry
	v []Value
}

// Value returns the value of the parameter called name; it panics on an
// unknown name, which only a typo in elastickv's own code can produce.
func (s Snapshot) Value(name string) Value {
	i, ok := s.r.index[name]
	if !ok {
		panic("config: no parameter " + strconv.Quote(name))
	}
	return s.v[i]
}

// Int returns an Int, Bytes or Bool parameter's value.
func (s Snapshot) Int(name string) int64 { return s.Value(name).Int }

// Duration returns a Seconds parameter's value.
func (s Snapshot) Duration(name string) time.Duration { return time.Duration(s.Value(name).Int) }

// Format prints p's value as CONFIG GET does.
func (s Snapshot) Format(p *Param) string { return p.Format(s.v[s.r.index[p.Name]]) }

// Parse parses a value of p's kind and checks its bounds.
func (p *Param) Parse(s string) (Value, error) { return p.parse(s, Value{}) }

// parse parses s; cur is the value it replaces, which a partial
// client-output-buffer-limit (one size) keeps the rest of.
func (p *Param) parse(s string, cur Value) (Value, error) {
	switch p.Kind {
	case Bool:
		switch strings.ToLower(s) {
		case "yes":
			return Value{Int: 1}, nil
		case "no":
			return Value{}, nil
		}
		return Value{}, errors.New("argument must be 'yes' or 'no'")
	case Seconds:
		t := strings.TrimSpace(s)
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			if _, err := p.bounded(n); err != nil {
				return Value{}, err
			}
			return Value{Int: n * int64(time.Second)}, nil
		}
		d, err := time.ParseDuration(t)
		if err != nil {
			return Value{}, errors.New("argument couldn't be parsed into an integer")
		}
		if d < time.Duration(p.Min)*time.Second || d > time.Duration(p.Max)*time.Second {
			return Value{}, fmt.Errorf("argument must be between %d and %d inclusive", p.Min, p.Max)
		}
		return Value{Int: int64(d)}, nil
	case Int:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return Value{}, errors.New("argument couldn't be parsed into an integer")
		}
		return p.bounded(n)
	case Bytes:
		n, err := ParseMemory(s)
		if err != nil {
			return Value{}, err
		}
		return p.bounded(n)
	case Enum:
		l := strings.ToLower(s)
		for _, e := range p.Enum {
			if l == e {
				return Value{Str: l}, nil
			}
		}
		return Value{}, fmt.Errorf("argument(s) must be one of the following: %s", strings.Join(p.Enum, ", "))
	case String:
		return Value{Str: s}, nil
	case OutputLimit:
		l, err := ParseOutputLimit(s, cur.Out)
		if err != nil {
			return Value{}, err
		}
		return Value{Out: l}, nil
	}
	return Value{}, fmt.Errorf("parameter %s has an unknown kind %d", p.Name, p.Kind)
}

func (p *Param) bounded(n int64) (Value, error) {
	if n < p.Min || n > p.Max {
		return Value{}, fmt.Errorf("argument must be between %d and %d inclusive", p.Min, p.Max)
	}
	return Value{Int: n}, nil
}

// Format prints v as CONFIG GET does: sizes in bytes, booleans as yes/no.
func (p *Param) Format(v Value) string {
	switch p.Kind {
	case Bool:
		if v.Int != 0 {
			return "yes"
		}
		return "no"
	case Int, Bytes:
		return strconv.FormatInt(v.Int, 10)
	case Seconds:
		if v.Int%int64(time.Second) != 0 {
			return time.Duration(v.Int).String()
		}
		return strconv.FormatInt(v.Int/int64(time.Second), 10)
	case OutputLimit:
		return fmt.Sprintf("normal %d %d %d", v.Out.Hard, v.Out.Soft, v.Out.Seconds)
	default:
		return v.Str
	}
}

// ParseMemory parses a byte size the way redis.conf writes one: a number
// with an optional unit b, k (1000), kb (1024), m, mb, g or gb, in any case.
func ParseMemory(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid memory size %q: want a number with an optional unit (b, k, kb, m, mb, g, gb)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("memory size %q is too large", s)
	}
	return n * mult, nil
}

// FormatMemory writes n bytes in the largest binary unit (gb, mb, kb) that
// divides it exactly, as ParseMemory reads it back.
func FormatMemory(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// ParseOutputLimit parses client-output-buffer-limit: Redis's "normal
// <hard> <soft> <seconds>", the same without the class, or one size, which
// sets the hard limit and keeps base's soft limit and seconds. Only the
// normal class exists in elastickv (no replicas in Redis's sense, no
// pub/sub yet), so other classes are refused rather than silently ignored.
func ParseOutputLimit(s string, base OutputBufferLimit) (OutputBufferLimit, error) {
	f := strings.Fields(s)
	if len(f) > 0 && strings.EqualFold(f[0], "normal") {
		f = f[1:]
	}
	if len(f) == 1 {
		hard, err := ParseMemory(f[0])
		if err != nil {
			return OutputBufferLimit{}, err
		}
		base.Hard = hard
		return base, nil
	}
	if len(f) != 3 {
		return OutputBufferLimit{}, fmt.Errorf("invalid client-output-buffer-limit %q: want \"[normal] <hard> <soft> <seconds>\" or one size (only normal clients exist)", s)
	}
	hard, err := ParseMemory(f[0])
	if err != nil {
		return OutputBufferLimit{}, err
	}
	soft, err := ParseMemory(f[1])
	if err != nil {
		return OutputBufferLimit{}, err
	}
	secs, err := strconv.ParseInt(f[2], 10, 32)
	if err != nil || secs < 0 {
		return OutputBufferLimit{}, fmt.Errorf("invalid seconds %q: want a non-negative integer", f[2])
	}
	return OutputBufferLimit{Hard: hard, Soft: soft, Seconds: secs}, nil
}

func asSetError(err error, target **SetError) bool { return errors.As(err, target) }
