package kv

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
)

// TestReadStringHandsTheValueInPlace: ReadString sees what Get copies, and
// nothing for an absent key.
func TestReadStringHandsTheValueInPlace(t *testing.T) {
	s := openTest(t, t.TempDir())
	_, err := s.Apply([]Entry{{Index: 1, Data: set("a", "hello")}, {Index: 2, Data: set("e", "")}})
	require.NoError(t, err)
	var (
		got            map[string]string
		foundA, foundE bool
		foundM, called bool
	)
	require.NoError(t, s.Read(func(v View) error {
		got, called = map[string]string{}, false
		var err error
		if foundA, err = v.ReadString([]byte("a"), func(b []byte) { got["a"] = string(b[1:3]) }); err != nil {
			return err
		}
		if foundE, err = v.ReadString([]byte("e"), func(b []byte) { got["e"] = string(b) }); err != nil {
			return err
		}
		foundM, err = v.ReadString([]byte("missing"), func([]byte) { called = true })
		return err
	}))
	require.True(t, foundA)
	require.True(t, foundE)
	require.False(t, foundM)
	require.False(t, called)
	require.Equal(t, map[string]string{"a": "el", "e": ""}, got)
}

// TestReadStringOfAnotherType: a key of another type answers ErrWrongType
// and fn never sees its row.
func TestReadStringOfAnotherType(t *testing.T) {
	s := openTest(t, t.TempDir())
	require.NoError(t, s.db.Set(userKey([]byte("h")), []byte{'h', 1, 2}, pebble.Sync))
	called := false
	err := s.Read(func(v View) error {
		_, err := v.ReadString([]byte("h"), func([]byte) { called = true })
		return err
	})
	require.True(t, errors.Is(err, ErrWrongType), "ReadString: %v", err)
	require.False(t, called)
}
