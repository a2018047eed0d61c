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

// BenchmarkAddBatch inserts the same keys as BenchmarkAdd through AddBatch,
// in runs of MaxBatch, into 8 MiB arenas.
func BenchmarkAddBatch(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	v := make([]byte, 100)
	var ks, vs [][]byte
	for range MaxBatch {
		ks, vs = append(ks, make([]byte, 0, 16+base.TrailerSize)), append(vs, v)
	}
	s := New(8 << 20)
	for i := 0; i < b.N; i += MaxBatch {
		for j := range ks {
			k := binary.BigEndian.AppendUint64(ks[j][:0], rng.Uint64())
			k = binary.BigEndian.AppendUint64(k, rng.Uint64())
			ks[j] = binary.LittleEndian.AppendUint64(k, base.MakeTrailer(uint64(i+j+1), base.KindSet))
		}
		if n, err := s.AddBatch(ks, vs); err == ErrFull {
			s = New(8 << 20)
			if _, err := s.AddBatch(ks[n:], vs[n:]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
