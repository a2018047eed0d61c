package logkv_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

type op struct {
	kind       logkv.Kind
	key, value string
}

func readOps(b *logkv.Batch) []op {
	var ops []op
	r := b.Reader()
	for {
		kind, k, v, ok := r.Next()
		if !ok {
			return ops
		}
		ops = append(ops, op{kind, string(k), string(v)})
	}
}

func TestBatchRoundTrip(t *testing.T) {
	var b logkv.Batch
	require.True(t, b.Empty())
	require.Nil(t, b.Repr())
	b.Set([]byte("a"), []byte("1"))
	b.Delete([]byte("b"))
	b.Set([]byte("c"), nil)
	b.Set(bytes.Repeat([]byte("k"), 300), bytes.Repeat([]byte("v"), 200)) // multi-byte varints
	want := []op{{logkv.KindSet, "a", "1"}, {logkv.KindDelete, "b", ""}, {logkv.KindSet, "c", ""},
		{logkv.KindSet, string(bytes.Repeat([]byte("k"), 300)), string(bytes.Repeat([]byte("v"), 200))}}
	require.Equal(t, 4, b.Len())
	require.Equal(t, want, readOps(&b))
	require.NoError(t, b.Err())

	d, err := logkv.DecodeBatch(bytes.Clone(b.Repr()))
	require.NoError(t, err)
	require.Equal(t, want, readOps(d))
	require.Equal(t, b.Size(), d.Size())

	b.Reset()
	require.True(t, b.Empty())
	require.Empty(t, readOps(&b))
}

// The documented encoding, byte by byte.
func TestBatchEncoding(t *testing.T) {
	var b logkv.Batch
	b.Set([]byte("k"), []byte("vv"))
	b.Delete([]byte("x"))
	require.Equal(t, []byte{1, 2, 0, 0, 0, 1, 1, 'k', 2, 'v', 'v', 2, 1, 'x'}, b.Repr())
}

func TestBatchCopiesInput(t *testing.T) {
	var b logkv.Batch
	k, v := []byte("key"), []byte("val")
	b.Set(k, v)
	k[0], v[0] = 'X', 'X'
	require.Equal(t, []op{{logkv.KindSet, "key", "val"}}, readOps(&b))
}

func TestBatchInvalidOps(t *testing.T) {
	cases := map[string]struct {
		add  func(b *logkv.Batch)
		want error
	}{
		"empty key":     {func(b *logkv.Batch) { b.Set(nil, []byte("v")) }, logkv.ErrEmptyKey},
		"empty del key": {func(b *logkv.Batch) { b.Delete([]byte{}) }, logkv.ErrEmptyKey},
		"key too large": {func(b *logkv.Batch) { b.Set(make([]byte, logkv.MaxKeySize+1), nil) }, logkv.ErrKeyTooLarge},
		"value too large": {func(b *logkv.Batch) {
			b.Set([]byte("k"), make([]byte, logkv.MaxValueSize+1))
		}, logkv.ErrValueTooLarge},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var b logkv.Batch
			b.Set([]byte("ok"), []byte("1"))
			c.add(&b)
			require.ErrorIs(t, b.Err(), c.want)
			b.Set([]byte("later"), []byte("2")) // ignored once the batch has an error
			require.Equal(t, 1, b.Len(), "invalid operations are not added")
			require.ErrorIs(t, b.Err(), c.want, "the first error sticks")
			b.Reset()
			require.NoError(t, b.Err())
		})
	}
}

func TestBatchTooLarge(t *testing.T) {
	var b logkv.Batch
	v := make([]byte, logkv.MaxValueSize)
	n := 0
	for b.Err() == nil {
		b.Set(binary.BigEndian.AppendUint32(nil, uint32(n)), v)
		n++
	}
	require.ErrorIs(t, b.Err(), logkv.ErrBatchTooLarge)
	require.LessOrEqual(t, b.Size(), logkv.MaxBatchSize)
	require.Equal(t, logkv.MaxBatchSize/logkv.MaxValueSize-1, b.Len())
}

