package bitcask

import (
	"path/filepath"
	"testing"

	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// Salvage keeps every record that checks out around a damaged one, in a
// closed file and in the active one, reports exactly the damaged records,
// and changes nothing in the directory.
func TestSalvageKeepsIntactRecords(t *testing.T) {
	fs := newMem(t)
	db := openMem(t, fs, Options{MaxFileSize: 4 << 10, DisableAutoMerge: true})
	const n = 300
	for i := range n {
		k, v := kv(i)
		require.NoError(t, db.Set([]byte(k), []byte(v), nil))
	}
	require.NoError(t, db.Delete([]byte("key00007"), nil))
	require.NoError(t, db.Close())

	names, err := fs.List(testDir)
	require.NoError(t, err)
	var data []string
	for _, name := range names {
		if _, suffix, ok := parseFileName(name); ok && suffix == dataSuffix {
			data = append(data, filepath.Join(testDir, name))
		}
	}
	require.Greater(t, len(data), 3)
	// Damage the fourth record of the second file and of the last file.
	var want []Skipped
	damaged := map[string]bool{}
	for _, path := range []string{data[1], data[len(data)-1]} {
		b, err := vfs.ReadFile(fs, path)
		require.NoError(t, err)
		h, why, err := decodeFileHeader(path, b)
		require.NoError(t, err)
		require.Empty(t, why)
		off := h.size
		for range 3 { // skip three records
			r, why := decodeRecord(b[off:], h.salt)
			require.Empty(t, why)
			off += int64(r.size())
		}
		rec, why := decodeRecord(b[off:], h.salt)
		require.Empty(t, why)
		damaged[string(rec.key)] = true
		want = append(want, Skipped{Path: path, Off: off, Len: int64(rec.size())})
		b[off+record.HeaderSize+20] ^= 0x80 // in the payload
		writeFile(t, fs, path, b)
	}
	before := map[string]string{}
	for _, name := range names {
		b, err := vfs.ReadFile(fs, filepath.Join(testDir, name))
		require.NoError(t, err)
		before[name] = string(b)
	}

	got := map[string]string{}
	seqs := map[string]uint64{}
	var skipped []Skipped
	require.NoError(t, Salvage(fs, testDir, func(r SalvagedRecord) error {
		if r.Seq >= seqs[string(r.Key)] {
			seqs[string(r.Key)] = r.Seq
			if r.Tombstone {
				delete(got, string(r.Key))
			} else {
				got[string(r.Key)] = string(r.Value)
			}
		}
		return nil
	}, func(s Skipped) error { s.Why = ""; skipped = append(skipped, s); return nil }))
	require.Equal(t, want, skipped)
	for i := range n {
		k, v := kv(i)
		switch {
		case damaged[k]:
			require.NotContains(t, got, k)
		case k == "key00007":
			require.NotContains(t, got, k, "the tombstone is salvaged too")
		default:
			require.Equal(t, v, got[k])
		}
	}
	for name, b := range before {
		now, err := vfs.ReadFile(fs, filepath.Join(testDir, name))
		require.NoError(t, err)
		require.Equal(t, b, string(now), "salvage changes nothing: %s", name)
	}
}

// A record forged inside a value (a whole frame with a valid plain
// checksum) is not salvaged when damage makes the scan resynchronise inside
// that value: format 3 salts record checksums, and the forger never saw the
// salt. Unsalted (format 2), the same bytes are taken for a record.
func TestSalvageIgnoresForgedRecords(t *testing.T) {
	fs := newMem(t)
	db := openMem(t, fs, Options{})
	forged := appendRecord(nil, 0, 0, 1<<40, 0, []byte("forged"), []byte("evil"))
	require.NoError(t, db.Set([]byte("a"), []byte("1"), nil))
	require.NoError(t, db.Set([]byte("carrier"), append(append([]byte("pad"), forged...), "pad"...), nil))
	require.NoError(t, db.Set([]byte("z"), []byte("2"), nil))
	require.NoError(t, db.Close())

	path := filepath.Join(testDir, fileName(1, dataSuffix))
	b, err := vfs.ReadFile(fs, path)
	require.NoError(t, err)
	h, _, err := decodeFileHeader(path, b)
	require.NoError(t, err)
	first, why := decodeRecord(b[h.size:], h.salt)
	require.Empty(t, why)
	carrier := h.size + int64(first.size())
	b[carrier+5] ^= 0x01 // the carrier's length: the scan must resynchronise
	writeFile(t, fs, path, b)

	var keys []string
	require.NoError(t, Salvage(fs, testDir, func(r SalvagedRecord) error {
		keys = append(keys, string(r.Key))
		return nil
	}, func(Skipped) error { return nil }))
	require.Equal(t, []string{"a", "z"}, keys)

	// The same bytes scanned unsalted, as format 2 was: the forgery passes.
	var unsalted []string
	require.NoError(t, record.Scan(b[h.size:], maxRecordPayload, nil,
		func(_ int64, p []byte) error {
			if r, why := decodePayload(p); why == "" {
				unsalted = append(unsalted, string(r.key))
			}
			return nil
		}, func(record.Skipped) error { return nil }))
	require.Contains(t, unsalted, "forged")
}
