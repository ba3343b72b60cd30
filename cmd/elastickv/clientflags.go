package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/redis"
)

// clientFlags are the Redis client limits, named after Redis's parameters.
// Sizes take redis.conf's forms (512mb, 1gb, 65536).
type clientFlags struct {
	timeout   *int
	queryBuf  *string
	outputBuf *string
	maxMemory *string
}

func addClientFlags(fs *flag.FlagSet, cfg *node.Config) *clientFlags {
	l := cfg.RedisClients
	fs.IntVar(&cfg.RedisClients.MaxClients, "maxclients", l.MaxClients,
		"most Redis clients connected at once; one more is answered \"-ERR max number of clients reached\" and closed")
	return &clientFlags{
		timeout: fs.Int("timeout", int(l.IdleTimeout/time.Second),
			"close a Redis client that sends nothing for this many seconds; 0 means never"),
		queryBuf: fs.String("client-query-buffer-limit", "",
			"largest command, and most unexecuted input, one client may send (e.g. 64mb); default 4 x --max-value-bytes + 1mb"),
		outputBuf: fs.String("client-output-buffer-limit", l.Output.String(),
			"\"[normal] <hard> <soft> <seconds>\" or one size (the hard limit): a client whose unsent replies would pass hard is closed; past soft the server waits for the client to read, at most seconds; 0 disables each"),
		maxMemory: fs.String("maxmemory-clients", redis.FormatMemory(l.MaxMemoryClients),
			"all Redis clients' input and output buffers together; past it the largest clients are closed; 0 means no limit"),
	}
}

// apply parses the flags that need parsing into cfg.
func (f *clientFlags) apply(cfg *node.Config) error {
	if *f.timeout < 0 {
		return fmt.Errorf("--timeout must not be negative")
	}
	cfg.RedisClients.IdleTimeout = time.Duration(*f.timeout) * time.Second
	if *f.queryBuf != "" {
		n, err := redis.ParseMemory(*f.queryBuf)
		if err != nil {
			return fmt.Errorf("--client-query-buffer-limit: %w", err)
		}
		if n > 1<<40 {
			return fmt.Errorf("--client-query-buffer-limit %q is too large", *f.queryBuf)
		}
		cfg.QueryBufferLimit = int(n)
	}
	out, err := redis.ParseOutputBufferLimit(*f.outputBuf, cfg.RedisClients.Output)
	if err != nil {
		return fmt.Errorf("--client-output-buffer-limit: %w", err)
	}
	cfg.RedisClients.Output = out
	if cfg.RedisClients.MaxMemoryClients, err = redis.ParseMemory(*f.maxMemory); err != nil {
		return fmt.Errorf("--maxmemory-clients: %w", err)
	}
	return nil
}
