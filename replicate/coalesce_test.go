package replicate

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// countingEngine counts Apply calls and remembers their seqs.
type countingEngine struct {
	logkv.Engine
	seqs []uint64
}

func (c *countingEngine) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	c.seqs = append(c.seqs, o.Seq)
	return c.Engine.Apply(b, o)
}

// Records applied through a coalescer leave the engine exactly as records
// applied one by one, in fewer batches, at the last record's seq.
func TestCoalescerMatchesOneByOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var records [][]byte
	for range 500 {
		var b logkv.Batch
		for range 1 + rng.IntN(8) {
			k := fmt.Appendf(nil, "k%02d", rng.IntN(30))
			if rng.IntN(5) == 0 {
				b.Delete(k)
			} else {
				b.Set(k, fmt.Appendf(nil, "v%d", rng.Uint32()))
			}
		}
		if rng.IntN(50) == 0 { // now and then a record near the coalescing limit
			b.Set([]byte("big"), make([]byte, coalesceBytes-100))
		}
		records = append(records, append([]byte(nil), b.Repr()...))
	}
	one, err := openMemory(false)
	require.NoError(t, err)
	defer one.Close()
	for i, data := range records {
		var b logkv.Batch
		require.NoError(t, b.SetRepr(data))
		require.NoError(t, one.Apply(&b, &logkv.WriteOptions{Seq: uint64(i + 1)}))
	}

	inner, err := openMemory(false)
	require.NoError(t, err)
	defer inner.Close()
	eng := &countingEngine{Engine: inner}
	var applied []uint64
	m := coalescer{applied: func(seq uint64) { applied = append(applied, seq) }}
	for i, data := range records {
		if rng.IntN(40) == 0 { // a group ends, as a frame or a commit does
			require.NoError(t, m.flush(eng))
		}
		require.NoError(t, m.makeRoom(eng, len(data)))
		require.NoError(t, m.add(uint64(i+1), data))
	}
	require.NoError(t, m.flush(eng))

	require.Equal(t, uint64(len(records)), inner.LastSeq())
	require.Equal(t, eng.seqs, applied, "applied reports each batch's last seq")
	require.Less(t, len(eng.seqs), len(records)/4, "records coalesced into few batches")
	require.Equal(t, scan(t, one), scan(t, inner))
}

func TestCoalescerErrors(t *testing.T) {
	eng, err := openMemory(false)
	require.NoError(t, err)
	defer eng.Close()
	m := coalescer{applied: func(uint64) {}}
	require.ErrorIs(t, m.add(1, []byte{1, 1, 0, 0, 0, 9}), logkv.ErrCorrupt)
	var b logkv.Batch
	b.Set([]byte("a"), []byte("1"))
	require.NoError(t, m.add(5, b.Repr()))
	require.NoError(t, m.add(6, b.Repr()))
	require.NoError(t, m.flush(eng))
	require.NoError(t, m.add(6, b.Repr()))
	err = m.flush(eng)
	require.ErrorIs(t, err, logkv.ErrSeqNotIncreasing)
	require.ErrorContains(t, err, "apply seq 6")
}
