package node

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLookup checks the command index against the command table: every
// command is found by its name in any case, and nothing else is.
func TestLookup(t *testing.T) {
	for _, cm := range commandList {
		require.Same(t, cm, lookup([]byte(cm.name)), cm.name)
		require.Same(t, cm, lookup([]byte(strings.ToUpper(cm.name))), cm.name)
		mixed := []byte(cm.name)
		for i := 0; i < len(mixed); i += 2 {
			mixed[i] = bytes.ToUpper(mixed[i : i+1])[0]
		}
		require.Same(t, cm, lookup(mixed), string(mixed))
		// The same hash, other bytes: |0x20 maps '@' to '`', '\x0c' to ',',
		// so these collide in hashName and must be told apart by the compare.
		for i := range cm.name {
			other := []byte(cm.name)
			other[i] ^= 0x20
			if 'a' <= cm.name[i] && cm.name[i] <= 'z' {
				other[i] ^= 0x40 // a letter's case flip is the same name: make it another byte
			}
			require.Nil(t, lookup(other), "%q", other)
		}
		require.Nil(t, lookup([]byte(cm.name+"x")))
		require.Nil(t, lookup([]byte(cm.name[:len(cm.name)-1])))
	}
	for _, name := range []string{"", "x", "getx", "GE", "\x00", strings.Repeat("a", 1000)} {
		require.Nil(t, lookup([]byte(name)), "%q", name)
	}
}

// TestLookupFull fills an index far past its first size: it grows, and
// keeps finding every name.
func TestLookupFull(t *testing.T) {
	var x cmdIndex
	var cmds []*command
	for i := range 1000 {
		cm := &command{name: "c" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + strings.Repeat("z", i/26)}
		if x.find([]byte(cm.name)) != nil {
			continue
		}
		x.add(cm)
		cmds = append(cmds, cm)
	}
	for _, cm := range cmds {
		require.Same(t, cm, x.find([]byte(strings.ToUpper(cm.name))))
	}
	require.LessOrEqual(t, 2*x.n, len(x.slots))
}

func BenchmarkLookup(b *testing.B) {
	names := [][]byte{[]byte("GET"), []byte("set"), []byte("MGET"), []byte("incrby"), []byte("CLIENT")}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if lookup(names[i%len(names)]) == nil {
			b.Fatal("not found")
		}
	}
}
