// Command gen writes facts_gen.go, the Redis command facts of package
// commands, from a directory of Redis command reference JSON files
// (Valkey 8.0.1's src/commands, as kept in ../shared/redis-commands).
//
// It keeps only facts a server reports about the protocol: names, arity,
// flags, ACL categories, key specifications, tips, the introducing version,
// the group and the arguments' syntax (names, types, tokens, flags), which
// redis-cli turns into hints. It never copies prose (summaries, complexity
// texts, history notes, argument descriptions, key spec notes): the
// project writes its own words.
//
// Usage (from internal/redis/commands, see the go:generate line in doc.go):
//
//	go run ./gen -ref ../../../../shared/redis-commands/commands -out facts_gen.go
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The reference's names mapped to the Go constants of package commands.
// A name missing here stops the generator: a new flag needs a decision
// (and a constant), not silence.
var (
	commandFlags = map[string]string{
		"WRITE": "FlagWrite", "READONLY": "FlagReadonly", "DENYOOM": "FlagDenyOOM",
		"MODULE": "FlagModule", "ADMIN": "FlagAdmin", "PUBSUB": "FlagPubsub",
		"NOSCRIPT": "FlagNoscript", "BLOCKING": "FlagBlocking", "LOADING": "FlagLoading",
		"STALE": "FlagStale", "SKIP_MONITOR": "FlagSkipMonitor", "SKIP_SLOWLOG": "FlagSkipSlowlog",
		"ASKING": "FlagAsking", "FAST": "FlagFast", "NO_AUTH": "FlagNoAuth",
		"NO_MANDATORY_KEYS": "FlagNoMandatoryKeys", "NO_ASYNC_LOADING": "FlagNoAsyncLoading",
		"NO_MULTI": "FlagNoMulti", "ALLOW_BUSY": "FlagAllowBusy",
		"MAY_REPLICATE": "FlagMayReplicate", "SENTINEL": "FlagSentinel",
		"ONLY_SENTINEL": "FlagOnlySentinel", "PROTECTED": "FlagProtected",
		"TOUCHES_ARBITRARY_KEYS": "FlagTouchesArbitraryKeys",
	}
	aclCategories = map[string]string{
		"KEYSPACE": "CatKeyspace", "READ": "CatRead", "WRITE": "CatWrite", "SET": "CatSet",
		"SORTEDSET": "CatSortedSet", "LIST": "CatList", "HASH": "CatHash", "STRING": "CatString",
		"BITMAP": "CatBitmap", "HYPERLOGLOG": "CatHyperLogLog", "GEO": "CatGeo", "STREAM": "CatStream",
		"PUBSUB": "CatPubsub", "ADMIN": "CatAdmin", "FAST": "CatFast", "SLOW": "CatSlow",
		"BLOCKING": "CatBlocking", "DANGEROUS": "CatDangerous", "CONNECTION": "CatConnection",
		"TRANSACTION": "CatTransaction", "SCRIPTING": "CatScripting",
	}
	keySpecFlags = map[string]string{
		"RO": "KeyRO", "RW": "KeyRW", "OW": "KeyOW", "RM": "KeyRM", "ACCESS": "KeyAccess",
		"UPDATE": "KeyUpdate", "INSERT": "KeyInsert", "DELETE": "KeyDelete", "NOT_KEY": "KeyNotKey",
		"INCOMPLETE": "KeyIncomplete", "VARIABLE_FLAGS": "KeyVariableFlags",
	}
	docFlags = map[string]string{"DEPRECATED": "DocDeprecated", "SYSCMD": "DocSyscmd"}
)

// entry is the part of one reference file the generator reads; every
// other field (summary, complexity, arguments, reply_schema, history...)
// is left unread on purpose.
type entry struct {
	Group           string        `json:"group"`
	Since           string        `json:"since"`
	Arity           int           `json:"arity"`
	Container       string        `json:"container"`
	CommandFlags    []string      `json:"command_flags"`
	ACLCategories   []string      `json:"acl_categories"`
	CommandTips     []string      `json:"command_tips"`
	DocFlags        []string      `json:"doc_flags"`
	DeprecatedSince string        `json:"deprecated_since"`
	KeySpecs        []keySpecJSON `json:"key_specs"`
	Arguments       []argJSON     `json:"arguments"`
}

// argJSON is one argument's syntax. Its "summary" (prose) is not read.
type argJSON struct {
	Name            string    `json:"name"`
	Type            string    `json:"type"`
	Token           string    `json:"token"`
	Display         string    `json:"display"`
	KeySpecIndex    *int      `json:"key_spec_index"`
	Since           string    `json:"since"`
	DeprecatedSince string    `json:"deprecated_since"`
	Optional        jsonBool  `json:"optional"`
	Multiple        jsonBool  `json:"multiple"`
	MultipleToken   jsonBool  `json:"multiple_token"`
	Arguments       []argJSON `json:"arguments"`
}

