package logkv_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// Golden files (issue #19): testdata/golden/batch-v1 is a batch encoded by
// this version, checked in, so that a change to the encoding every log in
// logkv carries (the lsm WAL, the commit log, replication frames) that
// breaks old data fails here. Regenerate it only for a new version, as a
// new file beside it:
//
//	LOGKV_WRITE_GOLDEN=1 go test -run TestGoldenBatch .

const goldenBatch = "testdata/golden/batch-v1"

// goldenBatchOps are the operations the file holds: binary and maximal
// keys, an empty value, a delete, an overwrite within the batch.
func goldenBatchOps() []op {
	return []op{
		{logkv.KindSet, "a", "1"},
		{logkv.KindSet, "\x00\xff", "binary \x00 value"},
		{logkv.KindSet, "empty", ""},
		{logkv.KindDelete, "gone", ""},
		{logkv.KindSet, "a", "2"},
		{logkv.KindSet, strings.Repeat("k", logkv.MaxKeySize), strings.Repeat("v", 300)},
	}
}

func TestGoldenBatch(t *testing.T) {
	if os.Getenv("LOGKV_WRITE_GOLDEN") != "" {
		var b logkv.Batch
		for _, o := range goldenBatchOps() {
			if o.kind == logkv.KindSet {
				b.Set([]byte(o.key), []byte(o.value))
			} else {
				b.Delete([]byte(o.key))
			}
		}
		require.NoError(t, b.Err())
		require.NoError(t, os.MkdirAll(filepath.Dir(goldenBatch), 0o755))
		require.NoError(t, os.WriteFile(goldenBatch, b.Repr(), 0o644))
	}
	data, err := os.ReadFile(goldenBatch)
	require.NoError(t, err)
	b, err := logkv.DecodeBatch(data)
	require.NoError(t, err, "a batch encoded by an earlier version must decode")
	require.Equal(t, goldenBatchOps(), readOps(b))

	// A version this one does not know is refused as such, not misread.
	future := append([]byte{}, data...)
	future[0] = 2
	_, err = logkv.DecodeBatch(future)
	require.ErrorIs(t, err, logkv.ErrFormat)
	require.ErrorIs(t, err, logkv.ErrCorrupt, "callers that refuse corruption refuse it too")
	require.ErrorContains(t, err, "batch version 2; this version reads 1")
}
