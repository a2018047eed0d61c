package wire_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/replicate/wire"
	"github.com/stretchr/testify/require"
)

// Golden files (issue #19): testdata/golden/stream-v1 is a replication
// stream written by this version, one frame of each type (the records frame
// zstd-compressed), checked in so that a change to the frame or message
// encodings that an older peer, or an older checkpoint file (a Checkpoint
// frame is a Welcome), would misread fails here. Regenerate it only for a
// new protocol version, as a new file beside it:
//
//	LOGKV_WRITE_GOLDEN=1 go test -run TestGoldenStream ./replicate/wire/

const goldenStream = "testdata/golden/stream-v1"

var (
	goldenHistory = []commitlog.EpochStart{{Epoch: 1, Seq: 1}, {Epoch: 3, Seq: 100}}
	goldenHello   = wire.Hello{ID: "follower-1", LastSeq: 120, Applied: 118, History: goldenHistory}
	goldenWelcome = wire.Welcome{Mode: wire.ModeStream, ID: "leader", Seq: 110, History: goldenHistory,
		SyncDelay: 20 * time.Millisecond, HasSyncDelay: true}
	goldenAck       = wire.Ack{Written: 130, Durable: 129, Applied: 128}
	goldenHeartbeat = wire.Heartbeat{LastSeq: 131, UnixNano: 1_700_000_000_123_456_789}
	goldenEnd       = wire.SnapshotEnd{Seq: 131, Keys: 2}
)

func goldenRecords() []commitlog.Record {
	var recs []commitlog.Record
	for i := range 3 {
		var b logkv.Batch
		b.Set([]byte("key"), []byte(strings.Repeat("compressible ", 40+i)))
		b.Delete([]byte("old"))
		recs = append(recs, commitlog.Record{Seq: uint64(111 + i), Epoch: 3, Batch: b.Repr()})
	}
	return recs
}

func writeGoldenStream(t *testing.T) {
	var buf bytes.Buffer
	w := wire.NewWriter(&buf, false)
	require.NoError(t, w.WriteFrame(wire.TypeHello, wire.AppendHello(nil, goldenHello)))
	require.NoError(t, w.WriteFrame(wire.TypeWelcome, wire.AppendWelcome(nil, goldenWelcome)))
	var re wire.RecordsEncoder
	for _, r := range goldenRecords() {
		re.Add(r)
	}
	buf.Write(wire.AppendFrame(nil, wire.TypeRecords, re.Payload(nil), true))
	var ce wire.ChunkEncoder
	ce.Add([]byte("alpha"), []byte("1"))
	ce.Add([]byte("alphabet"), []byte(""))
	require.NoError(t, w.WriteFrame(wire.TypeSnapshotChunk, ce.Payload(nil)))
	require.NoError(t, w.WriteFrame(wire.TypeSnapshotEnd, wire.AppendSnapshotEnd(nil, goldenEnd)))
	require.NoError(t, w.WriteFrame(wire.TypeAck, wire.AppendAck(nil, goldenAck)))
	require.NoError(t, w.WriteFrame(wire.TypeHeartbeat, wire.AppendHeartbeat(nil, goldenHeartbeat)))
	require.NoError(t, w.WriteFrame(wire.TypeRefuse, wire.AppendRefuse(nil, "not a follower of this group")))
	require.NoError(t, os.MkdirAll(filepath.Dir(goldenStream), 0o755))
	require.NoError(t, os.WriteFile(goldenStream, buf.Bytes(), 0o644))
}

func TestGoldenStream(t *testing.T) {
	if os.Getenv("LOGKV_WRITE_GOLDEN") != "" {
		writeGoldenStream(t)
	}
	data, err := os.ReadFile(goldenStream)
	require.NoError(t, err)
	r := wire.NewReader(bytes.NewReader(data))
	defer r.Close()
	next := func(want wire.Type) []byte {
		t.Helper()
		f, err := r.ReadFrame()
		require.NoError(t, err)
		require.Equal(t, want, f.Type)
		return append([]byte(nil), f.Payload...)
	}
	hello := next(wire.TypeHello)
	h, err := wire.DecodeHello(hello)
	require.NoError(t, err)
	require.Equal(t, goldenHello, h)

	w, err := wire.DecodeWelcome(next(wire.TypeWelcome))
	require.NoError(t, err)
	require.Equal(t, goldenWelcome, w)

	recs, err := wire.DecodeRecords(next(wire.TypeRecords), nil)
	require.NoError(t, err)
	require.Equal(t, goldenRecords(), recs)

	type kv struct{ k, v string }
	var chunk []kv
	_, err = wire.DecodeChunk(next(wire.TypeSnapshotChunk), nil, func(k, v []byte) error {
		chunk = append(chunk, kv{string(k), string(v)})
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []kv{{"alpha", "1"}, {"alphabet", ""}}, chunk)

	end, err := wire.DecodeSnapshotEnd(next(wire.TypeSnapshotEnd))
	require.NoError(t, err)
	require.Equal(t, goldenEnd, end)
	a, err := wire.DecodeAck(next(wire.TypeAck))
	require.NoError(t, err)
	require.Equal(t, goldenAck, a)
	hb, err := wire.DecodeHeartbeat(next(wire.TypeHeartbeat))
	require.NoError(t, err)
	require.Equal(t, goldenHeartbeat, hb)
	reason, err := wire.DecodeRefuse(next(wire.TypeRefuse))
	require.NoError(t, err)
	require.Equal(t, "not a follower of this group", reason)

	// A peer speaking another protocol version is refused, not misread.
	require.Equal(t, byte(wire.Version), hello[0])
	hello[0] = wire.Version + 1
	_, err = wire.DecodeHello(hello)
	require.ErrorContains(t, err, "protocol version 2, want 1")
}
