package node

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
	"github.com/panjf2000/gnet/v2"
)

// Node is a running logkv node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	backend backend
	locks   keyLocks
	scans   cursors
	ks      keyspace // databases, clock, watchers, expirer (keyspace.go)
	metrics *metrics
	// sec is access control and the client limits (access.go, limits.go).
	sec     security
	started time.Time
	// srv is the server commands' state (cmd_server.go).
	srv serverState

	loops *gnet.Client // the client connections' event loops (server.go)
	// heavy holds a token per heavy command running off the loop
	// (command.heavy): at most half the CPUs, so the event loops keep the
	// rest however many clients send KEYS at once.
	heavy   chan struct{}
	respLn  net.Listener
	admin   *http.Server
	adminLn net.Listener

	closing  atomic.Bool
	clientID atomic.Int64
	connsMu  sync.Mutex
	conns    map[*client]struct{}
	// loopSyncs are the event loops' group syncs, under connsMu.
	loopSyncs map[gnet.EventLoop]*loopSync
	connsWG   sync.WaitGroup
	served    chan error
	closed    chan struct{}
	shutOnce  sync.Once
	shutErr   error

	// testHookCommand, if set, runs as each command starts.
	testHookCommand func(args [][]byte)
}

// New opens the node's engine and binds its listeners; Serve then serves
// them. Addresses may use port 0, as tests do; Addr and AdminAddr tell the
// bound ones.
func New(cfg Config, logger *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	n := &Node{cfg: cfg, log: logger, heavy: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)), started: time.Now(), conns: map[*client]struct{}{}, loopSyncs: map[gnet.EventLoop]*loopSync{},
		served: make(chan error, 2), closed: make(chan struct{})}
	n.scans.init(4096)
	if n.backend, err = n.newBackend(); err != nil {
		if errors.Is(err, logkv.ErrFormat) {
			// Checked first: a format error is a corruption error too,
			// but the data is not damaged, and salvage would not help.
			return nil, fmt.Errorf("%w\nkvnode cannot read this data's format: run the kvnode version that wrote %s, "+
				"or start this node with an empty data directory as a follower of a healthy node (a full resync)", err, cfg.DataDir)
		}
		if errors.Is(err, logkv.ErrCorrupt) {
			return nil, corruptionError(cfg.DataDir, err)
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			n.backend.Close()
		}
	}()
	if err = n.checkFormat(); err != nil {
		return nil, err
	}
	n.startBackground()
	defer func() {
		if err != nil {
			n.stopBackground()
		}
	}()
	n.metrics = newMetrics(n)
	n.admin = n.adminServer()
	if n.respLn, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("node: listen %s (listen): %w", cfg.Listen, err)
	}
	if cfg.Admin != "off" {
		if n.adminLn, err = net.Listen("tcp", cfg.Admin); err != nil {
			n.respLn.Close()
			return nil, fmt.Errorf("node: listen %s (admin): %w", cfg.Admin, err)
		}
	}
	if err = n.startLoops(); err != nil {
		n.respLn.Close()
		if n.adminLn != nil {
			n.adminLn.Close()
		}
		return nil, err
	}
	n.startCluster() // joins in the background once the addresses are bound (cluster.go)
	return n, nil
}

// Where a node keeps its files, below data_dir.
const (
	engineSubdir = "engine" // the engine's files
	logSubdir    = "log"    // the replication commit log and checkpoints
)

// engineDir is where engine generation gen keeps its files: data_dir/engine
// for the first, data_dir/engine.<gen> for those full resyncs loaded beside
// it (replicate.EngineStore).
func (n *Node) engineDir(gen uint64) string {
	if gen == 0 {
		return filepath.Join(n.cfg.DataDir, engineSubdir)
	}
	return filepath.Join(n.cfg.DataDir, fmt.Sprintf("%s.%d", engineSubdir, gen))
}

