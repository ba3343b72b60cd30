package main

import (
	"flag"

	"github.com/elastickv/elastickv/internal/config"
	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/redis"
)

// clientFlags are the flags of the node's configuration registry
// (internal/config): the Redis client limits, named after Redis's
// parameters, whose defaults and help come from the registry's table and
// which CONFIG SET can change later. Sizes take redis.conf's forms (512mb,
// 1gb, 65536).
type clientFlags struct {
	reg   *config.Registry
	given func(name string) bool
}

func addClientFlags(fs *flag.FlagSet, _ *node.Config) *clientFlags {
	reg := config.New()
	return &clientFlags{reg: reg, given: reg.RegisterFlags(fs)}
}

// apply copies the registry's client limits into cfg and hands cfg the
// registry, which the Redis server then serves CONFIG from.
func (f *clientFlags) apply(cfg *node.Config) error {
	var qbuf int
	cfg.RedisClients, qbuf = redis.ClientLimitsFrom(f.reg)
	if f.given(config.ClientQueryBufferLimit) {
		cfg.QueryBufferLimit = qbuf
	} else {
		// The default follows --max-value-bytes; the server derives it
		// and records it in the registry.
		cfg.QueryBufferLimit = 0
	}
	cfg.Params = f.reg
	return nil
}
