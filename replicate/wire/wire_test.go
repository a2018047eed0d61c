package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/stretchr/testify/require"
)

func testBatch(k, v string) []byte {
	var b logkv.Batch
	b.Set([]byte(k), []byte(v))
	return b.Repr()
}

func TestFrameRoundTrip(t *testing.T) {
	for _, compress := range []bool{false, true} {
		var buf bytes.Buffer
		w := NewWriter(&buf, compress)
		big := bytes.Repeat([]byte("abcdefgh"), 4096)
		require.NoError(t, w.WriteFrame(TypeRecords, big))
		require.NoError(t, w.WriteFrame(TypeAck, AppendAck(nil, Ack{1, 2, 3})))
		require.NoError(t, w.WriteFrame(TypeHeartbeat, nil))
		if compress {
			require.Less(t, buf.Len(), len(big)/10, "compressible payload is compressed")
		}
		r := NewReader(&buf)
		defer r.Close()
		f, err := r.ReadFrame()
		require.NoError(t, err)
		require.Equal(t, TypeRecords, f.Type)
		require.Equal(t, big, f.Payload)
		f, err = r.ReadFrame()
		require.NoError(t, err)
		a, err := DecodeAck(f.Payload)
		require.NoError(t, err)
		require.Equal(t, Ack{1, 2, 3}, a)
		f, err = r.ReadFrame()
		require.NoError(t, err)
		require.Equal(t, TypeHeartbeat, f.Type)
		require.Empty(t, f.Payload)
		_, err = r.ReadFrame()
		require.ErrorIs(t, err, io.EOF)
	}
}

func TestFrameDamage(t *testing.T) {
	frame := AppendFrame(nil, TypeRecords, bytes.Repeat([]byte("xyz"), 200), true)
	for i := range frame {
		for _, bit := range []byte{1, 0x80} {
			bad := bytes.Clone(frame)
			bad[i] ^= bit
			_, err := NewReader(bytes.NewReader(bad)).ReadFrame()
			require.Error(t, err, "flip at %d", i)
			require.True(t, errors.Is(err, ErrProtocol) || errors.Is(err, io.ErrUnexpectedEOF), "flip at %d: %v", i, err)
		}
	}
	for n := range len(frame) {
		_, err := NewReader(bytes.NewReader(frame[:n])).ReadFrame()
		require.Error(t, err, "cut at %d", n)
		if n == 0 {
			require.ErrorIs(t, err, io.EOF)
		} else {
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		}
	}
}

func TestFrameLimits(t *testing.T) {
	hdr := make([]byte, HeaderSize)
	hdr[0] = byte(TypeRecords)
	binary.LittleEndian.PutUint32(hdr[2:], MaxFrameSize+1)
	_, err := NewReader(bytes.NewReader(hdr)).ReadFrame()
	require.ErrorIs(t, err, ErrProtocol)
	hdr[0] = 200
	_, err = NewReader(bytes.NewReader(hdr)).ReadFrame()
	require.ErrorIs(t, err, ErrProtocol)

	// A zstd frame that would decode past the limit is refused.
	const limit = 1 << 20
	bomb := encoder().EncodeAll(make([]byte, limit+1), nil)
	f := []byte{byte(TypeRecords), flagZstd, 0, 0, 0, 0, 0, 0, 0, 0}
	f = append(f, bomb...)
	binary.LittleEndian.PutUint32(f[2:], uint32(len(bomb)))
	crc := crc32Update(f[:6], f[HeaderSize:])
	binary.LittleEndian.PutUint32(f[6:], crc)
	r := NewReader(bytes.NewReader(f))
	r.limit = limit
	_, err = r.ReadFrame()
	require.ErrorIs(t, err, ErrProtocol)
}

