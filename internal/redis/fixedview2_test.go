package redis

import (
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// fixedView's answers to the kv.View methods keyspace v2 added.

func (v *fixedView) Scan([]byte, []byte, func([]byte) bool) ([]byte, error) { return nil, nil }
func (v *fixedView) Counts() (uint64, uint64, error)                        { return 1, 0, nil }
func (v *fixedView) Format() uint8                                          { return 1 }
func (v *fixedView) Now() uint64                                            { return 0 }
func (v *fixedView) Lookup([]byte) (kv.KeyInfo, bool, error) {
	return kv.KeyInfo{Type: keyspace.TypeString, Len: uint64(len(v.val)), Encoding: "raw"}, true, nil
}
func (v *fixedView) DueKeys(int, func([]byte, keyspace.Stamp, uint64) bool) error { return nil }
func (v *fixedView) DueInSlot(uint16, uint64, int, func([]byte, keyspace.Stamp, uint64) bool) (uint64, error) {
	return 0, nil
}

// Collection: the fixed view holds one string, so every key is one.
func (v *fixedView) Collection([]byte, keyspace.Type) (kv.Coll, bool, error) {
	return nil, false, kv.ErrWrongType
}
