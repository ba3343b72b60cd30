package keyspace

import (
	"bytes"
	"slices"
)

func slicesSortBytes(rows [][]byte) { slices.SortFunc(rows, bytes.Compare) }
