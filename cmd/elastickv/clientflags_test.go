package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/redis"
)

func TestClientLimitFlags(t *testing.T) {
	parse := func(args ...string) (node.Config, error) {
		cfg := node.DefaultConfig()
		cfg.Name, cfg.DataDir = "n1", t.TempDir()
		cfg.RaftAddr, cfg.RedisAddr = "127.0.0.1:7001", "127.0.0.1:6381"
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := addClientFlags(fs, &cfg)
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		if err := f.apply(&cfg); err != nil {
			return cfg, err
		}
		return cfg, cfg.Validate()
	}

	cfg, err := parse()
	require.NoError(t, err)
	require.Equal(t, redis.DefaultClientLimits(), cfg.RedisClients, "the defaults survive the flags' default strings")
	require.Zero(t, cfg.QueryBufferLimit)

	cfg, err = parse("--maxclients", "50", "--timeout", "300", "--client-query-buffer-limit", "100mb",
		"--client-output-buffer-limit", "normal 256mb 8mb 10", "--maxmemory-clients", "1gb")
	require.NoError(t, err)
	require.Equal(t, redis.ClientLimits{
		MaxClients:       50,
		IdleTimeout:      5 * time.Minute,
		Output:           redis.OutputBufferLimit{Hard: 256 << 20, Soft: 8 << 20, SoftTimeout: 10 * time.Second},
		MaxMemoryClients: 1 << 30,
	}, cfg.RedisClients)
	require.Equal(t, 100<<20, cfg.QueryBufferLimit)
	// The flags filled the registry that CONFIG GET serves.
	snap := cfg.Params.Snapshot()
	for name, want := range map[string]string{
		"maxclients": "50", "timeout": "300", "client-query-buffer-limit": "104857600",
		"client-output-buffer-limit": "normal 268435456 8388608 10", "maxmemory-clients": "1073741824",
	} {
		p, ok := cfg.Params.Lookup(name)
		require.True(t, ok, name)
		require.Equal(t, want, snap.Format(p), name)
	}

	for _, bad := range [][]string{
		{"--maxclients", "0"},
		{"--timeout", "-1"},
		{"--client-query-buffer-limit", "1kb"}, // below --max-value-bytes
		{"--client-query-buffer-limit", "lots"},
		{"--client-output-buffer-limit", "pubsub 32mb 8mb 60"},
		{"--client-output-buffer-limit", "16mb"}, // below the largest reply
		{"--maxmemory-clients", "10%"},
	} {
		_, err := parse(bad...)
		require.Error(t, err, "%q", bad)
	}
}
