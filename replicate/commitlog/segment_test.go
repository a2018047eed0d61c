package commitlog

import (
	"strconv"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// writeFile writes a durable file holding data.
func writeFile(t testing.TB, fs vfs.FS, path string, data []byte) {
	f, err := fs.Create(path)
	require.NoError(t, err)
	_, err = f.Write(data)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

func readFile(t testing.TB, fs vfs.FS, path string) []byte {
	f, err := fs.Open(path)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	buf := make([]byte, st.Size())
	_, err = f.ReadAt(buf, 0)
	require.NoError(t, err)
	return buf
}

// TestSegmentHeader: segments of other formats are refused naming the file;
// a last segment whose creation a crash cut short gets its header back; a
// damaged header is corruption.
func TestSegmentHeader(t *testing.T) {
	const seg1 = "log/0000000000000001.log"
	format1 := record.Append(nil, AppendRecord(nil, Record{Seq: 1, Epoch: 1, Batch: batch(t, 1)}))
	for _, tc := range []struct {
		name string
		data []byte
		want error // nil: opens empty
	}{
		{"format 1", format1, ErrFormat},
		{"future version", record.Append(nil, append([]byte(segmentMagic), segmentVersion+1)), ErrFormat},
		{"not a segment", record.Append(nil, []byte("hello, world")), logkv.ErrCorrupt},
		{"empty file", nil, nil},
		{"torn header", appendSegmentHeader(nil, 1)[:11], nil},
		{"zeroed header", make([]byte, segHeaderSize), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			require.NoError(t, fs.MkdirAll("log", 0o755))
			writeFile(t, fs, seg1, tc.data)
			l, err := Open("log", &Options{FS: fs})
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				if tc.want == ErrFormat {
					require.ErrorIs(t, err, logkv.ErrFormat, "commitlog's ErrFormat wraps logkv's")
				}
				require.Contains(t, err.Error(), seg1)
				return
			}
			require.NoError(t, err)
			require.Equal(t, uint64(0), l.LastSeq())
			hdr := readFile(t, fs, seg1)
			require.Len(t, hdr, segHeaderSize, "the header is rewritten")
			salt, size, err := checkSegmentHeader(seg1, hdr[record.HeaderSize:])
			require.NoError(t, err)
			require.NotZero(t, salt)
			require.Equal(t, int64(segHeaderSize), size)
			require.NoError(t, l.BeginEpoch(1))
			appendN(t, l, 3)
			require.NoError(t, l.Close())
			l = openMem(t, fs, 0)
			defer l.Close()
			readRange(t, l, 1, 3)
		})
	}

	t.Run("damaged header before records", func(t *testing.T) {
		fs := vfs.NewMem()
		l := openMem(t, fs, 0)
		require.NoError(t, l.BeginEpoch(1))
		appendN(t, l, 3)
		require.NoError(t, l.Close())
		data := readFile(t, fs, seg1)
		data[10] ^= 1
		writeFile(t, fs, seg1, data)
		_, err := Open("log", &Options{FS: fs})
		require.ErrorIs(t, err, logkv.ErrCorrupt)
		require.Contains(t, err.Error(), seg1+" at offset 0:")
	})

	t.Run("sealed segment without a header", func(t *testing.T) {
		fs := vfs.NewMem()
		l := openMem(t, fs, 1<<10)
		require.NoError(t, l.BeginEpoch(1))
		appendN(t, l, 100)
		require.Greater(t, len(l.segs), 2)
		require.NoError(t, l.Close())
		writeFile(t, fs, seg1, nil)
		_, err := Open("log", &Options{FS: fs})
		require.ErrorIs(t, err, logkv.ErrCorrupt)
		require.Contains(t, err.Error(), seg1)
	})
}

func TestSegmentRecordSize(t *testing.T) {
	l := openMem(t, vfs.NewMem(), 0)
	defer l.Close()
	require.Equal(t, int64(segHeaderSize), l.Size())
	require.NoError(t, l.BeginEpoch(1))
	appendN(t, l, 2)
	require.Equal(t, int64(segHeaderSize)+SegmentRecordSize(len(batch(t, 1)))+SegmentRecordSize(len(batch(t, 2))), l.Size())
	require.Equal(t, int64(8+8+16+5), SegmentRecordSize(5))
}

// TestVouchingRecords builds a last segment by hand: record 1, then record 2
// damaged, then one more intact frame whose synced field says record 2's
// offset was synced. The frame vouches only if it can be a later record of
// the segment (seq after 1); a stale frame is ignored and the tail cut.
func TestVouchingRecords(t *testing.T) {
	for _, tc := range []struct {
		name    string
		seq     uint64 // of the third frame
		synced  int64  // its synced field, relative to record 2's offset
		corrupt bool
	}{
		{"later record vouches", 3, 1, true},
		{"later record does not vouch", 3, 0, false},
		{"stale frame", 1, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const salt = 0x5eed
			data := appendSegmentHeader(nil, salt)
			data = record.AppendSalted(data, appendSegmentRecord(nil, segHeaderSize, Record{Seq: 1, Epoch: 1, Batch: batch(t, 1)}), salt)
			second := int64(len(data))
			data = record.AppendSalted(data, appendSegmentRecord(nil, segHeaderSize, Record{Seq: 2, Epoch: 1, Batch: batch(t, 2)}), salt)
			data[second+20] ^= 1
			data = record.AppendSalted(data, appendSegmentRecord(nil, uint64(second+tc.synced), Record{Seq: tc.seq, Epoch: 1, Batch: batch(t, tc.seq)}), salt)
			fs := vfs.NewMem()
			require.NoError(t, fs.MkdirAll("log", 0o755))
			writeFile(t, fs, "log/0000000000000001.log", data)
			l, err := Open("log", &Options{FS: fs})
			if tc.corrupt {
				require.ErrorIs(t, err, logkv.ErrCorrupt)
				require.Contains(t, err.Error(), "0000000000000001.log at offset "+strconv.FormatInt(second, 10)+":")
				return
			}
			require.NoError(t, err)
			defer l.Close()
			require.Equal(t, uint64(1), l.LastSeq())
			readRange(t, l, 1, 1)
		})
	}
}
