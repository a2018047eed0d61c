package wire

import (
	"bytes"
	"hash/crc32"
	"testing"

	"github.com/logkv/logkv/replicate/commitlog"
)

func crc32Update(hdr, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, hdr), castagnoli, payload)
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, TypeAck, AppendAck(nil, Ack{1, 2, 3}), false))
	f.Add(AppendFrame(nil, TypeRecords, bytes.Repeat([]byte("ab"), 300), true))
	f.Add(AppendFrame(AppendFrame(nil, TypeHello, AppendHello(nil, Hello{ID: "n"}), false), TypeHeartbeat, nil, false))
	f.Add([]byte{1, 0, 255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		defer r.Close()
		for range 16 {
			fr, err := r.ReadFrame()
			if err != nil {
				return
			}
			if len(fr.Payload) > MaxFrameSize {
				t.Fatalf("payload over the limit")
			}
			// A frame that reads back re-encodes to a frame that reads back
			// the same.
			again, err := NewReader(bytes.NewReader(AppendFrame(nil, fr.Type, fr.Payload, true))).ReadFrame()
			if err != nil || !bytes.Equal(again.Payload, fr.Payload) || again.Type != fr.Type {
				t.Fatalf("re-encoded frame differs: %v", err)
			}
		}
	})
}

func FuzzDecodeHandshake(f *testing.F) {
	f.Add(AppendHello(nil, Hello{ID: "node", LastSeq: 9, Applied: 8, History: hist(1, 1, 2, 5)}))
	f.Add(AppendWelcome(nil, Welcome{Mode: ModeStream, ID: "l", Seq: 4, History: hist(1, 1)}))
	f.Add(AppendWelcome(nil, Welcome{Mode: ModeStream, ID: "l", Seq: 4, History: hist(1, 1), SyncDelay: 20e6, HasSyncDelay: true}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		if h, err := DecodeHello(p); err == nil {
			if !bytes.Equal(AppendHello(nil, h), p) {
				t.Fatalf("hello round trip differs")
			}
		}
		if w, err := DecodeWelcome(p); err == nil {
			if !bytes.Equal(AppendWelcome(nil, w), p) {
				t.Fatalf("welcome round trip differs")
			}
		}
		if s, err := DecodeRefuse(p); err == nil {
			if !bytes.Equal(AppendRefuse(nil, s), p) {
				t.Fatalf("refuse round trip differs")
			}
		}
		DecodeAck(p)
		DecodeHeartbeat(p)
		DecodeSnapshotEnd(p)
	})
}

func FuzzDecodeData(f *testing.F) {
	var re RecordsEncoder
	re.Add(commitlog.Record{Seq: 3, Epoch: 1, Batch: testBatch("k", "v")})
	re.Add(commitlog.Record{Seq: 4, Epoch: 1, Batch: testBatch("k2", "v2")})
	f.Add(re.Payload(nil))
	var ce ChunkEncoder
	ce.Add([]byte("a"), []byte("1"))
	ce.Add([]byte("b"), []byte("2"))
	f.Add(ce.Payload(nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		if recs, err := DecodeRecords(p, nil); err == nil {
			var e RecordsEncoder
			for _, r := range recs {
				e.Add(r)
			}
			if !bytes.Equal(e.Payload(nil), p) {
				t.Fatalf("records round trip differs")
			}
		}
		var e ChunkEncoder
		if _, err := DecodeChunk(p, nil, func(k, v []byte) error { e.Add(k, v); return nil }); err == nil {
			if !bytes.Equal(e.Payload(nil), p) {
				t.Fatalf("chunk round trip differs")
			}
		}
	})
}
