package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate"
	"github.com/logkv/logkv/replicate/commitlog"
	"github.com/logkv/logkv/replicate/transport"
)

// replicated reports whether the node ships its commit log: when it follows
// a leader, or has certificates to accept followers.
func (n *Node) replicated() bool {
	return n.cfg.Replication.ReplicaOf != "" || (n.cfg.TLS.configured() && n.cfg.Replication.Listen != "off")
}

// errNeedCerts says how to give a node the certificates replication needs.
var errNeedCerts = errors.New("replication needs certificates: make them with `kvnode certs -dir DIR -node NAME` and start each node with -tls-dir DIR/NAME")

// openReplicated opens the commit log and the engine behind it. Every node
// with durability full runs it; without certificates it has no transport,
// so it leads alone: the same log, group commit, recovery and checkpoints,
// nothing shipped.
func (n *Node) openReplicated() (backend, error) {
	c := n.cfg
	var tr transport.Transport
	var nodeID string // with certificates, the name in this node's (certs.go)
	if n.replicated() {
		if !c.TLS.configured() {
			return nil, fmt.Errorf("node: replication.replicaof is %s, but %w", c.Replication.ReplicaOf, errNeedCerts)
		}
		var err error
		if tr, nodeID, err = n.replicationTransport(); err != nil {
			return nil, err
		}
	} else if c.Replication.Listen != "off" {
		n.log.Info("replication is off: no certificates configured (make them with kvnode certs -dir DIR -node NAME, then run with -tls-dir DIR/NAME); writes still go through the commit log")
	}
	if nodeID == "" {
		var err error
		if nodeID, err = loadNodeID(c.DataDir, c.NodeID); err != nil {
			return nil, err
		}
	}
	opts, err := c.openOptions(true)
	if err != nil {
		return nil, err
	}
	rc := replicate.Config{
		ID:             nodeID,
		Dir:            filepath.Join(c.DataDir, logSubdir),
		Engines:        nodeEngines{n},
		MaxDiscard:     int64(min(c.Replication.MaxDiscard, math.MaxInt64)),
		Role:           replicate.Leader,
		Transport:      tr, // nil: a leader without followers
		AckMode:        replicate.Async,
		Quorum:         c.Replication.Quorum,
		QuorumTimeout:  time.Duration(c.Replication.AckTimeout),
		RetentionBytes: c.Replication.RetentionBytes,
		Checkpoint:     c.volatileEngine(),
		// The commit log may be the engine's WAL (see openOptions).
		EngineSyncEvery: engineSyncEvery(opts),
		Logger:          n.log.With("component", "replicate"),
	}
	if tr != nil && c.Replication.Listen != "off" {
		rc.ListenAddr = c.Replication.Listen
	}
	rc.ForgetFollowerAfter = time.Duration(c.Replication.ForgetFollowerAfter)
	if c.Replication.Ack == "sync" {
		rc.AckMode = replicate.Sync
	}
	if c.AppendFsync == "everysec" {
		rc.SyncInterval = time.Second
	}
	if c.Replication.ReplicaOf != "" {
		rc.Role, rc.LeaderAddr = replicate.Follower, c.Replication.ReplicaOf
	}
	r, err := replicate.Open(rc)
	if err != nil {
		return nil, fmt.Errorf("node: replication: %w", err)
	}
	if tr != nil {
		n.log.Info("replication on", "id", nodeID, "role", r.Role().String(), "listen", r.Addr(), "leader", c.Replication.ReplicaOf, "ack", c.Replication.Ack)
	}
	return &replicatedBackend{r: r, syncAck: rc.AckMode == replicate.Sync,
		shipping: tr != nil, leader: c.Replication.ReplicaOf, maxReadyLag: c.Replication.MaxReadyLagRecords}, nil
}

// replicatedBackend writes through the replicated commit log.
//
// In async mode a write is submitted (appended, in order, under the caller's
// key locks) and awaited later: at the end of the client's pipeline, before
// a read of the same client, or by a read-modify-write command's barrier.
// One group fsync then covers a whole pipeline, and no key lock is held
// across an fsync. In sync mode each write waits for its quorum at once, so
// a quorum that does not answer fails that command with its own error.
type replicatedBackend struct {
	r           *replicate.Replica
	syncAck     bool // ack sync: Submit waits for the quorum (Sync makes writes durable)
	maxReadyLag uint64
	shipping    bool          // a transport: the node may lead followers or follow
	submitted   atomic.Uint64 // highest seq submitted and not known awaited

	mu     sync.Mutex
	leader string // the replication address followed, if any
}

func (b *replicatedBackend) Engine() logkv.Engine { return b.r.Engine() }

// batchPool holds single-write batches: Submit copies a batch's encoding,
// so the batch can be reused as soon as Submit returns.
var batchPool = sync.Pool{New: func() any { return new(logkv.Batch) }}

func (b *replicatedBackend) Set(key, value []byte) error {
	batch := batchPool.Get().(*logkv.Batch)
	batch.Reset()
	batch.Set(key, value)
	err := b.Submit(batch)
	if cap(batch.Repr()) <= 64<<10 {
		batchPool.Put(batch) // never keep a big value's buffer
	}
	return err
}

