package redis

// Glob patterns, as KEYS, SCAN MATCH and CONFIG GET take them.
//
// The syntax and its corner cases are those of Redis 7.2's stringmatchlen
// (without nocase), byte for byte:
//
//   - '*' matches any run of bytes, '?' any one byte;
//   - '[abc]' one byte of the class, '[^abc]' one byte not in it; 'a-z' in a
//     class is a range, and a reversed range 'z-a' means the same; '\x' in a
//     class is x itself; a class left open ("[ab") ends with the pattern;
//   - '\x' outside a class matches x; a lone trailing '\' matches '\';
//   - bytes compare as unsigned values (Redis compares C chars, which are
//     signed on x86: a range spanning 0x7f..0x80 differs there);
//   - an empty key matches only the empty pattern (KEYS and SCAN treat "*"
//     as "every key" before matching, as Redis does).
//
// Redis matches recursively, which is exponential without the pruning it
// added in 7.0 and still recurses once per '*'. This matcher is iterative:
// every token but '*' consumes exactly one key byte, so on a mismatch it is
// enough to let the most recent '*' absorb one more byte and retry the
// pattern from just after it; earlier stars never need revisiting (a longer
// match for them could only move the rest of the pattern to the right,
// which the latest star already covers). A match therefore examines at most
// (len(key)+1) x len(pattern) pattern bytes, and needs no stack. Patterns
// whose every token is literal or '?' run in one pass.

// globCheckSteps is how many pattern bytes the matcher examines between two
// looks at its budget, so that a single huge match still stops at the
// request's deadline.
const globCheckSteps = 1 << 14

// glob is a compiled KEYS/SCAN/CONFIG GET pattern. It is used by one
// goroutine (the command's): matching updates its step count.
type glob struct {
	pattern []byte
	// all: the pattern is "*", which KEYS and SCAN take as every key,
	// the empty key included.
	all bool
	// steps counts the pattern bytes examined by every match so far.
	// Tests read it to assert the matcher's complexity without a clock.
	steps uint64
}

func compileGlob(pattern []byte) *glob {
	return &glob{pattern: pattern, all: len(pattern) == 1 && pattern[0] == '*'}
}

// match reports whether key matches, with no bound but O(pattern x key).
func (g *glob) match(key []byte) bool {
	ok, _ := g.matchWithin(key, nil)
	return ok
}

// matchWithin is match that charges its work to b (nil: unbounded) and
// gives up, returning false and b's error, once b is spent.
func (g *glob) matchWithin(key []byte, b *budget) (bool, error) {
	if g.all {
		return true, nil
	}
	p := g.pattern
	if len(key) == 0 {
		return len(p) == 0, nil
	}
	var (
		pi, ki   int
		starPi   = -1 // pattern index just after the latest '*' run
		starKi   int  // key index that run's next retry starts at
		steps    uint64
		sinceChk int
	)
	defer func() { g.steps += steps }()
	for ki < len(key) {
		steps++
		if sinceChk++; sinceChk >= globCheckSteps && b != nil {
			sinceChk = 0
			if err := b.spend(globCheckSteps); err != nil {
				return false, err
			}
		}
		if pi < len(p) && p[pi] == '*' {
			for pi < len(p) && p[pi] == '*' {
				pi++
			}
			if pi == len(p) {
				return true, nil // a trailing '*' takes the rest of the key
			}
			starPi, starKi = pi, ki
			continue
		}
		if pi < len(p) {
			ok, next := matchToken(p, pi, key[ki])
			steps += uint64(next - pi - 1)
			if ok {
				pi, ki = next, ki+1
				continue
			}
		}
		if starPi < 0 {
			return false, nil
		}
		// The latest '*' absorbs one more byte; retry what follows it.
		starKi++
		pi, ki = starPi, starKi
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p), nil
}

// matchToken matches the one-byte token at p[i] (anything but '*') against
// c, and returns whether it matched and the index just after the token. A
// token's extent depends on the pattern alone, never on c.
func matchToken(p []byte, i int, c byte) (bool, int) {
	switch p[i] {
	case '?':
		return true, i + 1
	case '\\':
		if i+1 < len(p) {
			return p[i+1] == c, i + 2
		}
		return c == '\\', i + 1 // a lone trailing backslash is literal
	case '[':
		return matchClass(p, i, c)
	default:
		return p[i] == c, i + 1
	}
}

// matchClass matches the class opening at p[open] == '[' against c, with
// Redis's reading of odd classes: "[a-]" is the range a..']' and runs on
// past that bracket; an unterminated class ends with the pattern, and "["
// at the very end matches nothing.
func matchClass(p []byte, open int, c byte) (bool, int) {
	n := len(p)
	i := open + 1
	negate := i < n && p[i] == '^'
	if negate {
		i++
	}
	matched := false
	for {
		switch {
		case n-i >= 2 && p[i] == '\\':
			i++
			if p[i] == c {
				matched = true
			}
		case i < n && p[i] == ']':
			if negate {
				matched = !matched
			}
			return matched, i + 1
		case i >= n:
			// Unterminated: the class ends with the pattern.
			if negate {
				matched = !matched
			}
			// Redis steps back onto the last byte and then past it:
			// the token ends with the pattern either way.
			return matched, n
		case n-i >= 3 && p[i+1] == '-':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= c && c <= hi {
				matched = true
			}
			i += 2
		default:
			if p[i] == c {
				matched = true
			}
		}
		i++
	}
}

// literalPrefix returns the part of a glob pattern before its first special
// byte: every key the pattern matches (but the empty key, which only the
// empty pattern matches) starts with it, so KEYS and SCAN can seek straight
// to it and stop once keys no longer share it.
func literalPrefix(pattern []byte) []byte {
	for i, ch := range pattern {
		switch ch {
		case '*', '?', '[', '\\':
			return pattern[:i]
		}
	}
	return pattern
}
