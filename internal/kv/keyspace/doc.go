// Package keyspace defines elastickv's v2 on-disk layout: how a typed
// Redis key (string, hash, list, set, sorted set) and its metadata,
// elements, expiry and counts map to Pebble rows. It is pure: it builds and
// parses keys and values and never touches Pebble, so the apply path, the
// read path, the sweeper, snapshots and a future slot migration all share
// one definition of the bytes. docs/keyspace.md gives the reasoning.
//
// Rows of a user key (slot is HashSlot(key), 2 bytes big-endian, < 0x4000):
//
//	slot 0x01 key                       metadata record (EncodeMeta)
//	slot 0x02 sid ...                   elements, under the key's storage id
//	slot 0x03 expireAt(8) key           expiry index, in time order per slot
//	slot 0x04 sid                       loan: elements of a key in another slot
//
// and, outside the slots, in the store's 'm' metadata family, the running
// key and expiry counts (KeyCountRow, ExpireCountRow).
//
// Invariants the encodings keep, and callers rely on:
//   - Every row of a logical key starts with its hash slot, so a slot is one
//     contiguous range (SlotRange) and migrating it moves one range.
//   - The first byte of a slot row is below 0x40, so slot rows never collide
//     with the one-letter families of the v1 layout ('m', 'u').
//   - All element rows of a key share the prefix slot 0x02 sid, so dropping
//     a key of any size is one DeleteRange (ElementsRange), never a scan.
//   - Storage ids and versions are Stamps taken from the Raft log (index,
//     position in the entry), so every replica and every replay allocates
//     the same ones without coordination.
//   - Every metadata record starts with a format-version byte; DecodeMeta
//     refuses a version it does not know instead of guessing.
//   - Encoders are canonical: DecodeMeta accepts exactly the bytes EncodeMeta
//     produces, so a record decoded and re-encoded is byte-identical and
//     replicas that hash raw rows agree.
package keyspace
