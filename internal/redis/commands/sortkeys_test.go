package commands

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSortKeysFindTheLastStore(t *testing.T) {
	sortSpec, roSpec := Lookup("sort"), Lookup("sort_ro")
	require.NotNil(t, sortSpec)
	require.NotNil(t, roSpec)
	pos := func(s *Spec, line string) []int {
		var argv [][]byte
		for _, f := range strings.Fields(line) {
			argv = append(argv, []byte(f))
		}
		keys, err := s.Keys(argv)
		require.NoError(t, err)
		var out []int
		for _, k := range keys {
			out = append(out, k.Pos)
		}
		return out
	}
	require.Equal(t, []int{1, 3}, pos(sortSpec, "sort abc store def"))
	require.Equal(t, []int{1, 7}, pos(sortSpec, "sort abc store invalid store stillbad store def"))
	require.Equal(t, []int{1}, pos(sortSpec, "sort abc get store by store limit store store"))
	require.Equal(t, []int{1}, pos(sortSpec, "sort abc store"))
	require.Equal(t, []int{1}, pos(roSpec, "sort_ro abc by x"))
}
