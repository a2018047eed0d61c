package bench

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"

	"github.com/logkv/logkv"
)

// Store is what the db_bench benchmarks and the YCSB workloads use of an
// engine: logkv's Reader and Writer, and Close. Every logkv.Engine is a
// Store; so is a peer engine (Pebble, Badger, bbolt, goleveldb, a B-tree)
// behind a thin adapter, which is how kvbench measures logkv and its peers
// through the same driver code (cmd/kvbench/peers registers them).
//
// The methods keep logkv's contracts: Get returns a slice the caller owns or
// an error wrapping logkv.ErrNotFound; an iterator sees the state as of its
// creation, honours its bounds in both directions, and its Key and Value stay
// valid until the next move; Apply is atomic; WriteOptions.Sync makes the
// write durable (fsynced) before it returns.
type Store interface {
	logkv.Reader
	logkv.Writer
	Close() error
}

// metered is the optional capability of a Store that reports logkv.Metrics
// (every logkv.Engine does). Stores without it get their disk usage counted
// from their directory.
type metered interface {
	Metrics() logkv.Metrics
}

// StoreOpener opens a Store in dir, an empty directory kvbench made for it
// (or, with -use_existing_db, one an earlier run filled).
type StoreOpener func(dir string) (Store, error)

var (
	storesMu sync.RWMutex
	stores   = map[string]StoreOpener{}
)

// RegisterStore makes a Store available to kvbench's -engine under name,
// beside logkv's registered engines. It panics on an empty name, a nil
// opener, or a name already taken by a Store or a logkv engine, as
// logkv.Register does.
func RegisterStore(name string, open StoreOpener) {
	storesMu.Lock()
	defer storesMu.Unlock()
	if name == "" || open == nil {
		panic("bench: RegisterStore with an empty name or nil opener")
	}
	if _, dup := stores[name]; dup || slices.Contains(logkv.Engines(), name) {
		panic("bench: RegisterStore called twice for " + name)
	}
	stores[name] = open
}

// EngineNames returns every name -engine accepts: logkv's registered engines
// and the registered Stores, sorted.
func EngineNames() []string {
	storesMu.RLock()
	defer storesMu.RUnlock()
	names := logkv.Engines()
	for n := range stores {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// isStoreOnly reports whether name is a registered Store and not a logkv
// engine (the replication benchmarks need a logkv.Engine).
func isStoreOnly(name string) bool {
	storesMu.RLock()
	defer storesMu.RUnlock()
	_, ok := stores[name]
	return ok
}

// OpenStore opens the engine or Store registered under name in dir, as
// kvbench does: a registered Store, else logkv.Open(name, dir, nil).
func OpenStore(name, dir string) (Store, error) {
	storesMu.RLock()
	open, ok := stores[name]
	storesMu.RUnlock()
	if ok {
		return open(dir)
	}
	return logkv.Open(name, dir, nil)
}

// metricsOf returns s's metrics, or for a Store without them its directory's
// size on disk.
func metricsOf(s Store, dir string) logkv.Metrics {
	if m, ok := s.(metered); ok {
		return m.Metrics()
	}
	return logkv.Metrics{Keys: -1, DiskBytes: DirBytes(dir), MemBytes: -1}
}

// DirBytes is the size of the regular files under dir (0 if it cannot be
// read): the disk usage of a Store that does not report its own.
func DirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed under us (compaction): skip it
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// formatMetrics is the "<engine> metrics:" line; fields a Store cannot know
// (-1) are left out.
func formatMetrics(engine string, m logkv.Metrics) string {
	s := fmt.Sprintf("%-8s metrics:", engine)
	if m.Keys >= 0 {
		s += fmt.Sprintf(" %d keys,", m.Keys)
	}
	s += fmt.Sprintf(" %.1f MB on disk", float64(m.DiskBytes)/1e6)
	if m.MemBytes >= 0 {
		s += fmt.Sprintf(", %.1f MB in memory", float64(m.MemBytes)/1e6)
	}
	if m.Writes > 0 {
		s += fmt.Sprintf(", %d batches of %d writes", m.Writes, m.WriteOps)
	}
	return s
}
