package redis

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFrameScanner(t *testing.T) {
	const max = 100
	for _, tc := range []struct {
		name   string
		stream string
		cut    int // index of the offending byte, or -1
		msg    string
	}{
		{"commands within bounds", cmd("SET", "k", strings.Repeat("v", 60)) + cmd("GET", "k"), -1, ""},
		{"inline", "PING\r\nGET k\n\r\n", -1, ""},
		{"bulk over the bound", "*2\r\n$3\r\nGET\r\n$200\r\n", 18, "command too large"},
		// 25 header bytes, then 73 payload bytes and their CRLF make 100.
		{"bound counts every byte", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$73\r\n", -1, ""},
		{"bound counts every byte, one more", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$74\r\n", 24, "command too large"},
		{"too many args", "*9999999\r\n", 9, "invalid multibulk length"},
		{"endless length line", "*1\r\n$" + strings.Repeat("1", 40), 37, "invalid multibulk or bulk length"},
		{"malformed is left to redcon", "*1\r\n+x" + strings.Repeat("y", 500), -1, ""},
		{"zero count is left to redcon", "*0\r\n" + strings.Repeat("y", 500), -1, ""},
		{"negative length is left to redcon", "*1\r\n$-1\r\n" + strings.Repeat("y", 500), -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := frameScanner{limits: frameLimits{maxCommandBytes: max}}
			n, _, v := f.feed([]byte(tc.stream))
			if tc.cut < 0 {
				require.Nil(t, v)
				require.Equal(t, len(tc.stream), n)
				return
			}
			require.NotNil(t, v)
			require.Equal(t, tc.msg, v.msg)
			require.Equal(t, tc.cut, n)
		})
	}

	// The byte count restarts with each command.
	f := frameScanner{limits: frameLimits{maxCommandBytes: 40}}
	for range 100 {
		_, _, v := f.feed([]byte(cmd("SET", "k", "0123456789")))
		require.Nil(t, v)
	}
	_, _, v := f.feed([]byte(strings.Repeat("x", maxInlineBytes) + "\n"))
	require.Nil(t, v)
	_, _, v = f.feed([]byte(strings.Repeat("x", maxInlineBytes+1)))
	require.NotNil(t, v)
}

// FuzzFrameScanner checks that the scanner's verdict does not depend on how
// the stream is split into reads, and that it never panics.
func FuzzFrameScanner(f *testing.F) {
	f.Add([]byte(cmd("SET", "k", "v")+cmd("GET", "k")), uint16(5), uint16(64))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$200\r\n"), uint16(14), uint16(100))
	f.Add([]byte("PING\r\n*1\r\n$4\r\nPING\r\n"), uint16(3), uint16(30))
	f.Add([]byte("*1\r\n$x\r\n"), uint16(2), uint16(30))
	f.Fuzz(func(t *testing.T, data []byte, split, max uint16) {
		limits := frameLimits{maxCommandBytes: int(max)}
		whole := frameScanner{limits: limits}
		n1, _, v1 := whole.feed(data)

		parts := frameScanner{limits: limits}
		at := int(split) % (len(data) + 1)
		n2, _, v2 := parts.feed(data[:at])
		if v2 == nil {
			var n int
			n, _, v2 = parts.feed(data[at:])
			n2 = at + n
		}
		if (v1 == nil) != (v2 == nil) || n1 != n2 {
			t.Fatalf("whole: %d %v; split at %d: %d %v", n1, v1, at, n2, v2)
		}
		if v1 != nil && v1.msg != v2.msg {
			t.Fatalf("whole: %q; split: %q", v1.msg, v2.msg)
		}
		if n1 < 0 || n1 > len(data) {
			t.Fatalf("offset %d outside the %d-byte stream", n1, len(data))
		}
		if v1 == nil && whole.state != parts.state {
			t.Fatalf("end state differs: %d vs %d", whole.state, parts.state)
		}
	})
}
