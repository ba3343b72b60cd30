package redis

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
)

func args(s string) [][]byte {
	if s == "" {
		return nil
	}
	var out [][]byte
	for _, a := range strings.Split(s, " ") {
		out = append(out, []byte(a))
	}
	return out
}

func TestParseSetOptions(t *testing.T) {
	for _, tc := range []struct {
		opts  string
		flags kv.SetFlags
		err   error
	}{
		{"", 0, nil},
		{"NX", kv.SetNX, nil},
		{"xx", kv.SetXX, nil},
		{"get", kv.SetGet, nil},
		{"NX GET", kv.SetNX | kv.SetGet, nil},
		{"nx nx", kv.SetNX, nil},
		{"KEEPTTL XX", kv.SetXX, nil},
		{"NX XX", 0, errSyntax},
		{"XX nx", 0, errSyntax},
		{"EX 10", 0, errExpiryUnsupported},
		{"px 10", 0, errExpiryUnsupported},
		{"EXAT 1", 0, errExpiryUnsupported},
		{"pxat 1", 0, errExpiryUnsupported},
		{"EX", 0, errExpiryUnsupported},
		{"NXX", 0, errSyntax},
		{"\u017fet", 0, errSyntax}, // no Unicode case folding
	} {
		flags, err := parseSetOptions(args(tc.opts))
		require.Equal(t, tc.err, err, tc.opts)
		require.Equal(t, tc.flags, flags, tc.opts)
	}
}

func TestParseScanArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want scanArgs
		err  error
	}{
		{"0", scanArgs{count: 10}, nil},
		{"18446744073709551615", scanArgs{cursor: 1<<64 - 1, count: 10}, nil},
		{"007 COUNT 3", scanArgs{cursor: 7, count: 3}, nil},
		{"1 MATCH a* count 5 TYPE string", scanArgs{cursor: 1, pattern: []byte("a*"), count: 5}, nil},
		{"1 TYPE hash", scanArgs{cursor: 1, count: 10, noType: true}, nil},
		{"0 COUNT 99999999", scanArgs{count: maxScanCount}, nil},
		{"18446744073709551616", scanArgs{}, errInvalidCursor},
		{"-1", scanArgs{}, errInvalidCursor},
		{"+1", scanArgs{}, errInvalidCursor},
		{"1_0", scanArgs{}, errInvalidCursor},
		{"", scanArgs{}, errSyntax},
		{"0 COUNT", scanArgs{count: 10}, errSyntax},
		{"0 COUNT 0", scanArgs{count: 10}, errSyntax},
		{"0 COUNT -3", scanArgs{count: 10}, errSyntax},
		{"0 COUNT 1.5", scanArgs{count: 10}, errNotInteger},
		{"0 LIMIT 4", scanArgs{count: 10}, errSyntax},
	} {
		got, err := parseScanArgs(args(tc.in))
		require.Equal(t, tc.err, err, tc.in)
		if err == nil {
			require.Equal(t, tc.want, got, tc.in)
		}
	}
}

func TestUnknownCommandMessage(t *testing.T) {
	require.Equal(t, "ERR unknown command 'x', with args beginning with: ",
		unknownCommandMessage(args("x")))
	require.Equal(t, "ERR unknown command 'x', with args beginning with: 'a' '' ",
		unknownCommandMessage([][]byte{[]byte("x"), []byte("a"), {}}))
	// The echoed arguments stop once 128 bytes have been echoed.
	many := make([][]byte, 100)
	many[0] = []byte("x")
	for i := 1; i < len(many); i++ {
		many[i] = []byte("abcdefgh")
	}
	msg := unknownCommandMessage(many)
	require.Less(t, len(msg), 220)
	require.True(t, strings.HasSuffix(msg, "' "), msg)
}

