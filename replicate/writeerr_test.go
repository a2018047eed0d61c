package replicate

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/vfs"
	"github.com/stretchr/testify/require"
)

// Finding 3 of issue 16 (in part): after ENOSPC the node refused writes
// while nothing said so. WriteErr reports the failure (the node's /readyz
// and INFO read it), and the write that hit it is never visible.
func TestWriteErrAfterENOSPC(t *testing.T) {
	c := newCluster(t, nil)
	var full atomic.Bool
	c.fs["a"] = vfs.NewMem()
	a := c.start("a", "", func(cfg *Config) {
		cfg.FS = vfs.NewErrorFS(c.fs["a"], vfs.InjectorFunc(func(op vfs.Op) error {
			if full.Load() && op.Kind&(vfs.OpWrite|vfs.OpSync) != 0 {
				return syscall.ENOSPC
			}
			return nil
		}))
	})
	write(t, a, 0, 10, 1)
	require.NoError(t, a.WriteErr())

	full.Store(true)
	var b logkv.Batch
	b.Set([]byte("lost"), []byte("x"))
	_, err := a.Write(&b)
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.ErrorIs(t, a.WriteErr(), syscall.ENOSPC)
	_, err = a.Engine().Get([]byte("lost"))
	require.True(t, errors.Is(err, logkv.ErrNotFound), "a write whose reply was an error is not visible: %v", err)
}
