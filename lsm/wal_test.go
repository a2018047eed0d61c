package lsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

func walPayload(seq, synced uint64, b *logkv.Batch) []byte {
	return appendWALPayload(nil, seq, synced, b.Repr())
}

// FuzzDecodeWALRecord: the decoder never panics, rejects bad input with
// ErrCorrupt, and what it accepts re-encodes to the same bytes.
func FuzzDecodeWALRecord(f *testing.F) {
	var b logkv.Batch
	b.Set([]byte("k"), []byte("v"))
	f.Add(walPayload(1, 0, &b))
	b.Delete([]byte("gone"))
	b.Set([]byte("k2"), bytes.Repeat([]byte("x"), 300))
	f.Add(walPayload(1<<40, 1<<20, &b))
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, synced, batch, err := decodeWALRecord(data, "fuzz.log", 0)
		if err != nil {
			if !errors.Is(err, logkv.ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if batch == nil {
			batch = &logkv.Batch{}
		}
		if got := walPayload(seq, synced, batch); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", got, data)
		}
	})
}

// TestGroupCommit checks that concurrent synced writers share fsyncs, and
// that every synced write survives a crash.
func TestGroupCommit(t *testing.T) {
	fs := vfs.NewMem()
	require.NoError(t, fs.MkdirAllSynced("db"))
	opts := smallOptions(fs)
	opts.MemtableSize = 4 << 20
	db, err := Open("db", opts)
	require.NoError(t, err)
	const writers, per = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				k := binary.BigEndian.AppendUint32([]byte{byte(w)}, uint32(i))
				require.NoError(t, db.Set(k, k, &logkv.WriteOptions{Sync: true}))
			}
		}(w)
	}
	wg.Wait()
	var syncs float64
	for _, m := range db.Metrics().Detail {
		if m.Name == "lsm_wal_syncs_total" {
			syncs = m.Value
		}
	}
	require.LessOrEqual(t, syncs, float64(writers*per), "more fsyncs than synced writes")
	t.Logf("%d synced writes, %v fsyncs", writers*per, syncs)
	crashed := fs.CrashClone(vfs.CrashOptions{})
	db2, err := Open("db", smallOptions(crashed))
	require.NoError(t, err)
	defer db2.Close()
	require.Equal(t, uint64(writers*per), db2.LastSeq())
	for w := 0; w < writers; w++ {
		for i := 0; i < per; i++ {
			k := binary.BigEndian.AppendUint32([]byte{byte(w)}, uint32(i))
			v, err := db2.Get(k)
			require.NoError(t, err)
			require.Equal(t, k, v)
		}
	}
	db.Close()
}

// TestLaterSyncedIgnoresImpossibleRecords: a valid frame whose synced
// field lies past its own offset cannot be a record of the segment (a
// record's synced field is the synced length when it was appended), so it
// does not make damage before it corruption.
func TestLaterSyncedIgnoresImpossibleRecords(t *testing.T) {
	var b logkv.Batch
	b.Set([]byte("k"), []byte("v"))
	garbage := bytes.Repeat([]byte{0xee}, 40) // the damaged record, at offset 0
	forged := record.Append(nil, walPayload(7, 1<<40, &b))
	d, err := laterSynced(bytes.NewReader(append(garbage, forged...)), 0, int64(len(garbage)+len(forged)))
	require.NoError(t, err)
	require.Zero(t, d, "a synced field past its record's offset vouches for nothing")

	genuine := record.Append(nil, walPayload(7, 30, &b)) // at offset 40: 30 is possible
	d, err = laterSynced(bytes.NewReader(append(garbage, genuine...)), 0, int64(len(garbage)+len(genuine)))
	require.NoError(t, err)
	require.Equal(t, int64(30), d)
}