func TestMessagesRoundTrip(t *testing.T) {
	h := Hello{ID: "node-b", LastSeq: 99, Applied: 98, History: hist(1, 1, 3, 50)}
	gh, err := DecodeHello(AppendHello(nil, h))
	require.NoError(t, err)
	require.Equal(t, h, gh)

	w := Welcome{Mode: ModeResync, ID: "a", Seq: 7, History: hist(2, 1)}
	gw, err := DecodeWelcome(AppendWelcome(nil, w))
	require.NoError(t, err)
	require.Equal(t, w, gw)
	for _, d := range []time.Duration{0, 20 * time.Millisecond, MaxSyncDelay} {
		w := Welcome{Mode: ModeStream, ID: "a", Seq: 7, History: hist(2, 1), SyncDelay: d, HasSyncDelay: true}
		gw, err := DecodeWelcome(AppendWelcome(nil, w))
		require.NoError(t, err)
		require.Equal(t, w, gw)
	}

	reason, err := DecodeRefuse(AppendRefuse(nil, "no"))
	require.NoError(t, err)
	require.Equal(t, "no", reason)

	var re RecordsEncoder
	recs := []commitlog.Record{{Seq: 5, Epoch: 1, Batch: testBatch("a", "1")}, {Seq: 6, Epoch: 2, Batch: testBatch("b", "")}}
	for _, r := range recs {
		re.Add(r)
	}
	got, err := DecodeRecords(re.Payload(nil), nil)
	require.NoError(t, err)
	require.Equal(t, recs, got)

	var ce ChunkEncoder
	ce.Add([]byte("a"), []byte("1"))
	ce.Add([]byte("b"), nil)
	var keys []string
	last, err := DecodeChunk(ce.Payload(nil), nil, func(k, v []byte) error {
		keys = append(keys, string(k)+"="+string(v))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"a=1", "b="}, keys)
	require.Equal(t, "b", string(last))
	_, err = DecodeChunk(ce.Payload(nil), []byte("a"), func(k, v []byte) error { return nil })
	require.ErrorIs(t, err, ErrProtocol, "keys must follow the previous chunk's")

	e, err := DecodeSnapshotEnd(AppendSnapshotEnd(nil, SnapshotEnd{9, 10}))
	require.NoError(t, err)
	require.Equal(t, SnapshotEnd{9, 10}, e)
	hb, err := DecodeHeartbeat(AppendHeartbeat(nil, Heartbeat{3, -4}))
	require.NoError(t, err)
	require.Equal(t, Heartbeat{3, -4}, hb)
}

func TestMessagesReject(t *testing.T) {
	var re RecordsEncoder
	re.Add(commitlog.Record{Seq: 5, Epoch: 2, Batch: testBatch("a", "1")})
	re.Add(commitlog.Record{Seq: 7, Epoch: 2, Batch: testBatch("a", "1")})
	_, err := DecodeRecords(re.Payload(nil), nil)
	require.ErrorIs(t, err, ErrProtocol, "gap")
	re.Reset()
	re.Add(commitlog.Record{Seq: 5, Epoch: 2, Batch: []byte{1, 1, 0, 0, 0, 9}})
	_, err = DecodeRecords(re.Payload(nil), nil)
	require.ErrorIs(t, err, ErrProtocol, "bad batch")
	_, err = DecodeHello(append(AppendHello(nil, Hello{ID: "x"}), 0))
	require.ErrorIs(t, err, ErrProtocol, "trailing byte")
	p := AppendHello(nil, Hello{ID: "x"})
	p[0] = 2
	_, err = DecodeHello(p)
	require.ErrorIs(t, err, ErrProtocol, "version")
	_, err = DecodeWelcome(AppendWelcome(nil, Welcome{Mode: 3}))
	require.ErrorIs(t, err, ErrProtocol, "mode")
	_, err = DecodeWelcome(AppendWelcome(nil, Welcome{Mode: ModeStream, SyncDelay: MaxSyncDelay + time.Microsecond, HasSyncDelay: true}))
	require.ErrorIs(t, err, ErrProtocol, "sync delay over the limit")
	p = AppendWelcome(nil, Welcome{Mode: ModeStream, SyncDelay: time.Second, HasSyncDelay: true})
	_, err = DecodeWelcome(p[:len(p)-1])
	require.ErrorIs(t, err, ErrProtocol, "truncated sync delay")
	_, err = DecodeHello(AppendHello(nil, Hello{History: hist(2, 1, 1, 5)}))
	require.ErrorIs(t, err, ErrProtocol, "history order")
}

func hist(pairs ...uint64) []commitlog.EpochStart {
	var h []commitlog.EpochStart
	for i := 0; i+1 < len(pairs); i += 2 {
		h = append(h, commitlog.EpochStart{Epoch: pairs[i], Seq: pairs[i+1]})
	}
	return h
}