func (b *replicatedBackend) Submit(batch *logkv.Batch) error {
	if b.syncAck {
		_, err := b.r.Write(batch)
		return err
	}
	seq, err := b.r.Submit(batch)
	if err != nil {
		return err
	}
	for {
		cur := b.submitted.Load()
		if seq <= cur || b.submitted.CompareAndSwap(cur, seq) {
			return nil
		}
	}
}

func (b *replicatedBackend) Visible() bool     { return b.syncAck }
func (b *replicatedBackend) SyncWaits() bool   { return b.syncAck || b.r.SyncInterval() == 0 }
func (b *replicatedBackend) SubmitWaits() bool { return b.syncAck }

// Barrier makes every write submitted so far readable: applied, not made
// durable any sooner (replicate's AwaitApplied). None of its callers
// acknowledges a write by it; those that do call Sync.
func (b *replicatedBackend) Barrier() error { return b.r.AwaitApplied(b.submitted.Load()) }

// SetSyncInterval switches appendfsync while the node runs (CONFIG SET).
func (b *replicatedBackend) SetSyncInterval(d time.Duration) error { return b.r.SetSyncInterval(d) }

// Sync waits for every write submitted so far: durable, applied, and (in
// sync mode, where Submit already waited) on the quorum.
func (b *replicatedBackend) Sync() error { return b.r.Await(b.submitted.Load()) }

func (b *replicatedBackend) Close() error { return b.r.Close() }

func (b *replicatedBackend) IsFollower() bool { return b.r.Role() != replicate.Leader }

// Wait waits until want followers hold every write made so far, the
// timeout passes (0: never), done closes (its client left) or the node stops
// leading. It sleeps until a follower's ack arrives: nothing polls.
func (b *replicatedBackend) Wait(done <-chan struct{}, want int, timeout time.Duration) int {
	ctx, cancel := context.WithCancel(context.Background())
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
	}
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done(): // Wait returned
		}
	}()
	return b.r.WaitFollowers(ctx, b.r.Log().LastSeq(), want)
}

// ReplicaOf follows the leader whose replication address is host:port, or
// with an empty host promotes this node to leader of a new epoch.
func (b *replicatedBackend) ReplicaOf(host, port string, force bool) error {
	if host == "" {
		if !b.IsFollower() {
			return nil
		}
		return b.r.Promote()
	}
	if !b.shipping {
		return fmt.Errorf("this node runs without replication (no certificates); %w", errNeedCerts)
	}
	addr := net.JoinHostPort(host, port)
	follow := b.r.Follow
	if force {
		follow = b.r.FollowForce
	}
	if err := follow(addr); err != nil {
		return err
	}
	// Follow made every write submitted so far durable; the seqs after it
	// are the new leader's (a resync may restart the log below them).
	b.submitted.Store(0)
	b.mu.Lock()
	b.leader = addr
	b.mu.Unlock()
	return nil
}

// Replication reports the commit log's role and state. A follower names
// the replication address it follows as ROLE's master host (port 0): it
// does not know its leader's client address.
func (b *replicatedBackend) Replication() replicationView {
	st := b.r.Status()
	v := replicationView{master: st.Role == replicate.Leader, lastSeq: st.LastSeq, log: &st, writeErr: b.r.WriteErr()}
	if v.master {
		v.followers = b.r.Followers()
	} else {
		v.leaderAddr = b.leaderAddr()
		v.masterHost, v.linkState = v.leaderAddr, st.State
	}
	return v
}

func (b *replicatedBackend) leaderAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leader
}

// NotReady: a follower is ready when it streams from its leader and has
// applied what the leader last told it of.
func (b *replicatedBackend) NotReady() string {
	st := b.r.Status()
	if err := b.r.WriteErr(); err != nil {
		if errors.Is(err, commitlog.ErrWriteFailed) {
			// A full disk: the commit log retries, and the node takes
			// writes again by itself once one succeeds.
			return fmt.Sprintf("writes are failing (%v); free space on the data directory's disk: the node resumes by itself", err)
		}
		// Sticky until a restart: a failed fsync may have lost written
		// pages, so no later success can vouch for earlier writes.
		return fmt.Sprintf("writes are failing (%v); fix the disk, then restart the node (it recovers from what the disk holds)", err)
	}
	if st.Role == replicate.Leader {
		return ""
	}
	if st.State != replicate.StateStreaming {
		return fmt.Sprintf("follower is %s, not streaming from its leader", st.State)
	}
	if st.LeaderLast > st.Applied+b.maxReadyLag {
		return fmt.Sprintf("follower lags its leader by %d records", st.LeaderLast-st.Applied)
	}
	return ""
}

// loadNodeID returns the configured id, or the one kept in dir/node_id,
// making and keeping one on first start.
func loadNodeID(dir, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dir, "node_id")
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	host, _ := os.Hostname()
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := fmt.Sprintf("%s-%x", host, r)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node: keep node id: %w", err)
	}
	return id, nil
}
