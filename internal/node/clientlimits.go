package node

import (
	"errors"
	"fmt"

	"github.com/elastickv/elastickv/internal/redis"
)

// validateClients checks the Redis client limits, naming their flags.
func (c *Config) validateClients() error {
	qbuf := c.QueryBufferLimit
	switch {
	case qbuf < 0:
		return errors.New("--client-query-buffer-limit must not be negative")
	case qbuf == 0:
		qbuf = redis.DefaultMaxCommandBytes(c.MaxValueBytes)
	case qbuf <= c.MaxValueBytes:
		return fmt.Errorf("--client-query-buffer-limit (%d) must exceed --max-value-bytes (%d) so that a maximal value fits in a command", qbuf, c.MaxValueBytes)
	}
	if c.RedisClients == (redis.ClientLimits{}) {
		return nil // the redis server's defaults
	}
	if err := c.RedisClients.Validate(qbuf); err != nil {
		return fmt.Errorf("--%w", err)
	}
	return nil
}