func TestDecodeBatchRejects(t *testing.T) {
	var good logkv.Batch
	good.Set([]byte("k"), []byte("v"))
	enc := good.Repr()
	cases := map[string][]byte{
		"short header":       enc[:3],
		"bad version":        append([]byte{9}, enc[1:]...),
		"zero count":         {1, 0, 0, 0, 0},
		"count too high":     append([]byte{1, 2, 0, 0, 0}, enc[5:]...),
		"truncated value":    enc[:len(enc)-1],
		"trailing byte":      append(bytes.Clone(enc), 0),
		"unknown kind":       {1, 1, 0, 0, 0, 7, 1, 'k'},
		"empty key":          {1, 1, 0, 0, 0, 2, 0},
		"key past end":       {1, 1, 0, 0, 0, 2, 5, 'k'},
		"key over limit":     binary.AppendUvarint([]byte{1, 1, 0, 0, 0, 2}, logkv.MaxKeySize+1),
		"value over limit":   binary.AppendUvarint([]byte{1, 1, 0, 0, 0, 1, 1, 'k'}, logkv.MaxValueSize+1),
		"varint overflow":    {1, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"non-minimal varint": {1, 1, 0, 0, 0, 2, 0x81, 0x00, 'k'},
		"huge value length":  binary.AppendUvarint([]byte{1, 1, 0, 0, 0, 1, 1, 'k'}, 1<<62),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			var b logkv.Batch
			err := b.SetRepr(data)
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			require.True(t, b.Empty(), "a failed decode leaves the batch empty")
		})
	}
}

func FuzzDecodeBatch(f *testing.F) {
	var b logkv.Batch
	b.Set([]byte("a"), []byte("1"))
	b.Delete([]byte("bb"))
	f.Add(bytes.Clone(b.Repr()))
	f.Add([]byte{1, 1, 0, 0, 0, 2, 1, 'x'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := logkv.DecodeBatch(data)
		if err != nil {
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			return
		}
		// Round trip: re-encoding the decoded operations gives the same bytes.
		var re logkv.Batch
		for _, o := range readOps(d) {
			if o.kind == logkv.KindSet {
				re.Set([]byte(o.key), []byte(o.value))
			} else {
				re.Delete([]byte(o.key))
			}
		}
		require.NoError(t, re.Err())
		require.Equal(t, d.Len(), re.Len())
		require.True(t, bytes.Equal(d.Repr(), re.Repr()), "decode(encode(x)) != x")
	})
}

func TestBatchAppendRepr(t *testing.T) {
	var x, y logkv.Batch
	x.Set([]byte("a"), []byte("1"))
	x.Delete([]byte("b"))
	y.Set([]byte("b"), []byte("2"))
	y.Set([]byte("a"), []byte("3"))

	var m logkv.Batch
	require.NoError(t, m.AppendRepr(nil), "an empty encoding appends nothing")
	require.True(t, m.Empty())
	require.NoError(t, m.AppendRepr(x.Repr()))
	require.NoError(t, m.AppendRepr(y.Repr()))
	require.Equal(t, 4, m.Len())
	require.Equal(t, []op{{logkv.KindSet, "a", "1"}, {logkv.KindDelete, "b", ""}, {logkv.KindSet, "b", "2"}, {logkv.KindSet, "a", "3"}}, readOps(&m))
	d, err := logkv.DecodeBatch(bytes.Clone(m.Repr()))
	require.NoError(t, err, "the result is a valid encoding")
	require.Equal(t, readOps(&m), readOps(d))

	before := bytes.Clone(m.Repr())
	bad := bytes.Clone(x.Repr())
	bad[5] = 9 // an unknown kind
	require.ErrorIs(t, m.AppendRepr(bad), logkv.ErrCorrupt)
	require.Equal(t, before, m.Repr(), "a bad encoding leaves the batch as it was")
}

// A batch decoded from a buffer and then added to never writes into that
// buffer's spare capacity.
func TestBatchSetReprDoesNotWriteCallerBuffer(t *testing.T) {
	var x logkv.Batch
	x.Set([]byte("a"), []byte("1"))
	buf := make([]byte, len(x.Repr()), len(x.Repr())+64)
	copy(buf, x.Repr())
	tail := buf[len(buf):cap(buf)]
	var b logkv.Batch
	require.NoError(t, b.SetRepr(buf))
	b.Set([]byte("zz"), []byte("overflow"))
	require.NoError(t, b.AppendRepr(x.Repr()))
	require.Equal(t, make([]byte, len(tail)), tail, "the caller's spare capacity is untouched")
	require.Equal(t, x.Repr(), buf, "and so is the buffer")
	require.Equal(t, 3, b.Len())
}
