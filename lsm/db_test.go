package lsm

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/enginetest"
	"github.com/logkv/logkv/vfs"
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
		Logger:                slog.New(slog.DiscardHandler),
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

// TestMetrics checks that flushes and compactions show in the metrics.
func TestMetrics(t *testing.T) {
	db, err := Open("db", smallOptions(vfs.NewMem()))
	require.NoError(t, err)
	defer db.Close()
	for i := 0; i < 5000; i++ {
		require.NoError(t, db.Set([]byte(fmt.Sprintf("key%05d", i%1500)), make([]byte, 100), nil))
	}
	require.NoError(t, db.flushAll())
	db.waitIdle()
	m := db.Metrics()
	require.Equal(t, uint64(5000), m.Writes)
	require.Equal(t, uint64(5000*108), m.BytesWritten)
	got := map[string]float64{}
	files := 0.0
	for _, x := range m.Detail {
		if x.Name == "lsm_level_files" {
			files += x.Value
			continue
		}
		got[x.Name] = x.Value
	}
	require.Positive(t, files)
	require.Positive(t, got["lsm_flushes_total"])
	require.Positive(t, got["lsm_compactions_total"]+got["lsm_trivial_moves_total"])
	require.Positive(t, got["lsm_write_amplification"])
	require.Positive(t, got["lsm_wal_bytes_total"])
	require.Positive(t, m.DiskBytes)
	require.Positive(t, m.Keys)
}

// TestModelTornCrashes runs the conformance suite's model with crashes that
// keep torn, damaged tails of unsynced data and a prefix of unsynced
// directory changes, not only the clean worst case.
func TestModelTornCrashes(t *testing.T) {
	var dirs vfs.Dirs
	var seed atomic.Uint64
	open := func(t *testing.T, dir string) logkv.Engine {
		db, err := Open(dir, smallOptions(dirs.FS(dir)))
		require.NoError(t, err)
		return db
	}
	enginetest.RunModel(t, open, enginetest.Capabilities{
		Durable: true,
		Crash: func(t *testing.T, e logkv.Engine, dir string) {
			s := seed.Add(1)
			dirs.Crash(dir, vfs.CrashOptions{
				Rand:    rand.New(rand.NewPCG(s, 9)),
				Data:    vfs.DataLoss(1 + s%3), // torn, zeroed, corrupt
				Entries: vfs.KeepEntryPrefix,
			})
		},
	}, enginetest.ModelOptions{Seed: 11})
}
