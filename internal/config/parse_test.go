package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMemoryAndOutputLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false}, {"512", 512, false}, {"1k", 1000, false}, {"1kb", 1024, false},
		{"512mb", 512 << 20, false}, {"2GB", 2 << 30, false}, {"1m", 1e6, false}, {"3g", 3e9, false},
		{"", 0, true}, {"-1", 0, true}, {"1tb", 0, true}, {"mb", 0, true}, {"99999999999gb", 0, true},
	} {
		got, err := ParseMemory(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	def := OutputBufferLimit{Hard: 128 << 20, Soft: 1 << 20, Seconds: 60}
	for _, tc := range []struct {
		in   string
		want OutputBufferLimit
		err  bool
	}{
		{"normal 0 0 0", OutputBufferLimit{}, false},
		{"256mb 64mb 60", OutputBufferLimit{256 << 20, 64 << 20, 60}, false},
		{"NORMAL 1gb 2mb 5", OutputBufferLimit{1 << 30, 2 << 20, 5}, false},
		{"200mb", OutputBufferLimit{200 << 20, def.Soft, def.Seconds}, false},
		{"pubsub 32mb 8mb 60", def, true},
		{"normal 1mb 1mb", def, true},
		{"normal 1mb 1mb -1", def, true},
	} {
		got, err := ParseOutputLimit(tc.in, def)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}
