package redis

import (
	"bytes"
	"errors"
	"math"
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
		opts   string
		flags  kv.SetFlags
		expiry kv.SetFlags
		arg    string
		err    error
	}{
		{"", 0, 0, "", nil},
		{"NX", kv.SetNX, 0, "", nil},
		{"xx", kv.SetXX, 0, "", nil},
		{"get", kv.SetGet, 0, "", nil},
		{"NX GET", kv.SetNX | kv.SetGet, 0, "", nil},
		{"nx nx", kv.SetNX, 0, "", nil},
		{"KEEPTTL XX", kv.SetXX, kv.SetKeepTTL, "", nil},
		{"EX 10", 0, kv.SetPX, "10", nil},
		{"px 10 NX", kv.SetNX, kv.SetPX, "10", nil},
		{"EXAT 1", 0, kv.SetPXAT, "1", nil},
		{"pxat 1 get", kv.SetGet, kv.SetPXAT, "1", nil},
		{"EX 1 EX 2", 0, kv.SetPX, "2", nil}, // the same option may repeat; the last wins
		{"EX abc", 0, kv.SetPX, "abc", nil},  // the number is checked after the syntax
		{"NX XX", 0, 0, "", errSyntax},
		{"XX nx", 0, 0, "", errSyntax},
		{"EX", 0, 0, "", errSyntax},
		{"EX 1 PX 2", 0, 0, "", errSyntax},
		{"EX 1 KEEPTTL", 0, 0, "", errSyntax},
		{"KEEPTTL PXAT 5", 0, 0, "", errSyntax},
		{"PERSIST", 0, 0, "", errSyntax}, // GETEX's, not SET's
		{"NXX", 0, 0, "", errSyntax},
		{"\u017fet", 0, 0, "", errSyntax}, // no Unicode case folding
	} {
		o, err := parseSetOptions(args(tc.opts))
		require.Equal(t, tc.err, err, tc.opts)
		if err != nil {
			continue
		}
		require.Equal(t, tc.flags, o.flags, tc.opts)
		require.Equal(t, tc.expiry, o.expiry.flags, tc.opts)
		require.Equal(t, tc.arg, string(o.expiry.arg), tc.opts)
	}
}

func TestSetExpiryResolve(t *testing.T) {
	for _, tc := range []struct {
		e     setExpiry
		flags kv.SetFlags
		delta int64
		err   string
	}{
		{setExpiry{flags: kv.SetPX, unit: 1000, arg: []byte("10")}, kv.SetPX, 10000, ""},
		{setExpiry{flags: kv.SetPXAT, unit: 1, arg: []byte("123")}, kv.SetPXAT, 123, ""},
		{setExpiry{flags: kv.SetKeepTTL}, kv.SetKeepTTL, 0, ""},
		{setExpiry{flags: kv.SetPX, unit: 1000, arg: []byte("0")}, 0, 0, "ERR invalid expire time in 'set' command"},
		{setExpiry{flags: kv.SetPX, unit: 1, arg: []byte("-5")}, 0, 0, "ERR invalid expire time in 'set' command"},
		{setExpiry{flags: kv.SetPX, unit: 1000, arg: []byte("9223372036854775")}, 0, 0, "ERR invalid expire time in 'set' command"},
		{setExpiry{flags: kv.SetPXAT, unit: 1000, arg: []byte("9223372036854776")}, 0, 0, "ERR invalid expire time in 'set' command"},
		{setExpiry{flags: kv.SetPXAT, unit: 1, arg: []byte("9223372036854775807")}, kv.SetPXAT, 9223372036854775807, ""},
		{setExpiry{flags: kv.SetPX, unit: 1, arg: []byte("x")}, 0, 0, kv.ErrTextNotInteger},
	} {
		f, d, err := tc.e.resolve(nowMillis(), "set")
		if tc.err != "" {
			require.EqualError(t, err, tc.err, "%+v", tc.e)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.flags, f)
		require.Equal(t, tc.delta, d)
	}
}

func TestParseExpireFlags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want kv.SetFlags
		err  string
	}{
		{"", 0, ""},
		{"nx", kv.ExpireNX, ""},
		{"XX GT", kv.ExpireXX | kv.ExpireGT, ""},
		{"lt", kv.ExpireLT, ""},
		{"NX XX", 0, "ERR NX and XX, GT or LT options at the same time are not compatible"},
		{"gt nx", 0, "ERR NX and XX, GT or LT options at the same time are not compatible"},
		{"GT LT", 0, "ERR GT and LT options at the same time are not compatible"},
		{"foo", 0, "ERR Unsupported option foo"},
	} {
		f, err := parseExpireFlags(args(tc.in))
		if tc.err != "" {
			require.EqualError(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, f, tc.in)
	}
}

func TestExpireMillisOverflow(t *testing.T) {
	_, ok := expireMillis(nowMillis(), math.MaxInt64/1000+1, 1000, true)
	require.False(t, ok)
	_, ok = expireMillis(nowMillis(), math.MinInt64/1000-1, 1000, false)
	require.False(t, ok)
	_, ok = expireMillis(nowMillis(), math.MaxInt64-1000, 1, false) // plus now overflows
	require.False(t, ok)
	ms, ok := expireMillis(nowMillis(), math.MaxInt64-1000, 1, true) // absolute: no addition
	require.True(t, ok)
	require.Equal(t, int64(math.MaxInt64-1000), ms)
	ms, ok = expireMillis(nowMillis(), -10, 1000, false) // negative deletes the key
	require.True(t, ok)
	require.Equal(t, int64(-10000), ms)
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
		{"1 MATCH a* count 5 TYPE string", scanArgs{cursor: 1, pattern: []byte("a*"), count: 5, typ: []byte("string")}, nil},
		{"1 TYPE hash", scanArgs{cursor: 1, count: 10, typ: []byte("hash")}, nil},
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

		if o, err := parseSetOptions(a); err == nil {
			if o.flags&kv.SetNX != 0 && o.flags&kv.SetXX != 0 {
				t.Fatalf("parseSetOptions(%q) accepted NX with XX", a)
			}
			if o.flags&^(kv.SetNX|kv.SetXX|kv.SetGet) != 0 {
				t.Fatalf("parseSetOptions(%q) = unknown flags %b", a, o.flags)
			}
			if (o.expiry.arg != nil) != (o.expiry.flags == kv.SetPX || o.expiry.flags == kv.SetPXAT) {
				t.Fatalf("parseSetOptions(%q): time option %b with argument %q", a, o.expiry.flags, o.expiry.arg)
			}
		} else if !errors.Is(err, errSyntax) {
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
