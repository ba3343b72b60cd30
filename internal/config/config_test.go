package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseAndFormatEachKind(t *testing.T) {
	for _, c := range []struct {
		p       Param
		in, out string
		bad     bool
	}{
		{p: Param{Kind: Bool}, in: "YES", out: "yes"},
		{p: Param{Kind: Bool}, in: "true", bad: true},
		{p: Param{Kind: Int, Min: 1, Max: 10}, in: "10", out: "10"},
		{p: Param{Kind: Int, Min: 1, Max: 10}, in: "11", bad: true},
		{p: Param{Kind: Int, Min: 1, Max: 10}, in: "1.5", bad: true},
		{p: Param{Kind: Bytes, Max: 1 << 40}, in: "512mb", out: "536870912"},
		{p: Param{Kind: Bytes, Max: 1 << 40}, in: "1G", out: "1000000000"},
		{p: Param{Kind: Bytes, Max: 1 << 40}, in: "2kb", out: "2048"},
		{p: Param{Kind: Bytes, Max: 1 << 40}, in: "10%", bad: true},
		{p: Param{Kind: Bytes, Max: 1 << 20}, in: "2mb", bad: true},
		{p: Param{Kind: Bytes, Max: 1 << 40}, in: "-1", bad: true},
		{p: Param{Kind: Seconds, Max: 100}, in: "60", out: "60"},
		{p: Param{Kind: Seconds, Max: 100}, in: "1500ms", out: "1.5s"},
		{p: Param{Kind: Seconds, Max: 100}, in: "101", bad: true},
		{p: Param{Kind: Seconds, Max: 100}, in: "-1s", bad: true},
		{p: Param{Kind: Enum, Enum: []string{"a", "b"}}, in: "B", out: "b"},
		{p: Param{Kind: Enum, Enum: []string{"a", "b"}}, in: "c", bad: true},
		{p: Param{Kind: String}, in: "3600 1", out: "3600 1"},
		{p: Param{Kind: OutputLimit}, in: "normal 128mb 1mb 60", out: "normal 134217728 1048576 60"},
		{p: Param{Kind: OutputLimit}, in: "0 0 0", out: "normal 0 0 0"},
		{p: Param{Kind: OutputLimit}, in: "replica 1 1 1", bad: true},
		{p: Param{Kind: OutputLimit}, in: "normal 1mb 1mb -1", bad: true},
	} {
		v, err := c.p.Parse(c.in)
		if c.bad {
			require.Error(t, err, "%v %q", c.p.Kind, c.in)
			continue
		}
		require.NoError(t, err, "%v %q", c.p.Kind, c.in)
		require.Equal(t, c.out, c.p.Format(v), "%v %q", c.p.Kind, c.in)
	}
}

func TestTableDefaultsParse(t *testing.T) {
	r := New() // panics on a bad default
	for _, p := range r.Params() {
		_, ok := r.Lookup(p.Name)
		require.True(t, ok)
		require.True(t, p.Scope == Local || p.Mutable, "%s: a replicated parameter is declared to change through the log", p.Name)
	}
	p, ok := r.Lookup("HASH-MAX-ZIPLIST-ENTRIES")
	require.True(t, ok)
	require.Equal(t, "hash-max-listpack-entries", p.Name)
	_, err := NewRegistry([]Param{{Name: "a", Kind: Int, Default: "x"}})
	require.Error(t, err)
	_, err = NewRegistry([]Param{{Name: "a", Kind: String}, {Name: "b", Aliases: []string{"a"}, Kind: String}})
	require.Error(t, err)
}

func TestSetIsAllOrNoneAndRunsHooksOnce(t *testing.T) {
	r := New()
	require.NoError(t, r.AddCheck(func(s Snapshot) error {
		if s.Int(MaxClients) == 13 {
			return errors.New("unlucky")
		}
		return nil
	}))
	var seen []int64
	r.OnChange(func(s Snapshot) { seen = append(seen, s.Int(MaxClients)) })
	before := r.Snapshot()

	var se *SetError
	err := r.Set([][2]string{{"maxclients", "5"}, {"timeout", "x"}})
	require.ErrorAs(t, err, &se)
	require.Equal(t, "timeout", se.Name)
	err = r.Set([][2]string{{"maxclients", "13"}, {"timeout", "5"}})
	require.ErrorAs(t, err, &se)
	require.Equal(t, "maxclients", se.Name, "a check's error falls on the first parameter")
	require.ErrorIs(t, r.Set([][2]string{{"maxclients", "5"}, {"nosuch", "1"}}), ErrUnknown)
	require.ErrorIs(t, r.Set([][2]string{{"maxclients", "5"}, {"MaxClients", "6"}}), ErrDuplicate)
	require.ErrorIs(t, r.Set([][2]string{{"databases", "2"}}), ErrImmutable)
	require.ErrorIs(t, r.Set([][2]string{{"databases", "junk"}}), ErrImmutable)
	require.ErrorIs(t, r.Set([][2]string{{"active-expire-effort", "5"}}), ErrReplicated)
	require.Equal(t, before, r.Snapshot())
	require.Empty(t, seen)

	require.NoError(t, r.Set([][2]string{{"databases", "1"}}), "an unchanged immutable value is accepted")
	require.NoError(t, r.SetAtStart([][2]string{{"active-expire-effort", "5"}}), "flags may set replicated parameters")
	require.NoError(t, r.Set([][2]string{{"maxclients", "5"}, {"timeout", "7"}}))
	require.Equal(t, int64(5), r.Snapshot().Int(MaxClients))
	require.Equal(t, "7", r.Snapshot().Format(mustLookup(t, r, Timeout)))
	require.Equal(t, []int64{10000, 10000, 5}, seen, "each successful Set runs the hooks once, after publishing")
	require.Equal(t, int64(10000), before.Int(MaxClients), "a snapshot never changes")
}

func mustLookup(t *testing.T, r *Registry, name string) *Param {
	p, ok := r.Lookup(name)
	require.True(t, ok, name)
	return p
}

// TestSnapshotsAreConsistentUnderConcurrentSets: a reader never sees half
// of a CONFIG SET (run with -race).
func TestSnapshotsAreConsistentUnderConcurrentSets(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := r.Snapshot()
			if s.Int(MaxClients) != s.Duration(Timeout).Milliseconds() && s.Int(MaxClients) != 10000 {
				t.Errorf("torn snapshot: maxclients %d, timeout %v", s.Int(MaxClients), s.Duration(Timeout))
				return
			}
		}
	}()
	for i := 1; i <= 500; i++ {
		require.NoError(t, r.Set([][2]string{{"maxclients", fmt.Sprint(i)}, {"timeout", fmt.Sprintf("%dms", i)}}))
	}
	close(stop)
	wg.Wait()
}

func TestFlagsFillTheRegistry(t *testing.T) {
	r := New()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	given := r.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--maxclients", "9", "--client-output-buffer-limit", "256mb"}))
	require.True(t, given(MaxClients))
	require.False(t, given(Timeout))
	require.Equal(t, int64(9), r.Snapshot().Int(MaxClients))
	require.Equal(t, OutputBufferLimit{Hard: 256 << 20, Soft: 1 << 20, Seconds: 60}, r.Snapshot().Value(ClientOutputLimit).Out)
	require.Error(t, fs.Parse([]string{"--maxclients", "0"}))
	require.Nil(t, fs.Lookup("databases"), "read-only facts have no flag")
}