// jsonBool accepts true and "true": one file of the reference quotes it.
type jsonBool bool

func (b *jsonBool) UnmarshalJSON(data []byte) error {
	v, err := strconv.ParseBool(strings.Trim(string(data), `"`))
	if err != nil {
		return fmt.Errorf("boolean %s: %w", data, err)
	}
	*b = jsonBool(v)
	return nil
}

// argTypes maps the reference's argument types to package commands' names.
var argTypes = map[string]string{
	"string": "ArgString", "integer": "ArgInteger", "double": "ArgDouble", "key": "ArgKey",
	"pattern": "ArgPattern", "unix-time": "ArgUnixTime", "pure-token": "ArgPureToken",
	"oneof": "ArgOneof", "block": "ArgBlock",
}

type keySpecJSON struct {
	Flags       []string `json:"flags"`
	BeginSearch struct {
		Index *struct {
			Pos int `json:"pos"`
		} `json:"index"`
		Keyword *struct {
			Keyword   string `json:"keyword"`
			StartFrom int    `json:"startfrom"`
		} `json:"keyword"`
	} `json:"begin_search"`
	FindKeys struct {
		Range *struct {
			LastKey int `json:"lastkey"`
			Step    int `json:"step"`
			Limit   int `json:"limit"`
		} `json:"range"`
		Keynum *struct {
			KeynumIdx int `json:"keynumidx"`
			FirstKey  int `json:"firstkey"`
			Step      int `json:"step"`
		} `json:"keynum"`
	} `json:"find_keys"`
}

func main() {
	ref := flag.String("ref", "../../../../shared/redis-commands/commands", "directory of the reference's *.json command files")
	out := flag.String("out", "facts_gen.go", "Go file to write")
	flag.Parse()
	if err := run(*ref, *out); err != nil {
		slog.Error("commandgen failed", "err", err)
		os.Exit(1)
	}
}

