package lsm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
	"github.com/logkv/logkv/vfs"
)

var _ logkv.Engine = (*DB)(nil)

func init() { logkv.RegisterTyped("lsm", Open) }

var (
	errClosedDB = fmt.Errorf("lsm: %w", logkv.ErrClosed)
	errNotExist = os.ErrNotExist
	// errClosing stops background work when the DB closes.
	errClosing = errors.New("lsm: closing")
)

// DB is an LSM-tree engine: a WAL, memtables, and leveled SSTables in one
// directory. All methods are safe for concurrent use.
type DB struct {
	dir   string
	opts  Options
	fs    vfs.FS
	lock  io.Closer
	cache *sstable.Cache
	tc    *tableCache
	wo    sstable.WriterOptions

	// commitMu serializes writers: seq assignment, WAL append and memtable
	// insert happen in seq order under it.
	commitMu sync.Mutex
	lastSeq  atomic.Uint64 // newest committed seq
	visible  atomic.Uint64 // newest seq readers may see
	closed   atomic.Bool
	noDelete atomic.Bool
	failed   atomic.Bool // bgErr is set

	// mu guards the fields below; cond is signalled whenever they change
	// (flush or compaction done, close).
	mu          sync.Mutex
	cond        sync.Cond
	mem         *memTable
	imm         []*memTable // oldest first
	wal         *walWriter
	current     *manifest.Version
	nextFileNum uint64
	logNum      uint64
	snapshots   []uint64 // seqs of open snapshots, a sorted multiset
	closing     bool
	bgErr       error
	flushing    bool
	compacting  bool
	compactPtr  [manifest.NumLevels][]byte

	// manifestMu serializes version changes (flush and compaction installs).
	manifestMu sync.Mutex
	manifest   *manifestWriter

	rs atomic.Pointer[readState] // the current read state (loadReadState)

	fileMu  sync.Mutex // file reference counts (FileMeta.Refs, Version refs)
	l0Count atomic.Int64

	bg sync.WaitGroup

	flushedSeq atomic.Uint64 // the newest LastSeq recorded in the manifest
	testHooks  testHooks
	m          metrics
}

// LastSeq returns the sequence number of the newest committed batch.
func (d *DB) LastSeq() uint64 { return d.lastSeq.Load() }
