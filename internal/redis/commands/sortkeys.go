package commands

import "bytes"

// sortKeys finds SORT's and SORT_RO's keys, whose key specs Redis leaves
// incomplete because only parsing finds them: the sorted key, and for
// SORT the destination of the last STORE (Redis honours the last one).
// LIMIT's two arguments and GET's and BY's one are skipped, so a pattern
// or a count spelled "store" is not taken for the option. BY and GET
// patterns are not keys.
func sortKeys(s *Spec, argv [][]byte) []KeyRef {
	keys := []KeyRef{{Pos: 1, Flags: s.KeySpecs[0].Flags}}
	if s.Name != "sort" {
		return keys
	}
	store := 0
	for i := 2; i < len(argv); i++ {
		switch a := argv[i]; {
		case bytes.EqualFold(a, []byte("limit")):
			i += 2
		case bytes.EqualFold(a, []byte("get")), bytes.EqualFold(a, []byte("by")):
			i++
		case bytes.EqualFold(a, []byte("store")) && i+1 < len(argv):
			store = i + 1
		}
	}
	if store > 0 {
		keys = append(keys, KeyRef{Pos: store, Flags: s.KeySpecs[2].Flags})
	}
	return keys
}
