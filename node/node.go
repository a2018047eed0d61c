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
	"github.com/logkv/logkv/internal/groupsync"
	"github.com/logkv/logkv/replicate"
	"github.com/logkv/logkv/replicate/coord"
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

// backend is where a node's writes go: straight to the engine for a
// standalone node, or through the replicated commit log. It owns the engine.
type backend interface {
	// Engine returns the engine to read from now (a follower's full resync
	// replaces it).
	Engine() logkv.Engine
	// Set and Apply submit a write in order without waiting for durability.
	// Callers hold the key locks of the keys written.
	Set(key, value []byte) error
	Apply(b *logkv.Batch) error
	// Visible reports whether a submitted write is readable at once; if not,
	// it is readable after Sync or Barrier.
	Visible() bool
	// Barrier makes every write submitted so far (by any client) readable.
	// Read-modify-write commands call it under their key locks before
	// reading.
	Barrier() error
	// Sync makes every write submitted so far durable and readable (and, in
	// sync replication, held by the quorum).
	Sync() error
	// SyncWaits reports whether Sync (and Barrier, where writes are not
	// visible at once) may wait for an fsync or for followers; ApplyWaits,
	// whether Apply and Set may (sync replication). The event loops run
	// what may wait elsewhere (server.go).
	SyncWaits() bool
	ApplyWaits() bool
	// Wait blocks until n followers hold every write made so far, the
	// timeout passes (0: forever) or done closes (the client left), and
	// returns how many do.
	Wait(done <-chan struct{}, n int, timeout time.Duration) int
	// ReplicaOf follows the leader at host:port (force: whatever that
	// discards, see replication.max_discard), or with empty host, promotes
	// this node to leader.
	ReplicaOf(host, port string, force bool) error
	// IsFollower reports whether writes are refused.
	IsFollower() bool
	// Replication reports the node's role and its commit log's state, as
	// data: ROLE (cmd_server.go) and INFO's replication and persistence
	// sections (info.go) are formatted from it.
	Replication() replicationView
	// NotReady says why the node should not take traffic, or "".
	NotReady() string
	// Close makes every write durable and closes the engine.
	Close() error
}

// replicationView is what a backend reports of its role and its commit log.
// It holds data only; the command layer formats it (cmd_server.go: ROLE;
// info.go: INFO replication and persistence), so a backend never writes a
// reply. Each field says which reply shows it.
type replicationView struct {
	// master: the node takes writes (ROLE's and INFO's role "master",
	// else "slave"). A cluster member that is not the elected leader is
	// never master, even while its commit log still leads (cluster.go).
	master bool
	// lastSeq is the newest write's seq: ROLE's offset on a master and
	// INFO's master_repl_offset.
	lastSeq uint64
	// log is the commit log's status, nil without one (durability none):
	// INFO's repl_* and commitlog_* lines, and a follower's offsets.
	log *replicate.Status
	// writeErr is the commit log's write error, if writes are failing
	// (INFO aof_last_write_status).
	writeErr error
	// followers are those of a commit log that leads (ROLE's replicas,
	// INFO's slaveN lines).
	followers []replicate.FollowerStatus
	// leaderAddr is the replication address followed (INFO master_addr).
	leaderAddr string
	// masterHost, masterPort and linkState are ROLE's master and link
	// state on a node that is not master.
	masterHost string
	masterPort int
	linkState  string
	// cluster is a cluster member's view (INFO's cluster_* lines), nil
	// on a node outside a cluster.
	cluster *memberView
}

// memberView is a cluster member's view of its shard, for INFO
// replication's cluster_* lines.
type memberView struct {
	name string
	// joined: the member runs, so the fields below are known.
	joined bool
	leader *coord.Leader // the shard's elected leader, nil while none is
	// readLag is how far behind this member's reads may be; maxReadLag
	// the bound (0: none, and neither is shown).
	readLag, maxReadLag time.Duration
	leading             uint64        // the epoch this member leads, 0 if none
	leaseValid          bool          // its etcd lease is known to live
	leaseLeft           time.Duration // until the lease ends, while leading
}

// eng returns the engine to read from.
func (n *Node) eng() logkv.Engine { return n.backend.Engine() }

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

