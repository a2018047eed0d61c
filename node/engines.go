package node

import (
	"github.com/logkv/logkv"

	// The engines a node can run: each registers itself with logkv, and
	// the node asks it what it can do (logkv's capability interfaces),
	// never which one it is. A fourth engine is one more import here.
	_ "github.com/logkv/logkv/bitcask"
	_ "github.com/logkv/logkv/lsm"
	_ "github.com/logkv/logkv/memory"
)

// openOptions returns the options the node opens its engine with: the
// configured engine_options, and, when the node runs its commit log
// (logged), the commit log as the engine's WAL if the engine can run so
// (logkv.ExternalWAL): replicate replays the log from the engine's LastSeq
// after a crash, and every batch is written once instead of twice.
func (c *Config) openOptions(logged bool) (any, error) {
	opts, err := c.engineOptions()
	if err != nil {
		return nil, err
	}
	if ext, ok := opts.(logkv.ExternalWAL); ok && logged {
		ext.UseExternalWAL()
	}
	return opts, nil
}

// volatileEngine reports whether the configured engine keeps nothing across
// a restart (logkv.Volatile): the node then checkpoints it, and it needs no
// data directory of its own. An unknown engine is not volatile (Validate
// reports it).
func (c *Config) volatileEngine() bool {
	opts, _ := c.engineOptions()
	v, ok := opts.(logkv.Volatile)
	return ok && v.Volatile()
}

// engineSyncEvery is the commit log growth between syncs of an engine
// opened with opts (logkv.SyncCost): for lsm without its WAL, whose sync is
// a memtable flush, 64 MiB (at most that much log is replayed after a
// crash); for the others, every maintenance round.
func engineSyncEvery(opts any) int64 {
	if s, ok := opts.(logkv.SyncCost); ok {
		return s.SyncEvery()
	}
	return 0
}
