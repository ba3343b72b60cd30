package kv

import (
	"testing"

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