// openEngine opens the configured engine in data_dir/engine (generation 0),
// first removing what is there when wipe is set.
func (n *Node) openEngine(wipe bool) (logkv.Engine, error) { return n.openEngineGen(0, wipe) }

// openEngineGen opens engine generation gen, first removing what is there
// when wipe is set (a full resync about to load into it).
func (n *Node) openEngineGen(gen uint64, wipe bool) (logkv.Engine, error) {
	opts, err := n.cfg.openOptions(n.logged())
	if err != nil {
		return nil, err
	}
	dir := ""
	if n.cfg.DataDir != "" {
		dir = n.engineDir(gen)
		if wipe {
			if err := os.RemoveAll(dir); err != nil {
				return nil, fmt.Errorf("node: wipe %s: %w", dir, err)
			}
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("node: data_dir: %w", err)
		}
		// The engine makes its files durable in dir; the entries naming dir
		// (and data_dir, when just made) are for us to sync.
		for _, d := range []string{n.cfg.DataDir, filepath.Dir(filepath.Clean(n.cfg.DataDir))} {
			if err := vfs.Default.SyncDir(d); err != nil {
				return nil, fmt.Errorf("node: data_dir: %w", err)
			}
		}
	}
	e, err := logkv.Open(n.cfg.Engine, dir, opts)
	if err != nil {
		return nil, fmt.Errorf("node: open %s engine in %s: %w", n.cfg.Engine, dir, err)
	}
	return e, nil
}

// nodeEngines is the replicate.EngineStore of a node's engine generations.
type nodeEngines struct{ n *Node }

func (e nodeEngines) Open(gen uint64, fresh bool) (logkv.Engine, error) {
	return e.n.openEngineGen(gen, fresh)
}

func (e nodeEngines) Remove(gen uint64) error {
	if e.n.cfg.DataDir == "" {
		return nil
	}
	dir := e.n.engineDir(gen)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("node: remove %s: %w", dir, err)
	}
	return vfs.Default.SyncDir(e.n.cfg.DataDir)
}

// corruptionError is what a node that found damaged data at start says:
// it does not serve from it, and a full resync from a healthy node is the
// way back, since records that fail their checksums cannot be trusted;
// without one, kvnode salvage (cli_salvage.go) keeps what still checks out.
func corruptionError(dataDir string, err error) error {
	return fmt.Errorf("%w\n"+
		"kvnode will not serve from damaged data. To recover: stop this node, move %s aside (keep it for inspection),\n"+
		"and start the node again with an empty data directory as a follower of a healthy node (-replicaof ADDR, or its cluster):\n"+
		"a full resync restores every record the leader holds. Without a healthy copy, run\n"+
		"  kvnode salvage -from %s -to NEW_DIR\n"+
		"which copies every record that still checks out into NEW_DIR (never changing %s) and lists what it skipped;\n"+
		"then start the node on NEW_DIR as a leader", err, dataDir, dataDir, dataDir)
}

// logged reports whether writes go through the commit log (durability
// full).
func (n *Node) logged() bool { return n.cfg.Durability != "none" }

// Addr returns the Redis-protocol address.
func (n *Node) Addr() string { return n.respLn.Addr().String() }

// AdminAddr returns the admin HTTP address, or "" when it is off.
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}

// Serve serves clients until Shutdown, and returns nil after a clean
// shutdown.
func (n *Node) Serve() error {
	go func() { n.served <- n.acceptLoop() }()
	if n.adminLn != nil {
		go func() {
			if err := n.admin.Serve(n.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.served <- fmt.Errorf("node: admin: %w", err)
			}
		}()
	}
	n.log.Info("kvnode serving", "engine", n.cfg.Engine, "data", n.cfg.DataDir, "listen", n.Addr(), "admin", n.AdminAddr())
	select {
	case err := <-n.served:
		if err != nil && !n.closing.Load() {
			n.Shutdown(context.Background())
			return err
		}
	case <-n.closed:
	}
	<-n.closed
	return n.shutErr
}

