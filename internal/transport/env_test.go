package transport

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLaneModeFromEnv(t *testing.T) {
	cases := []struct {
		value string
		set   bool
		want  LaneMode
		warn  bool
	}{
		{set: false, want: FourLanes},
		{value: "", set: true, want: FourLanes},
		{value: "   ", set: true, want: FourLanes},
		{value: "1", set: true, want: FourLanes},
		{value: "true", set: true, want: FourLanes},
		{value: "TRUE", set: true, want: FourLanes},
		{value: " true\n", set: true, want: FourLanes},
		{value: "0", set: true, want: TwoLanes},
		{value: "false", set: true, want: TwoLanes},
		{value: "FALSE", set: true, want: TwoLanes},
		{value: " f ", set: true, want: TwoLanes},
		{value: "yes", set: true, want: FourLanes, warn: true},
		{value: "no", set: true, want: FourLanes, warn: true},
		{value: "2", set: true, want: FourLanes, warn: true},
		{value: "garbage", set: true, want: FourLanes, warn: true},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			getenv := func(k string) string {
				require.Equal(t, EnvDispatcherLanes, k)
				if tc.set {
					return tc.value
				}
				return ""
			}
			require.Equal(t, tc.want, LaneModeFromEnv(getenv, log))
			if tc.warn {
				require.Contains(t, buf.String(), "level=WARN")
				require.Contains(t, buf.String(), EnvDispatcherLanes)
			} else {
				require.Empty(t, buf.String())
			}
		})
	}
	// A nil logger falls back to slog.Default instead of panicking.
	require.Equal(t, FourLanes, LaneModeFromEnv(func(string) string { return "junk" }, nil))
}

func TestLaneModeSingleIsUnreachableFromEnv(t *testing.T) {
	for _, v := range []string{"single", "1", "one", "-1", "lanes=1"} {
		require.NotEqual(t, laneModeSingle, LaneModeFromEnv(func(string) string { return v }, slog.New(slog.DiscardHandler)))
	}
}

func TestLaneConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.LocalID = 1
	require.NoError(t, ok.Validate())

	for name, mut := range map[string]func(*Config){
		"no local id":     func(c *Config) { c.LocalID = 0 },
		"bad mode":        func(c *Config) { c.Lanes = 9 },
		"zero heartbeat":  func(c *Config) { c.HeartbeatBuffer = 0 },
		"chunk too big":   func(c *Config) { c.SnapshotChunkBytes = MaxSnapshotChunkBytes + 1 },
		"chunk zero":      func(c *Config) { c.SnapshotChunkBytes = 0 },
		"max below chunk": func(c *Config) { c.MaxMessageBytes = 1000; c.SnapshotChunkBytes = 2000 },
		"negative rate":   func(c *Config) { c.SnapshotRateBytesPerSec = -1 },
		"no spool":        func(c *Config) { c.SpoolDir = "" },
		"no send timeout": func(c *Config) { c.SendTimeout = 0 },
	} {
		c := ok
		mut(&c)
		require.Error(t, c.Validate(), name)
	}
	require.Greater(t, ok.grpcMessageLimit(), ok.MaxMessageBytes)
	require.Equal(t, 1024, ok.ReplicationBuffer)
	require.Equal(t, 512, ok.HeartbeatBuffer)
	require.Equal(t, 4, ok.SnapshotBuffer)
	require.Equal(t, 16, ok.OtherBuffer)
	require.Equal(t, "7", ok.peerName(7))
	ok.PeerName = func(id uint64) string { return "n" + string(rune('0'+id)) }
	require.Equal(t, "n7", ok.peerName(7))
}