// newBackend picks the write path. With durability full (the default) every
// write goes through the commit log, as on a replicated leader, whether or
// not certificates allow shipping it: durability never depends on
// replication. Only durability none writes to the engine alone.
func (n *Node) newBackend() (backend, error) {
	if n.logged() {
		return n.withCluster(n.openReplicated())
	}
	e, err := n.openEngine(false)
	if err != nil {
		return nil, err
	}
	n.log.Warn("durability is none: writes go to the engine alone, without the commit log; acknowledged writes may be lost in a crash (the memory engine keeps nothing across a restart)", "engine", n.cfg.Engine)
	s := &standalone{engine: e}
	s.group.init(e.Sync)
	if n.cfg.AppendFsync == "everysec" {
		s.startSyncer(time.Second, n.log)
	}
	return s, nil
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

// standalone is the backend of a node with durability none: the engine
// alone, no commit log.
type standalone struct {
	engine logkv.Engine
	group  engineSync
	// With appendfsync everysec, a syncer syncs the engine every second
	// instead of each pipeline's end.
	everysec   bool
	stopSyncer chan struct{}
	syncerDone chan struct{}
}

// startSyncer makes writes wait for no fsync: the engine is synced every
// interval in the background instead.
func (s *standalone) startSyncer(interval time.Duration, log *slog.Logger) {
	s.everysec = true
	s.stopSyncer, s.syncerDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.syncerDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stopSyncer:
				return
			case <-t.C:
				if err := s.group.sync(); err != nil {
					log.Error("background sync failed", "err", err)
				}
			}
		}
	}()
}

func (s *standalone) Engine() logkv.Engine        { return s.engine }
func (s *standalone) NotReady() string            { return "" }
func (s *standalone) Set(key, value []byte) error { return s.engine.Set(key, value, nil) }
func (s *standalone) Visible() bool               { return true }
func (s *standalone) SyncWaits() bool             { return !s.everysec }
func (s *standalone) ApplyWaits() bool            { return false }
func (s *standalone) Barrier() error              { return nil }
func (s *standalone) Apply(b *logkv.Batch) error  { return s.engine.Apply(b, nil) }
func (s *standalone) Sync() error {
	if s.everysec {
		return s.group.failed() // syncing is the syncer's job
	}
	return s.group.sync()
}
func (s *standalone) Wait(<-chan struct{}, int, time.Duration) int { return 0 }
func (s *standalone) IsFollower() bool                             { return false }
func (s *standalone) Close() error {
	if s.stopSyncer != nil {
		close(s.stopSyncer)
		<-s.syncerDone
		s.stopSyncer = nil
	}
	return s.engine.Close()
}
func (s *standalone) ReplicaOf(host, port string, _ bool) error {
	if host == "" {
		return nil // already a leader
	}
	return errors.New("this node runs without replication; start it with replication configured (-repl and -tls-dir) to follow a leader")
}

// Replication: a leader of no followers, without a commit log.
func (s *standalone) Replication() replicationView {
	return replicationView{master: true, lastSeq: s.engine.LastSeq()}
}

// engineSync groups the syncs of an engine the node writes without a
// commit log, through internal/groupsync: concurrent callers share one
// sync, and a caller waits only for a sync that started after it arrived
// (so it covers the caller's writes). A caller's ticket is the count of
// calls so far, and a round covers every ticket drawn before it started. A
// failed sync is sticky: after an fsync error the kernel may have dropped
// the dirty pages, so no later success can vouch for earlier writes.
type engineSync struct {
	tickets atomic.Uint64 // calls so far
	synced  atomic.Uint64 // the tickets a finished sync covers
	group   *groupsync.Group[uint64]
}

// init makes sync the function a round runs.
func (g *engineSync) init(sync func() error) {
	g.group = groupsync.New(g.synced.Load,
		func(uint64) (uint64, error) { return g.tickets.Load(), nil },
		func(ticket uint64) error {
			if err := sync(); err != nil {
				return fmt.Errorf("node: sync failed, refusing further writes: %w", err)
			}
			g.synced.Store(ticket) // rounds run one at a time: it only grows
			return nil
		})
}

// sync returns once a sync that started after the call has succeeded, or
// the sticky error.
func (g *engineSync) sync() error { return g.group.SyncTo(g.tickets.Add(1)) }

// failed returns the sticky error of a failed sync, if one failed.
func (g *engineSync) failed() error {
	if g.group == nil {
		return nil // a backend tests made bare
	}
	return g.group.Err()
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
