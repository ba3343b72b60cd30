package commands

import (
	"bytes"
	"errors"
	"strconv"
)

// KeyRef is one key of a command's arguments.
type KeyRef struct {
	// Pos is the key's index in argv (0 is the command name).
	Pos int
	// Flags say how the command uses the key.
	Flags KeyFlag
}

// ErrKeysUnknown means the key specifications cannot locate the keys of
// this argv: a spec of unknown kind (the command must be parsed to find
// them), a key count that is not a number, or keys beyond the arguments.
var ErrKeysUnknown = errors.New("the key specifications cannot locate the keys")

// HasKeys reports whether the command takes any key argument, as COMMAND
// GETKEYS requires.
func (s *Spec) HasKeys() bool {
	for _, ks := range s.KeySpecs {
		if ks.Flags&KeyNotKey == 0 {
			return true
		}
	}
	return false
}

// Keys finds the keys of argv (the whole command, name and subcommand
// included) from the key specifications, as Redis's COMMAND GETKEYS does,
// skipping specs flagged not_key. A keyword spec whose keyword is absent
// contributes no key. Where a spec's flags depend on the arguments
// (variable_flags), Keys resolves them for the commands whose rule it
// knows (SET), and otherwise reports the spec's flags. Keys does not check
// arity: the caller does.
func (s *Spec) Keys(argv [][]byte) ([]KeyRef, error) {
	if s.Name == "sort" || s.Name == "sort_ro" {
		if len(argv) < 2 {
			return nil, ErrKeysUnknown // no sorted key: the caller checks arity
		}
		return sortKeys(s, argv), nil // its STORE key must be parsed out
	}
	var keys []KeyRef
	argc := len(argv)
	for _, ks := range s.KeySpecs {
		if ks.Flags&KeyNotKey != 0 {
			continue
		}
		var first int
		switch ks.Begin.Kind {
		case SearchIndex:
			first = ks.Begin.Index
		case SearchKeyword:
			first = keywordSearch(argv, ks.Begin.Keyword, ks.Begin.StartFrom)
			if first == 0 {
				continue // keyword absent: no keys from this spec
			}
		default:
			return nil, ErrKeysUnknown
		}
		var last, step int
		switch ks.Find.Kind {
		case FindRange:
			step = ks.Find.Step
			switch {
			case ks.Find.LastKey >= 0:
				last = first + ks.Find.LastKey
			case ks.Find.Limit <= 1:
				last = argc + ks.Find.LastKey
			default: // the keys are the first 1/Limit of the rest (XREAD STREAMS)
				last = first + (argc-first)/ks.Find.Limit + ks.Find.LastKey
			}
		case FindKeynum:
			step = ks.Find.Step
			idx := first + ks.Find.KeynumIdx
			if idx >= argc {
				return nil, ErrKeysUnknown
			}
			n, err := strconv.Atoi(string(argv[idx]))
			if err != nil || n < 0 || n > argc {
				return nil, ErrKeysUnknown
			}
			if n == 0 {
				continue // EVAL script 0: no keys
			}
			first += ks.Find.FirstKey
			last = first + n - 1
		default:
			return nil, ErrKeysUnknown
		}
		if step <= 0 || last >= argc || last < first || first >= argc {
			return nil, ErrKeysUnknown
		}
		for i := first; i <= last; i += step {
			keys = append(keys, KeyRef{Pos: i, Flags: ks.Flags})
		}
	}
	if s.Name == "set" && len(keys) == 1 {
		keys[0].Flags = setKeyFlags(argv)
	}
	return keys, nil
}

// keywordSearch returns the index after the first argument equal to
// keyword (ASCII case-insensitively), searching forward from startFrom,
// or backward from argc+startFrom when it is negative; 0 if absent.
func keywordSearch(argv [][]byte, keyword string, startFrom int) int {
	argc := len(argv)
	kw := []byte(keyword)
	if startFrom > 0 {
		for i := startFrom; i < argc-1; i++ {
			if bytes.EqualFold(argv[i], kw) {
				return i + 1
			}
		}
		return 0
	}
	for i := argc + startFrom; i > 1 && i < argc; i-- {
		if bytes.EqualFold(argv[i], kw) {
			return i + 1
		}
	}
	return 0
}

// setKeyFlags resolves SET's variable key flags as Redis does: with GET
// the old value is read (RW, access), without it overwritten (OW).
func setKeyFlags(argv [][]byte) KeyFlag {
	for _, a := range argv[min(3, len(argv)):] {
		if bytes.EqualFold(a, []byte("get")) {
			return KeyRW | KeyAccess | KeyUpdate
		}
	}
	return KeyOW | KeyUpdate
}