func run(ref, out string) error {
	files, err := filepath.Glob(filepath.Join(ref, "*.json"))
	if err != nil {
		return fmt.Errorf("listing %s: %w", ref, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.json command files in %s", ref)
	}
	type named struct {
		name string
		e    entry
	}
	var all []named
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading %s: %w", f, err)
		}
		var doc map[string]entry
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("decoding %s: %w", f, err)
		}
		for name, e := range doc {
			full := strings.ToLower(name)
			if e.Container != "" {
				full = strings.ToLower(e.Container) + "|" + full
			}
			all = append(all, named{full, e})
		}
	}
	slices.SortFunc(all, func(a, b named) int { return strings.Compare(a.name, b.name) })

	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString("var reference = [...]Spec{\n")
	for _, n := range all {
		if err := writeSpec(&b, n.name, n.e); err != nil {
			return fmt.Errorf("command %s: %w", n.name, err)
		}
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return fmt.Errorf("formatting the generated code: %w", err)
	}
	if err := os.WriteFile(out, src, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

const header = `// Code generated by go run ./gen; DO NOT EDIT.

// The facts below are generated from the Redis command reference of
// Valkey 8.0.1 (src/commands/*.json, a fork of Redis 7.2), under the BSD
// 3-Clause licence: Copyright (c) 2024-present, Valkey contributors;
// Copyright (c) 2006-2020, Redis Ltd. Only protocol facts are kept (names,
// arity, flags,
// ACL categories, key specifications, tips, since, group, argument
// syntax); none of the reference's prose is.

package commands

`

func writeSpec(b *bytes.Buffer, name string, e entry) error {
	flags, err := bits(e.CommandFlags, commandFlags)
	if err != nil {
		return fmt.Errorf("command flags: %w", err)
	}
	cats, err := bits(e.ACLCategories, aclCategories)
	if err != nil {
		return fmt.Errorf("ACL categories: %w", err)
	}
	docs, err := bits(e.DocFlags, docFlags)
	if err != nil {
		return fmt.Errorf("doc flags: %w", err)
	}
	fmt.Fprintf(b, "{Name: %q, ", name)
	if e.Container != "" {
		fmt.Fprintf(b, "Container: %q, ", strings.ToLower(e.Container))
	}
	fmt.Fprintf(b, "Arity: %d, Flags: %s, Categories: %s, Group: %q, Since: %q", e.Arity, flags, cats, e.Group, e.Since)
	if docs != "0" {
		fmt.Fprintf(b, ", DocFlags: %s", docs)
	}
	if e.DeprecatedSince != "" {
		fmt.Fprintf(b, ", DeprecatedSince: %q", e.DeprecatedSince)
	}
	if len(e.CommandTips) > 0 {
		tips := make([]string, len(e.CommandTips))
		for i, t := range e.CommandTips {
			tips[i] = strconv.Quote(strings.ToLower(t)) // Redis reports tips in lower case
		}
		fmt.Fprintf(b, ", Tips: []string{%s}", strings.Join(tips, ", "))
	}
	if len(e.Arguments) > 0 {
		b.WriteString(", Args: ")
		if err := writeArgs(b, e.Arguments); err != nil {
			return fmt.Errorf("arguments: %w", err)
		}
	}
	if len(e.KeySpecs) > 0 {
		b.WriteString(", KeySpecs: []KeySpec{\n")
		for i, ks := range e.KeySpecs {
			if err := writeKeySpec(b, ks); err != nil {
				return fmt.Errorf("key spec %d: %w", i, err)
			}
		}
		b.WriteString("}")
	}
	b.WriteString("},\n")
	return nil
}

func writeKeySpec(b *bytes.Buffer, ks keySpecJSON) error {
	flags, err := bits(ks.Flags, keySpecFlags)
	if err != nil {
		return err
	}
	fmt.Fprintf(b, "{Flags: %s, ", flags)
	bs := ks.BeginSearch
	switch {
	case bs.Index != nil && bs.Keyword != nil:
		return errors.New("begin_search has both index and keyword")
	case bs.Index != nil:
		fmt.Fprintf(b, "Begin: BeginSearch{Kind: SearchIndex, Index: %d}, ", bs.Index.Pos)
	case bs.Keyword != nil:
		fmt.Fprintf(b, "Begin: BeginSearch{Kind: SearchKeyword, Keyword: %q, StartFrom: %d}, ", bs.Keyword.Keyword, bs.Keyword.StartFrom)
	default: // "unknown": the keys can only be found by parsing the command
		b.WriteString("Begin: BeginSearch{Kind: SearchUnknown}, ")
	}
	fk := ks.FindKeys
	switch {
	case fk.Range != nil && fk.Keynum != nil:
		return errors.New("find_keys has both range and keynum")
	case fk.Range != nil:
		fmt.Fprintf(b, "Find: FindKeys{Kind: FindRange, LastKey: %d, Step: %d, Limit: %d}", fk.Range.LastKey, fk.Range.Step, fk.Range.Limit)
	case fk.Keynum != nil:
		fmt.Fprintf(b, "Find: FindKeys{Kind: FindKeynum, KeynumIdx: %d, FirstKey: %d, Step: %d}", fk.Keynum.KeynumIdx, fk.Keynum.FirstKey, fk.Keynum.Step)
	default:
		b.WriteString("Find: FindKeys{Kind: FindUnknown}")
	}
	b.WriteString("},\n")
	return nil
}

func writeArgs(b *bytes.Buffer, args []argJSON) error {
	b.WriteString("[]Arg{\n")
	for _, a := range args {
		typ, ok := argTypes[a.Type]
		if !ok {
			return fmt.Errorf("argument %s: unknown type %q", a.Name, a.Type)
		}
		if a.Type == "key" && a.KeySpecIndex == nil {
			return fmt.Errorf("argument %s: a key argument names no key spec", a.Name)
		}
		fmt.Fprintf(b, "{Name: %q, Type: %s", a.Name, typ)
		if a.KeySpecIndex != nil {
			fmt.Fprintf(b, ", HasKeySpec: true, KeySpecIndex: %d", *a.KeySpecIndex)
		}
		for _, f := range [][2]string{{"Token", a.Token}, {"DisplayText", a.Display}, {"Since", a.Since}, {"DeprecatedSince", a.DeprecatedSince}} {
			if f[1] != "" {
				fmt.Fprintf(b, ", %s: %q", f[0], f[1])
			}
		}
		var flags []string
		for _, f := range []struct {
			set  jsonBool
			name string
		}{{a.Optional, "ArgOptional"}, {a.Multiple, "ArgMultiple"}, {a.MultipleToken, "ArgMultipleToken"}} {
			if f.set {
				flags = append(flags, f.name)
			}
		}
		if len(flags) > 0 {
			fmt.Fprintf(b, ", Flags: %s", strings.Join(flags, " | "))
		}
		if len(a.Arguments) > 0 {
			b.WriteString(", Args: ")
			if err := writeArgs(b, a.Arguments); err != nil {
				return err
			}
		}
		b.WriteString("},\n")
	}
	b.WriteString("}")
	return nil
}

// bits renders a list of reference names as an OR of Go constants.
func bits(names []string, consts map[string]string) (string, error) {
	if len(names) == 0 {
		return "0", nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		c, ok := consts[n]
		if !ok {
			return "", fmt.Errorf("unknown name %q: add a constant for it", n)
		}
		out[i] = c
	}
	return strings.Join(out, " | "), nil
}
