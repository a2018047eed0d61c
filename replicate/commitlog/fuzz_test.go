package commitlog

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

func FuzzDecodeRecord(f *testing.F) {
	var b logkv.Batch
	b.Set([]byte("k"), []byte("v"))
	b.Delete([]byte("gone"))
	f.Add(AppendRecord(nil, Record{Seq: 7, Epoch: 2, Batch: b.Repr()}))
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Add(AppendRecord(nil, Record{Seq: 1, Epoch: 1, Batch: []byte{1, 0, 0, 0, 0}}))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := DecodeRecord(p)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendRecord(nil, r), p) {
			t.Fatalf("decode/encode round trip differs")
		}
		if _, err := logkv.DecodeBatch(r.Batch); err != nil {
			t.Fatalf("decoded record holds an invalid batch: %v", err)
		}
	})
}

func FuzzDecodeSegmentRecord(f *testing.F) {
	var b logkv.Batch
	b.Set([]byte("k"), []byte("v"))
	f.Add(appendSegmentRecord(nil, 16, Record{Seq: 7, Epoch: 2, Batch: b.Repr()}))
	f.Add(appendSegmentRecord(nil, 1<<40, Record{Seq: 1, Epoch: 1, Batch: []byte{1, 0, 0, 0, 0}}))
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, p []byte) {
		synced, r, err := decodeSegmentRecord(p)
		if err != nil {
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			return
		}
		require.Equal(t, p, appendSegmentRecord(nil, synced, r), "decode/encode round trip")
	})
}

// FuzzOpenSegment opens a log whose only segment holds the input: Open never
// panics, fails only with ErrCorrupt or ErrFormat, and a log it opens reads
// back every record it kept, goes on appending, and opens again.
func FuzzOpenSegment(f *testing.F) {
	// A real segment: synced records, then flushed ones.
	fs := vfs.NewMem()
	l, err := Open("log", &Options{FS: fs})
	if err != nil {
		f.Fatal(err)
	}
	if err := l.BeginEpoch(1); err != nil {
		f.Fatal(err)
	}
	for i := range uint64(6) {
		if _, err := l.Append(batch(f, i+1)); err != nil {
			f.Fatal(err)
		}
		if i == 2 {
			if err := l.Sync(3); err != nil {
				f.Fatal(err)
			}
		}
	}
	if err := l.Flush(); err != nil {
		f.Fatal(err)
	}
	seg := readFile(f, fs, "log/0000000000000001.log")
	f.Add(seg)
	for _, off := range []int{3, 20, len(seg) / 2, len(seg) - 5} {
		d := append([]byte(nil), seg...)
		d[off] ^= 0x10
		f.Add(d)
	}
	f.Add(seg[:len(seg)-7])
	f.Add(appendSegmentHeader(nil, 1))
	f.Add(readGolden(f, "format2", "0000000000000001.log"))
	f.Add([]byte{})
	f.Add(record.Append(nil, AppendRecord(nil, Record{Seq: 1, Epoch: 1, Batch: batch(f, 1)})))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewMem()
		require.NoError(t, fs.MkdirAll("log", 0o755))
		writeFile(t, fs, "log/0000000000000001.log", data)
		l, err := Open("log", &Options{FS: fs})
		if err != nil {
			if !errors.Is(err, logkv.ErrCorrupt) {
				require.ErrorIs(t, err, ErrFormat)
			}
			return
		}
		last := l.LastSeq()
		r, err := l.NewReader(1)
		require.NoError(t, err)
		for seq := uint64(1); seq <= last; seq++ {
			rec, err := r.Next(context.Background())
			require.NoError(t, err)
			require.Equal(t, seq, rec.Seq)
		}
		require.NoError(t, r.Close())
		if l.Epoch() == 0 {
			require.NoError(t, l.BeginEpoch(1))
		}
		seq, err := l.Append(batch(t, last+1))
		require.NoError(t, err)
		require.NoError(t, l.Sync(seq))
		require.NoError(t, l.Close())
		l, err = Open("log", &Options{FS: fs})
		require.NoError(t, err)
		require.Equal(t, seq, l.LastSeq())
		require.NoError(t, l.Close())
	})
}
