package ordtree

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestNodeSizes pins the node sizes the package doc and the owners' memory
// metrics rely on: a node's header is 24 bytes, so that a leaf with an
// 8-byte payload (memory's) fills the 1792-byte size class and one with a
// 12-byte payload (bitcask's) 2048 bytes.
func TestNodeSizes(t *testing.T) {
	var n Node[*byte]
	require.Equal(t, uintptr(24), unsafe.Offsetof(n.pfx))
	require.LessOrEqual(t, unsafe.Sizeof(Node[*byte]{}), uintptr(1792))
	require.LessOrEqual(t, unsafe.Sizeof(Node[[3]uint32]{}), uintptr(2048))
}
