package commitlog

import (
	"bytes"
	"testing"

	"github.com/logkv/logkv"
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
