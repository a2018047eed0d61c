package replicate

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecordBufClass(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{0, -1}, {minRecordBuf - 1, -1}, {minRecordBuf, 0}, {minRecordBuf + 1, 1},
		{1 << 20, 4}, {1<<20 + 1, 5}, {maxRecordBuf, 5}, {maxRecordBuf + 1, -1},
	} {
		require.Equal(t, tc.class, recordBufClass(tc.n), "n=%d", tc.n)
	}
}

// A copy is the record's bytes whatever buffer it lands in, and a released
// buffer's next user sees only its own record.
func TestCloneRecord(t *testing.T) {
	for _, n := range []int{1, minRecordBuf - 1, minRecordBuf, 3 << 18, 1<<20 + 7, maxRecordBuf, maxRecordBuf + 1} {
		data := bytes.Repeat([]byte{byte(n)}, n)
		c := cloneRecord(data)
		require.Equal(t, data, c)
		if k := recordBufClass(n); k >= 0 {
			require.Equal(t, minRecordBuf<<k, cap(c), "n=%d: a buffer of its class", n)
		}
		data[0]++
		require.NotEqual(t, data[0], c[0], "n=%d: a copy, not an alias", n)
		releaseRecord(c)
		d := cloneRecord(bytes.Repeat([]byte{7}, n/2+1))
		require.Equal(t, bytes.Repeat([]byte{7}, n/2+1), d)
		releaseRecord(d)
	}
}
