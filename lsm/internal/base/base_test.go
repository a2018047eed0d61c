package base

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOrder(t *testing.T) {
	keys := [][]byte{
		AppendInternalKey(nil, []byte("b"), 1, KindSet),
		AppendInternalKey(nil, []byte("a"), 1, KindSet),
		AppendInternalKey(nil, []byte("ab"), 9, KindDelete),
		AppendInternalKey(nil, []byte("a"), 7, KindDelete),
		AppendInternalKey(nil, []byte("a"), 7, KindSet),
	}
	slices.SortFunc(keys, Compare)
	var got []string
	for _, k := range keys {
		got = append(got, Format(k))
	}
	require.Equal(t, []string{`"a"#7,set`, `"a"#7,del`, `"a"#1,set`, `"ab"#9,del`, `"b"#1,set`}, got)
	// A search key at seq 5 sorts after versions newer than 5 and before the rest.
	require.Positive(t, Compare(MakeSearchKey([]byte("a"), 5), keys[1]))
	require.Negative(t, Compare(MakeSearchKey([]byte("a"), 5), keys[2]))
	require.Equal(t, uint64(7), Seq(keys[0]))
	require.Equal(t, KindDelete, KindOf(keys[1]))
	require.False(t, Valid([]byte("short")))
}