func TestCursorTableIsBounded(t *testing.T) {
	tab := newCursorTable(3, 10)
	a := tab.put([]byte("aaaa"))
	b := tab.put([]byte("bbbb"))
	require.NotEqual(t, a, b)
	_, ok := tab.get(a) // a becomes most recently used
	require.True(t, ok)
	c := tab.put([]byte("cccc")) // 12 bytes > 10: evicts b, the LRU
	_, ok = tab.get(b)
	require.False(t, ok)
	next, ok := tab.get(a)
	require.True(t, ok)
	require.Equal(t, "aaaa", string(next))
	tab.put([]byte("d"))
	tab.put([]byte("e")) // 4 entries > 3: evicts c
	_, ok = tab.get(c)
	require.False(t, ok)
	require.Equal(t, 3, tab.len())

	// An entry bigger than the byte budget still stays, alone.
	huge := tab.put(bytes.Repeat([]byte("h"), 100))
	require.Equal(t, 1, tab.len())
	_, ok = tab.get(huge)
	require.True(t, ok)
	_, ok = tab.get(0)
	require.False(t, ok, "0 is never a stored cursor")
}

// FuzzCommandParsing feeds the argument parsers arbitrary arguments
// (NUL-separated) and checks that they never panic and that what they
// accept is well-formed.
func FuzzCommandParsing(f *testing.F) {
	for _, seed := range []string{
		"SET\x00k\x00v\x00NX\x00GET",
		"0\x00MATCH\x00user:*\x00COUNT\x0010",
		"-9223372036854775808",
		"user:\\*\x00user:*",
		"*a*a*a*b\x00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"caf\xc3\xa9?\x00caf\xc3\xa9s",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := bytes.Split(data, []byte{0})

		for _, arg := range a {
			if n, err := parseInt(arg); err == nil {
				// Redis integers are canonical: what parses prints back.
				if got := strconv.FormatInt(n, 10); got != string(arg) {
					t.Fatalf("parseInt(%q) = %d, which prints as %q", arg, n, got)
				}
			} else if !errors.Is(err, errNotInteger) {
				t.Fatalf("parseInt(%q): unexpected error %v", arg, err)
			}
		}

		if flags, err := parseSetOptions(a); err == nil {
			if flags&kv.SetNX != 0 && flags&kv.SetXX != 0 {
				t.Fatalf("parseSetOptions(%q) accepted NX with XX", a)
			}
			if flags&^(kv.SetNX|kv.SetXX|kv.SetGet) != 0 {
				t.Fatalf("parseSetOptions(%q) = unknown flags %b", a, flags)
			}
		} else if !errors.Is(err, errSyntax) && !errors.Is(err, errExpiryUnsupported) {
			t.Fatalf("parseSetOptions(%q): unexpected error %v", a, err)
		}

		if sa, err := parseScanArgs(a); err == nil {
			if sa.count < 1 || sa.count > maxScanCount {
				t.Fatalf("parseScanArgs(%q): count %d out of range", a, sa.count)
			}
		} else if !errors.Is(err, errSyntax) && !errors.Is(err, errInvalidCursor) && !errors.Is(err, errNotInteger) {
			t.Fatalf("parseScanArgs(%q): unexpected error %v", a, err)
		}

		// KEYS and SCAN skip keys outside the literal prefix: that must
		// never skip a key the pattern matches.
		if len(a) >= 2 {
			pattern, key := a[0], a[1]
			prefix := literalPrefix(pattern)
			if !bytes.HasPrefix(pattern, prefix) {
				t.Fatalf("literalPrefix(%q) = %q is not a prefix", pattern, prefix)
			}
			if compileGlob(pattern).match(key) && !bytes.HasPrefix(key, prefix) {
				t.Fatalf("%q matches %q but lacks its prefix %q", key, pattern, prefix)
			}
		}

		if len(a) > 0 {
			msg := unknownCommandMessage(a)
			if len(msg) > 2*maxErrorEcho+len("ERR unknown command '', with args beginning with: ")+3*len(a) {
				t.Fatalf("unknown command message of %d bytes", len(msg))
			}
		}
	})
}
