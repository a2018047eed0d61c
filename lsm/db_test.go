package lsm

import (
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/enginetest"
	"github.com/logkv/logkv/internal/vfs"
	"github.com/stretchr/testify/require"
)

// smallOptions makes flushes and compactions happen within small tests.
func smallOptions(fs vfs.FS) *Options {
	return &Options{
		FS:                    fs,
		MemtableSize:          64 << 10,
		L0CompactionThreshold: 2,
		LBaseMaxBytes:         64 << 10,
		TargetFileSize:        16 << 10,
		BlockSize:             512,
		CacheSize:             1 << 20,
		MaxOpenFiles:          16,
		MaxManifestSize:       256,
	}
}

func TestConformance(t *testing.T) {
	var dirs vfs.Dirs
	open := func(t *testing.T, dir string) logkv.Engine {
		db, err := Open(dir, smallOptions(dirs.FS(dir)))
		require.NoError(t, err)
		return db
	}
	enginetest.Run(t, open, enginetest.Capabilities{
		Durable: true,
		Crash: func(t *testing.T, e logkv.Engine, dir string) {
			dirs.Crash(dir, vfs.CrashOptions{})
		},
	})
}
