package kv

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"
)

// TestViewReportsWrongTypeAsASentinel: a key whose row holds another type
// than a string makes the View answer an error that errors.Is
// ErrWrongType, and a SET through the log answers WRONGTYPE's text, so
// the redis layer needs no text matching. No command writes another type
// yet, so the row is written directly, as a future type would lay it out.
func TestViewReportsWrongTypeAsASentinel(t *testing.T) {
	s := openTest(t, t.TempDir())
	require.NoError(t, s.db.Set(userKey([]byte("h")), []byte{'h', 1, 2}, pebble.Sync))

	err := s.Read(func(v View) error {
		_, _, err := v.StrLen([]byte("h"))
		return err
	})
	require.True(t, errors.Is(err, ErrWrongType), "StrLen: %v", err)
	require.Equal(t, ErrTextWrongType, err.Error())

	err = s.Read(func(v View) error {
		_, _, err := v.Get([]byte("h"))
		return err
	})
	require.True(t, errors.Is(err, ErrWrongType), "Get: %v", err)

	res, err := s.Apply([]Entry{{Index: 1, Data: enc(Command{Op: OpAppend, Keys: [][]byte{[]byte("h")}, Values: [][]byte{[]byte("x")}})}})
	require.NoError(t, err)
	require.Equal(t, ResultError, res[0].Kind)
	require.Equal(t, ErrTextWrongType, res[0].Err)
}
