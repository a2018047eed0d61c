package replicate

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/transport"
	"github.com/logkv/logkv/replicate/wire"
	"github.com/logkv/logkv/vfs"
)

// Role is what a node does.
type Role int

// Roles.
const (
	// Leader accepts writes and ships its log to followers.
	Leader Role = iota + 1
	// Follower follows a leader and accepts no writes.
	Follower
)

func (r Role) String() string {
	switch r {
	case Leader:
		return "leader"
	case Follower:
		return "follower"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// AckMode says when the leader acknowledges a write to its client.
type AckMode int

// Ack modes.
const (
	// Async acknowledges after the local fsync of the commit log.
	Async AckMode = iota
	// Sync acknowledges once Quorum followers report the write durable.
	Sync
)

// OpenEngineFunc opens the node's engine. With wipe set it must return an
// empty engine, removing whatever the previous one kept on disk. Without
// Config.Engines, a full resync loads into OpenEngine(true) while the live
// engine is still open, so wipe must leave the live engine's files alone:
// only an engine that keeps no files (memory, with Config.Checkpoint) may
// run without Config.Engines.
type OpenEngineFunc func(wipe bool) (logkv.Engine, error)

// EngineStore keeps a node's engine in generations, so that a full resync
// loads a new engine beside the live one and swaps it in only once it is
// complete and durable (see "Full resync" in the package doc).
type EngineStore interface {
	// Open opens generation gen's engine. With fresh set it first removes
	// whatever an interrupted resync left of gen, and returns an empty
	// engine.
	Open(gen uint64, fresh bool) (logkv.Engine, error)
	// Remove removes generation gen's files; a generation that has none is
	// not an error. The node calls it only for a generation whose engine
	// is closed.
	Remove(gen uint64) error
}

// Config configures a Replica.
type Config struct {
	// ID names the node to its peers. Required.
	ID string
	// Dir holds the commit log and checkpoints. Required.
	Dir string
	// FS is the filesystem for Dir; nil means vfs.Default.
	FS vfs.FS
	// OpenEngine opens the engine. Required unless Engines is set.
	OpenEngine OpenEngineFunc
	// Engines, when set, replaces OpenEngine: generation 0 is the engine
	// OpenEngine(false) would open.
	Engines EngineStore
	// MaxDiscard is how many records its engine applied a node may throw
	// away to follow a leader whose history does not hold them (a full
	// resync after the histories forked); past it the follower refuses,
	// with an error wrapping ErrWouldDiscard, and keeps its data. Records
	// only in its log (the tail a crash left unapplied, never acknowledged
	// by a follower) are cut as before. Negative: no limit. FollowForce
	// follows regardless.
	MaxDiscard int64
	// Role is the role the node starts in.
	Role Role
	// Transport carries replication streams. Required unless the node is a
	// leader without followers.
	Transport transport.Transport
	// ListenAddr is where a leader accepts followers ("" for no listener).
	ListenAddr string
	// LeaderAddr is the leader a follower dials.
	LeaderAddr string

	// AckMode and Quorum: in Sync mode, a write is acknowledged once Quorum
	// followers report it durable, or fails with ErrQuorum after
	// QuorumTimeout (default 5s), unless FallbackAsync is set, in which case
	// it is acknowledged with a warning.
	AckMode       AckMode
	Quorum        int
	QuorumTimeout time.Duration
	FallbackAsync bool

	// SegmentSize is the commit log's segment size (0: the commitlog
	// default).
	SegmentSize int64
	// RetentionBytes caps the log kept for lagging followers: past it, the
	// most lagging followers are marked for a full resync and the log is
	// trimmed past them. 0 means 1 GiB.
	RetentionBytes int64
	// ForgetFollowerAfter is how long a leader remembers a follower after
	// its connection ended: until then the log is kept from what the
	// follower needs (up to RetentionBytes), and it shows in Followers;
	// then it is forgotten, and resynced if it returns to a log that no
	// longer holds what it lacks. Checked at each Maintain. 0 means
	// DefaultForgetFollowerAfter; negative means never.
	ForgetFollowerAfter time.Duration
	// ResyncBacklogRatio and ResyncMinBacklog choose how a returning
	// follower catches up. When the log it lacks is at least ResyncMinBacklog
	// bytes (default 64 MiB) and at least ResyncBacklogRatio (default 0.5)
	// times the leader's engine size (Metrics DiskBytes+MemBytes, an upper
	// bound of its live data), it gets a full resync instead of the log: a
	// snapshot arrives sorted and loads far faster than the same bytes of
	// records applied one by one (lsm, kvbench replicate-catchup of 1 GiB on
	// 2 cores: 107 MB/s against 30-48 MB/s), and a log full of overwrites
	// may be many times the data. CockroachDB sends a Raft snapshot on the
	// same reasoning. A negative ratio streams the log whenever it is still
	// retained.
	ResyncBacklogRatio float64
	ResyncMinBacklog   int64
	// Checkpoint makes the node write a checkpoint of the engine (needed for
	// an engine that keeps nothing across a restart, such as memory) every
	// CheckpointEvery of log growth, and restart from it. With Checkpoint
	// off the engine itself must be durable: the node syncs it before
	// trimming the log. CheckpointEvery defaults to 256 MiB.
	Checkpoint      bool
	CheckpointEvery int64
	// EngineSyncEvery, with Checkpoint off, is the log growth after which
	// Maintain syncs the engine (and may then trim the log before it). 0
	// syncs at every Maintain, which suits an engine with a log of its own;
	// an engine whose sync is costly, such as lsm without its WAL (the commit
	// log then is its WAL, and a sync flushes its memtables), wants tens of
	// MiB: that much log is replayed after a crash.
	EngineSyncEvery int64
	// MaintainEvery is how often the node checks retention and checkpoints
	// (default 1s; negative disables the background loop, for tests that
	// call Maintain themselves).
	MaintainEvery time.Duration

	// SyncInterval, when positive, trades durability for latency the way
	// Redis' appendfsync everysec does. In Async mode, Await then returns once
	// the write has reached the operating system (it survives the process
	// dying, not the machine) and is applied, instead of after an fsync; a
	// background syncer makes the log durable as soon as it can, and at the
	// latest SyncInterval after a write. A power loss may lose acknowledged
	// writes not yet synced. Followers are still sent durable records only,
	// and Sync mode is unaffected. Zero (the default) acknowledges after the
	// fsync.
	SyncInterval time.Duration
	// FollowerSyncDelay is how long followers wait, after records arrive,
	// before they fsync their logs (negative: no wait). A leader sends its
	// value to its followers in the Welcome, and they use it; a follower's
	// own value serves only with a leader that sends none. Records are
	// applied as they arrive either way; the wait only makes one fsync cover
	// more frames, so that followers sharing a disk with their leader do not
	// multiply its fsyncs (on this project's 2-core test machine fsync costs
	// CPU as well as disk time). The default follows what waits on those
	// fsyncs: 2ms in Sync mode, where a write waits for its quorum's fsyncs
	// and pays up to the delay, and 20ms in Async mode, where only WAIT and
	// log retention do (kvbench replicate-write, async: 0.61-0.67x of the
	// unreplicated throughput with no wait, 0.75x with 2ms, 0.87x with 20ms).
	FollowerSyncDelay time.Duration
	// ShipDelay paces the leader's record frames to each follower: after a
	// frame that is not full, the follower's sender waits this long before it
	// gathers the next. Negative means no wait; MaxShipDelay is the most.
	// The first record after an idle spell goes out at once; under load, one
	// frame carries what the leader made durable meanwhile instead of one
	// frame per group fsync, and a follower receives, appends and applies a
	// few hundred frames a second rather than thousands. Kafka's linger.ms
	// does the same for producers. The default follows what waits on a
	// follower: none in Sync mode, where every write waits for its quorum,
	// and 2ms in Async mode, where a follower's records are lag, not
	// latency (kvbench replicate-write, async, 2 followers on this project's
	// 2-core test machine: the followers' share of the process CPU fell from
	// about 0.5 to 0.25 cores).
	ShipDelay time.Duration
	// Compress zstd-compresses the leader's record and snapshot frames.
	Compress bool
	// MaxFrameBytes caps the records batched into one frame (default 1 MiB).
	MaxFrameBytes int
	// Heartbeat is how often an idle leader tells followers its tail
	// (default 500ms).
	Heartbeat time.Duration
	// RetryMin and RetryMax bound a follower's redial backoff (defaults
	// 50ms, 2s).
	RetryMin, RetryMax time.Duration
	// HandshakeTimeout bounds the wait for a Hello (default 10s).
	HandshakeTimeout time.Duration

	// Logger receives the node's events; nil discards them.
	Logger *slog.Logger
}

// DefaultForgetFollowerAfter is Config.ForgetFollowerAfter's default: long
// enough for a restart, a reboot or a short network outage, after which a
// follower catches up from the log; short enough that a follower gone for
// good does not hold the log for a day.
const DefaultForgetFollowerAfter = time.Hour

// MaxShipDelay is the longest Config.ShipDelay: past it, the wait would hold
// back the follower's view of the leader (heartbeats included) for longer
// than batching is worth.
const MaxShipDelay = time.Second

// DefaultQuorumTimeout is Config.QuorumTimeout's default.
const DefaultQuorumTimeout = 5 * time.Second

// DefaultRetentionBytes is Config.RetentionBytes's default: 1 GiB of log kept
// for lagging followers.
const DefaultRetentionBytes = 1 << 30

// EnsureDefaults fills c's zero fields with their defaults and returns c.
// Some depend on AckMode (FollowerSyncDelay, ShipDelay), so set it first.
// Open calls it (then Validate) on its copy of the Config; a caller that
// shows the defaults, such as a node's configuration, reads them here
// rather than writing them again.
func (c *Config) EnsureDefaults() *Config {
	if c.Engines == nil && c.OpenEngine != nil {
		c.Engines = funcStore(c.OpenEngine)
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.QuorumTimeout == 0 {
		c.QuorumTimeout = DefaultQuorumTimeout
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = DefaultRetentionBytes
	}
	if c.ForgetFollowerAfter == 0 {
		c.ForgetFollowerAfter = DefaultForgetFollowerAfter
	}
	if c.ResyncBacklogRatio == 0 {
		c.ResyncBacklogRatio = 0.5
	}
	if c.ResyncMinBacklog == 0 {
		c.ResyncMinBacklog = 64 << 20
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 256 << 20
	}
	if c.MaintainEvery == 0 {
		c.MaintainEvery = time.Second
	}
	if c.FollowerSyncDelay == 0 {
		c.FollowerSyncDelay = 2 * time.Millisecond
		if c.AckMode == Async {
			c.FollowerSyncDelay = 20 * time.Millisecond
		}
	}
	if c.ShipDelay == 0 && c.AckMode == Async {
		c.ShipDelay = 2 * time.Millisecond
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 1 << 20
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 500 * time.Millisecond
	}
	if c.RetryMin == 0 {
		c.RetryMin = 50 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 2 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks a Config that EnsureDefaults has filled, and says what to
// set.
func (c *Config) Validate() error {
	if c.ID == "" || len(c.ID) > 255 {
		return errors.New("replicate: Config.ID must be 1..255 bytes")
	}
	if c.Dir == "" {
		return errors.New("replicate: Config.Dir is required")
	}
	if c.OpenEngine == nil && c.Engines == nil {
		return errors.New("replicate: Config.OpenEngine or Config.Engines is required")
	}
	switch c.Role {
	case Leader:
	case Follower:
		if c.Transport == nil || c.LeaderAddr == "" {
			return errors.New("replicate: a follower needs a Transport and a LeaderAddr")
		}
	default:
		return fmt.Errorf("replicate: unknown role %d", c.Role)
	}
	if c.ListenAddr != "" && c.Transport == nil {
		return errors.New("replicate: ListenAddr needs a Transport")
	}
	if c.AckMode == Sync && c.Quorum <= 0 {
		return errors.New("replicate: Sync mode needs a Quorum of at least 1")
	}
	if c.FollowerSyncDelay > wire.MaxSyncDelay {
		return fmt.Errorf("replicate: Config.FollowerSyncDelay %v is over the %v a leader can send its followers", c.FollowerSyncDelay, wire.MaxSyncDelay)
	}
	if c.ShipDelay > MaxShipDelay {
		return fmt.Errorf("replicate: Config.ShipDelay %v is over %v: followers would lag the leader by that much; a few milliseconds batch enough", c.ShipDelay, MaxShipDelay)
	}
	return nil
}

// fill readies Open's copy of the Config: defaults, validation, and the
// logger tagged with the node's id.
func (c *Config) fill() error {
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	c.Logger = c.Logger.With("node", c.ID)
	return nil
}
