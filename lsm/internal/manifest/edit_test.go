package manifest

import (
	"errors"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/stretchr/testify/require"
)

func ik(k string, seq uint64) []byte {
	return base.AppendInternalKey(nil, []byte(k), seq, base.KindSet)
}

func sampleEdit() *Edit {
	return &Edit{
		LogNum: 7, NextFileNum: 12, LastSeq: 99,
		Deleted: []DeletedFile{{Level: 0, Num: 3}, {Level: 1, Num: 4}},
		Added: []NewFile{
			{Level: 1, Meta: &FileMeta{Num: 10, Size: 4096, Smallest: ik("a", 5), Largest: ik("m", 9), SmallestSeq: 5, LargestSeq: 9, Entries: 20}},
			{Level: 6, Meta: &FileMeta{Num: 11, Size: 1, Smallest: ik("n", 1), Largest: ik("n", 1), SmallestSeq: 1, LargestSeq: 1, Entries: 1}},
		},
	}
}

func TestEditRoundTrip(t *testing.T) {
	e := sampleEdit()
	got, err := Decode(e.Encode(nil), "m", 0)
	require.NoError(t, err)
	require.Equal(t, e, got)
	empty, err := Decode(nil, "m", 0)
	require.NoError(t, err)
	require.Equal(t, &Edit{}, empty)
}

func TestEditCorrupt(t *testing.T) {
	data := sampleEdit().Encode(nil)
	for n := 1; n < len(data); n++ {
		if _, err := Decode(data[:n], "m", 0); err != nil {
			require.ErrorIs(t, err, logkv.ErrCorrupt, "prefix %d", n)
		}
	}
	_, err := Decode([]byte{99, 1}, "m", 0)
	require.ErrorIs(t, err, logkv.ErrCorrupt)
	_, err = Decode([]byte{tagAdded, 9}, "m", 0)
	require.ErrorIs(t, err, logkv.ErrCorrupt, "level out of range")
}

func TestVersionApply(t *testing.T) {
	v := &Version{}
	v1, err := v.Apply(sampleEdit().withoutDeletes())
	require.NoError(t, err)
	require.Len(t, v1.Levels[1], 1)
	require.Len(t, v1.Levels[6], 1)
	// Overlapping files in L1 are refused.
	_, err = v1.Apply(&Edit{Added: []NewFile{{Level: 1, Meta: &FileMeta{Num: 20, Smallest: ik("c", 1), Largest: ik("d", 1)}}}})
	require.Error(t, err)
	// Deleting a file the level lacks is refused.
	_, err = v1.Apply(&Edit{Deleted: []DeletedFile{{Level: 2, Num: 10}}})
	require.Error(t, err)
	v2, err := v1.Apply(&Edit{Deleted: []DeletedFile{{Level: 1, Num: 10}}})
	require.NoError(t, err)
	require.Empty(t, v2.Levels[1])
	require.Len(t, v1.Levels[1], 1, "Apply does not change its receiver")
	require.Equal(t, []*FileMeta{v1.Levels[6][0]}, v1.Overlaps(6, []byte("a"), []byte("z")))
	require.Empty(t, v1.Overlaps(1, []byte("n"), nil))
}

func (e *Edit) withoutDeletes() *Edit { c := *e; c.Deleted = nil; return &c }

// FuzzDecodeEdit: the decoder never panics, its errors wrap ErrCorrupt, and
// what it accepts survives an encode/decode round trip.
func FuzzDecodeEdit(f *testing.F) {
	f.Add(sampleEdit().Encode(nil))
	f.Add([]byte{})
	f.Add([]byte{tagLogNum, 1, tagLastSeq, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data, "fuzz", 0)
		if err != nil {
			if !errors.Is(err, logkv.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		e2, err := Decode(e.Encode(nil), "fuzz", 0)
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		require.Equal(t, e, e2)
	})
}
