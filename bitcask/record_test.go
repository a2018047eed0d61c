package bitcask

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/record"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		synced, seq uint64
		flags       byte
		key, value  []byte
	}{
		{fileHeaderSize, 1, 0, []byte("k"), []byte("v")},
		{0, 1 << 60, flagMore, []byte("key"), nil},
		{1 << 20, 7, flagTombstone, bytes.Repeat([]byte("x"), logkv.MaxKeySize), nil},
		{99, 9, flagTombstone | flagMore, []byte("a"), nil},
	} {
		const salt = 0x5a17
		b := appendRecord(nil, salt, tc.synced, tc.seq, tc.flags, tc.key, tc.value)
		require.Len(t, b, recordSize(len(tc.key), len(tc.value)))
		_, why := decodeRecord(b, salt+1)
		require.Equal(t, "record checksum mismatch", why, "another file's salt")
		r, why := decodeRecord(b, salt)
		require.Empty(t, why)
		require.Equal(t, tc.synced, r.synced)
		require.Equal(t, tc.seq, r.seq)
		require.Equal(t, tc.flags, r.flags)
		require.Equal(t, tc.key, r.key)
		require.Equal(t, len(tc.value), len(r.value))
		require.Equal(t, uint32(len(tc.value)), r.vlen)
		// A flipped bit anywhere is caught (every byte of the header, then a
		// sample of the rest: the 64 KiB key makes every byte too slow).
		for i := 0; i < len(b); i += 1 + i/recordHeaderSize*97 {
			c := bytes.Clone(b)
			c[i] ^= 0x10
			_, why := decodeRecord(c, salt)
			require.NotEmpty(t, why, "flip in byte %d", i)
		}
		_, why = decodeRecord(b[:len(b)-1], salt)
		require.NotEmpty(t, why)
	}
}

// TestRecordFrame: a record is an internal/record frame byte for byte (it is
// built in place, not by record.Append), so record.Reader reads a data file.
func TestRecordFrame(t *testing.T) {
	const salt = 0x5a17
	file := appendFileHeader(nil, originAppend, 5, salt)
	var payloads [][]byte
	for i, v := range [][]byte{[]byte("value"), nil, bytes.Repeat([]byte{7}, 300)} {
		rec := appendRecord(nil, salt, uint64(len(file)), uint64(6+i), byte(i&flagMore), []byte("key"), v)
		p := binary.LittleEndian.AppendUint64(nil, uint64(len(file)))
		p = binary.LittleEndian.AppendUint64(p, uint64(6+i))
		p = append(p, byte(i&flagMore))
		p = binary.LittleEndian.AppendUint32(p, 3)
		p = append(append(p, "key"...), v...)
		require.Equal(t, record.AppendSalted(nil, p, salt), rec)
		payloads = append(payloads, p)
		file = append(file, rec...)
	}
	rd := record.NewReader(bytes.NewReader(file), "f", int64(len(file)), maxRecordPayload)
	hdr, err := rd.Next()
	require.NoError(t, err)
	require.Len(t, hdr, filePayloadSize)
	rd.SetSalt(salt)
	for _, want := range payloads {
		p, err := rd.Next()
		require.NoError(t, err)
		require.Equal(t, want, p)
	}
	_, err = rd.Next()
	require.Equal(t, io.EOF, err)
}

func TestFileHeader(t *testing.T) {
	b := appendFileHeader(nil, originMerge, 42, 0x5a17)
	require.Len(t, b, fileHeaderSize)
	h, why, err := decodeFileHeader("f", b)
	require.NoError(t, err)
	require.Empty(t, why)
	require.Equal(t, fileHeader{origin: originMerge, floor: 42, salt: 0x5a17, size: fileHeaderSize}, h)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 1
		_, why, err := decodeFileHeader("f", c)
		require.NoError(t, err)
		require.NotEmpty(t, why, "flip in byte %d", i)
	}
	_, why, err = decodeFileHeader("f", b[:fileHeaderSize-1])
	require.NoError(t, err)
	require.NotEmpty(t, why)
	_, why, err = decodeFileHeader("f", appendFileHeader(nil, originMerge, 42, 0))
	require.NoError(t, err)
	require.Equal(t, "file header with salt 0", why)

	// Format 2's header: no salt, 24 bytes.
	v2 := append([]byte(fileMagic), 2, originAppend, 0, 0)
	v2 = binary.LittleEndian.AppendUint64(v2, 42)
	h, why, err = decodeFileHeader("f", record.Append(nil, v2))
	require.NoError(t, err)
	require.Empty(t, why)
	require.Equal(t, fileHeader{origin: originAppend, floor: 42, size: fileHeaderSizeV2}, h)

	// A later format's header is refused by name, not taken for damage.
	v4 := append([]byte(fileMagic), 4, originAppend, 0, 0)
	v4 = binary.LittleEndian.AppendUint64(v4, 42)
	v4 = binary.LittleEndian.AppendUint64(v4, 7)
	_, _, err = decodeFileHeader("00000009.data", record.Append(nil, v4))
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorContains(t, err, "00000009.data is in data file format 4")

	// Format 1's header is recognised and refused by name.
	v1 := append([]byte(fileMagic), 1, originAppend, 0, 0)
	v1 = binary.LittleEndian.AppendUint64(v1, 42)
	v1 = binary.LittleEndian.AppendUint32(v1, crc(v1))
	_, _, err = decodeFileHeader("00000001.data", v1)
	require.ErrorIs(t, err, ErrFormat)
	require.ErrorContains(t, err, "00000001.data is in data file format 1")
}

// FuzzDecodeRecord: the decoder never panics, never reads past its input,
// and what it accepts re-encodes to the same bytes, salted or not.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 7, 24, 1, 0, []byte("key"), []byte("value")), uint64(7))
	f.Add(appendRecord(nil, 0, 0, 2, flagTombstone, []byte("k"), nil), uint64(0))
	f.Add(appendRecord(nil, 1<<63, 1<<40, 3, flagMore, []byte("k"), []byte{}), uint64(1<<63))
	f.Add([]byte{}, uint64(0))
	f.Add(make([]byte, recordHeaderSize), uint64(1))
	f.Fuzz(func(t *testing.T, b []byte, salt uint64) {
		r, why := decodeRecord(b, salt)
		if why != "" {
			return
		}
		n := r.size()
		require.LessOrEqual(t, n, len(b))
		require.Equal(t, b[:n], appendRecord(nil, salt, r.synced, r.seq, r.flags, r.key, r.value))
	})
}

// FuzzDecodeFileHeader: the header decoder never panics on any input, and
// a header it accepts is one appendFileHeader writes (format 3) or format
// 2's, byte for byte.
func FuzzDecodeFileHeader(f *testing.F) {
	f.Add(appendFileHeader(nil, originAppend, 9, 0x5a17))
	v2 := binary.LittleEndian.AppendUint64(append([]byte(fileMagic), 2, originMerge, 0, 0), 9)
	f.Add(record.Append(nil, v2))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, why, err := decodeFileHeader("f", b)
		if why != "" || err != nil {
			return
		}
		if h.salt != 0 {
			require.Equal(t, b[:fileHeaderSize], appendFileHeader(nil, h.origin, h.floor, h.salt))
			return
		}
		p := binary.LittleEndian.AppendUint64(append([]byte(fileMagic), 2, h.origin, 0, 0), h.floor)
		require.Equal(t, b[:fileHeaderSizeV2], record.Append(nil, p))
	})
}
