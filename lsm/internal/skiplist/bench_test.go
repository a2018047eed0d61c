package skiplist

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv/lsm/internal/base"
)

// BenchmarkAdd inserts random 16-byte keys with 100-byte values into 8 MiB
// arenas, as a memtable under a random fill does.
func BenchmarkAdd(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	v := make([]byte, 100)
	var k []byte
	s := New(8 << 20)
	for i := 0; i < b.N; i++ {
		k = binary.BigEndian.AppendUint64(k[:0], rng.Uint64())
		k = binary.BigEndian.AppendUint64(k, rng.Uint64())
		k = binary.LittleEndian.AppendUint64(k, base.MakeTrailer(uint64(i+1), base.KindSet))
		if s.Add(k, v) == ErrFull {
			s = New(8 << 20)
			s.Add(k, v)
		}
	}
}