// Shutdown stops accepting clients, lets every connection finish the
// pipeline it is in (replies included), makes all writes durable and closes
// the engine. Connections still busy when ctx ends are cut.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutOnce.Do(func() {
		n.closing.Store(true)
		n.log.Info("kvnode shutting down")
		n.respLn.Close()
		n.closeClients(ctx)
		n.loops.Stop()
		if n.adminLn != nil {
			n.admin.Shutdown(ctx)
			n.adminLn.Close()
		}
		n.stopBackground()
		last := n.eng().LastSeq()
		n.shutErr = errors.Join(n.backend.Sync(), n.backend.Close())
		n.log.Info("kvnode stopped", "last_seq", last, "err", n.shutErr)
		close(n.closed)
	})
	<-n.closed
	return n.shutErr
}

// keyLocks are striped locks making read-modify-write commands atomic per key.
type keyLocks struct {
	seed    maphash.Seed
	once    sync.Once
	stripes [256]sync.Mutex
}

func (l *keyLocks) stripe(key []byte) int {
	l.once.Do(func() { l.seed = maphash.MakeSeed() })
	return int(maphash.Bytes(l.seed, key) % uint64(len(l.stripes)))
}

// lockStripes locks the given stripes (sorted and deduplicated in place).
func (l *keyLocks) lockStripes(idx []int) (unlock func()) {
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		l.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			l.stripes[i].Unlock()
		}
	}
}

func (l *keyLocks) lock(key []byte) (unlock func()) {
	m := &l.stripes[l.stripe(key)]
	m.Lock()
	return m.Unlock
}

// lockAll locks the stripes of keys in stripe order, so two multi-key
// commands never deadlock.
func (l *keyLocks) lockAll(keys [][]byte) (unlock func()) {
	if len(keys) == 1 { // every SET: no index slice
		return l.lock(keys[0])
	}
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, l.stripe(k))
	}
	return l.lockStripes(idx)
}

// cursors remembers where SCANs left off. A cursor is 64 bits:
//
//	bits 63..32  id of the exact resume key in this node's memory (1..2^32-1)
//	bits 31..0   the resume key's first 4 bytes, zero-padded: its hint
//
// The node keeps the newest limit resume keys. A cursor it does not know
// (issued before a restart, by another node, or evicted by newer scans)
// resumes at its hint, with trailing zero bytes dropped, which sorts at or
// before the key it stood for: the scan may return keys again, as SCAN's
// contract allows, but misses none. It cannot loop forever either: the
// cursor it returns is one this node remembers exactly.
type cursors struct {
	mu    sync.Mutex
	next  uint32
	keys  map[uint32][]byte
	order []uint32 // ring of issued ids, oldest first
	limit int
}

func (c *cursors) init(limit int) { c.keys, c.limit = map[uint32][]byte{}, limit }

// scanHint is key's first 4 bytes, zero-padded, big-endian.
func scanHint(key []byte) uint32 {
	var b [4]byte
	copy(b[:], key)
	return binary.BigEndian.Uint32(b[:])
}

// cursor returns a cursor resuming at key.
func (c *cursors) cursor(key []byte) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	if c.next == 0 {
		c.next = 1 // id 0 with hint 0 would be cursor 0, the start
	}
	id := c.next
	if len(c.order) >= c.limit {
		delete(c.keys, c.order[0])
		c.order = c.order[1:]
	}
	if _, ok := c.keys[id]; !ok {
		c.order = append(c.order, id)
	}
	c.keys[id] = key
	return uint64(id)<<32 | uint64(scanHint(key))
}

// resume returns the key to resume a scan at for cursor (not 0).
func (c *cursors) resume(cursor uint64) []byte {
	id, hint := uint32(cursor>>32), uint32(cursor)
	c.mu.Lock()
	k, ok := c.keys[id]
	c.mu.Unlock()
	if ok && scanHint(k) == hint {
		return k
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], hint)
	return bytes.TrimRight(b[:], "\x00")
}

func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
