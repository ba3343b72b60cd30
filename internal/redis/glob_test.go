package redis

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLiteralPrefix(t *testing.T) {
	for pattern, want := range map[string]string{
		"":             "",
		"*":            "",
		"user:*":       "user:",
		"user:?":       "user:",
		"a[bc]":        "a",
		`a\*b`:         "a",
		"exact":        "exact",
		"caf\xc3\xa9*": "caf\xc3\xa9", // bytes compare as bytes: no rune decoding
	} {
		require.Equal(t, want, string(literalPrefix([]byte(pattern))), pattern)
	}
}

// globCases are Redis 7.2's answers (stringmatchlen, nocase off), including
// its odd corners, which the matcher must reproduce.
var globCases = []struct {
	pattern, key string
	want         bool
}{
	// Stars and question marks.
	{"*", "", true}, // KEYS * takes every key, the empty one too
	{"**", "", false},
	{"", "", true},
	{"", "a", false},
	{"?", "", false},
	{"a*", "", false},
	{"*", "anything", true},
	{"user:*", "user:1", true},
	{"user:*", "user:", true},
	{"user:*", "use", false},
	{"*:1", "user:1", true},
	{"*:1", "user:10", false},
	{"a?c", "abc", true},
	{"a?c", "ac", false},
	{"a*b*c", "abc", true},
	{"a*b*c", "aXbYc", true},
	{"a*b*c", "aXbYcZ", false},
	{"a*b*c*", "aXbYcZ", true},
	{"a**b", "ab", true},
	{"*a*", "bab", true},
	{"*?", "a", true},
	{"a*?", "a", false},
	{"a*?", "ab", true},
	{"h*llo", "heeeello", true},
	{"*ab", "aab", true},
	{"*aab", "aaab", true},
	{"*abab", "abaabab", true},
	{"*a*a*a*a*a*b", strings.Repeat("a", 2000), false},
	{"*a*a*a*a*a*b", strings.Repeat("a", 2000) + "b", true},
	// Classes.
	{"h[ae]llo", "hello", true},
	{"h[ae]llo", "hallo", true},
	{"h[ae]llo", "hillo", false},
	{"h[^e]llo", "hallo", true},
	{"h[^e]llo", "hello", false},
	{"h[!e]llo", "h!llo", true}, // '!' is not a negation in Redis
	{"h[!e]llo", "hallo", false},
	{"h[!e]llo", "hello", true},
	{"h[a-b]llo", "hbllo", true},
	{"h[a-b]llo", "hcllo", false},
	{"h[b-a]llo", "hallo", true}, // a reversed range is the same range
	{"[a-c-e]", "d", false},      // "a-c", then '-' and 'e' literally
	{"[a-c-e]", "-", true},
	{"[a-c-e]", "e", true},
	{"[-a]", "-", true},
	{"[a-]", "]", true}, // "a-]" is the range ']'..'a', and the class runs on
	{"[a-]", "^", true},
	{"[a-]", "b", false},
	{"[a-]x", "x", true}, // ... so 'x' is in it too
	{"[a-]x", "ax", false},
	{"[]a]", "]", false}, // "[]" is an empty class, never matching
	{"[]a]", "a", false},
	{`[\]]`, "]", true},
	{`[\-]`, "-", true},
	{`[\a-c]`, "b", false}, // the escape takes 'a' alone; "-c" is literal
	{`[\a-c]`, "c", true},
	{"[abc", "b", true}, // unterminated: the class ends with the pattern
	{"[abc", "d", false},
	{"[", "[", false}, // an empty unterminated class
	{"[^", "x", true}, // ... negated, matches anything
	{"a[", "a[", false},
	{"[^]", "x", true},
	{"[^]", "]", true},
	{"[\xff]", "\xff", true},
	{"[\x80-\xff]", "\xc3", true},
	{"[a-z]*", "hello", true},
	{"[a-z]*", "Hello", false}, // no nocase
	// Escapes.
	{`a\*`, "a*", true},
	{`a\*`, "ab", false},
	{`\?`, "?", true},
	{`\?`, "a", false},
	{`\[a]`, "[a]", true},
	{`a\`, `a\`, true}, // a lone trailing backslash is literal
	{`\\`, `\`, true},
	{`*\`, `xx\`, true},
	// Bytes, not runes.
	{"caf\xc3\xa9", "caf\xc3\xa9", true},
	{"caf?", "caf\xc3\xa9", false}, // é is two bytes
	{"caf??", "caf\xc3\xa9", true},
	{"\xff*", "\xff\xfe", true},
}

func TestGlobMatchesLikeRedis(t *testing.T) {
	for _, tc := range globCases {
		got := compileGlob([]byte(tc.pattern)).match([]byte(tc.key))
		require.Equal(t, tc.want, got, "%.40q ~ %.40q", tc.pattern, tc.key)
		if tc.pattern != "*" || tc.key != "" { // KEYS's special case, not stringmatchlen's
			require.Equal(t, tc.want, refGlobMatch([]byte(tc.pattern), []byte(tc.key)),
				"the reference disagrees with the table: %.40q ~ %.40q", tc.pattern, tc.key)
		}
	}
}

// TestGlobIsLinearOnPathologicalPatterns counts the matcher's steps: they
// must stay within a small constant of len(pattern) x len(key) whatever
// the pattern, and within a small constant of len(key) for patterns whose
// stars are each followed by a single byte, however many stars.
func TestGlobIsLinearOnPathologicalPatterns(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 64<<10)
	short := long[:4<<10]
	for _, tc := range []struct {
		pattern string
		key     []byte
		linear  bool // steps bounded by a constant times len(key)+len(pattern)
	}{
		{"a*a*a*a*a*a*a*a*a*a*b", long, true},
		{strings.Repeat("*a", 1000) + "*b", long, true},
		{strings.Repeat("*a", 100000) + "*", long, true}, // more stars than Redis's 1000 nesting
		{"*" + strings.Repeat("?", 100) + "b", short, false},
		{"*" + strings.Repeat("a", 500) + "b", short, false},
		{"*[a]*[a][a][a]*" + strings.Repeat("[^b]", 200) + "b", short, false},
	} {
		g := compileGlob([]byte(tc.pattern))
		const runs = 10
		for range runs {
			require.False(t, g.match(tc.key), "%.40q", tc.pattern)
		}
		perMatch := g.steps / runs
		bound := 2 * uint64(len(tc.pattern)+1) * uint64(len(tc.key)+1)
		if tc.linear {
			bound = 4 * uint64(len(tc.pattern)+len(tc.key))
		}
		require.LessOrEqual(t, perMatch, bound, "%.40q: %d steps per match", tc.pattern, perMatch)
		require.Positive(t, perMatch)
	}
	// Redis would recurse once per star: here 1 Mi stars cost no stack.
	deep := strings.Repeat("*a", 1<<20)
	require.True(t, compileGlob([]byte(deep)).match(bytes.Repeat([]byte("a"), 1<<20)))
}

// TestGlobStopsWhenItsBudgetIsSpent: one match too big for any deadline
// (about 2^40 steps) gives up within globCheckSteps steps of the budget
// running out, without a clock in the assertion.
func TestGlobStopsWhenItsBudgetIsSpent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &budget{cmd: "keys", base: ctx, deadline: time.Now().Add(time.Hour)}
	g := compileGlob([]byte("*" + strings.Repeat("a", 1<<20) + "b"))
	key := bytes.Repeat([]byte("a"), 2<<20)
	matched, err := g.matchWithin(key, b)
	require.False(t, matched)
	require.ErrorIs(t, err, errShuttingDown)
	require.LessOrEqual(t, g.steps, uint64(2*globCheckSteps))
	require.Equal(t, abortShutdown, b.reason)

	// A deadline that passed stops it the same way.
	b = &budget{cmd: "keys", base: context.Background(), deadline: time.Now().Add(-time.Second), limit: time.Second}
	g.steps = 0
	_, err = g.matchWithin(key, b)
	require.ErrorContains(t, err, "ERR KEYS exceeded its time limit of 1s")
	require.LessOrEqual(t, g.steps, uint64(2*globCheckSteps))
	require.Equal(t, abortDeadline, b.reason)
}

// FuzzGlobMatch compares the matcher with refGlobMatch, a direct recursive
// reading of Redis's stringmatchlen, on short inputs.
func FuzzGlobMatch(f *testing.F) {
	for _, tc := range globCases {
		if len(tc.pattern) <= 16 && len(tc.key) <= 16 {
			f.Add([]byte(tc.pattern), []byte(tc.key))
		}
	}
	f.Fuzz(func(t *testing.T, pattern, key []byte) {
		if len(pattern) > 24 || len(key) > 24 {
			return // the reference is exponential
		}
		g := compileGlob(pattern)
		want := refGlobMatch(pattern, key) || g.all
		if got := g.match(key); got != want {
			t.Fatalf("%q ~ %q: got %v, Redis says %v", pattern, key, got, want)
		}
		if lp := literalPrefix(pattern); want && len(key) > 0 && !bytes.HasPrefix(key, lp) {
			t.Fatalf("%q matches %q, which lacks the literal prefix %q", pattern, key, lp)
		}
	})
}

// refGlobMatch is Redis 7.2's stringmatchlen (nocase off) transcribed
// statement by statement onto indexes, recursion and all, as the oracle for
// the fuzz target (bar its nesting limit of 1000 stars). Reads past the end of the pattern see 0, as C sees the
// string's terminator.
func refGlobMatch(p, s []byte) bool {
	at := func(i int) byte {
		if i < len(p) {
			return p[i]
		}
		return 0
	}
	// skipLonger is Redis's pruning: once the rest of the pattern after a
	// star matched no suffix at all, no earlier star can help either.
	skipLonger := false
	var rec func(pi, si int) bool
	rec = func(pi, si int) bool {
		for pi < len(p) && si < len(s) {
			switch p[pi] {
			case '*':
				for pi < len(p) && at(pi+1) == '*' {
					pi++
				}
				if pi == len(p)-1 {
					return true
				}
				for si < len(s) {
					if rec(pi+1, si) {
						return true
					}
					if skipLonger {
						return false
					}
					si++
				}
				skipLonger = true
				return false
			case '?':
				si++
			case '[':
				pi++
				not := at(pi) == '^'
				if not {
					pi++
				}
				match := false
			class:
				for {
					switch {
					case at(pi) == '\\' && len(p)-pi >= 2:
						pi++
						if p[pi] == s[si] {
							match = true
						}
					case at(pi) == ']' && pi < len(p):
						break class
					case pi == len(p):
						pi--
						break class
					case len(p)-pi >= 3 && p[pi+1] == '-':
						start, end, c := p[pi], p[pi+2], s[si]
						if start > end {
							start, end = end, start
						}
						pi += 2
						if c >= start && c <= end {
							match = true
						}
					default:
						if p[pi] == s[si] {
							match = true
						}
					}
					pi++
				}
				if not {
					match = !match
				}
				if !match {
					return false
				}
				si++
			case '\\':
				if len(p)-pi >= 2 {
					pi++
				}
				fallthrough
			default:
				if p[pi] != s[si] {
					return false
				}
				si++
			}
			pi++
			if si == len(s) {
				for at(pi) == '*' && pi < len(p) {
					pi++
				}
				break
			}
		}
		return pi == len(p) && si == len(s)
	}
	return rec(0, 0)
}
