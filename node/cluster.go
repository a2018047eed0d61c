package node

// Automatic failover (docs/cluster.md, issue #17). With cluster.etcd_endpoints
// and cluster.name set, a node joins its cluster through etcd instead of
// -replicaof: package replicate/coord elects the leader and tells this
// file's clusterReplica to lead or follow; clusterBackend wraps the
// replicated backend so that only the elected leader, while its lease is
// valid by its own clock, acknowledges writes.
//
//	coord.Member (etcd: lease, leader key, progress)
//	   -> clusterReplica.Lead / Follow / StepDown   (promote, follow, fence)
//	   -> replicate.Replica.PromoteTo / FollowForce    (epochs, divergent tails)
//	clients -> clusterBackend.IsFollower / Submit / Sync (READONLY, TRYAGAIN)

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate"
	"github.com/logkv/logkv/replicate/coord"
	"github.com/logkv/logkv/replicate/transport"
)

// Cluster configures automatic failover through etcd. Without
// EtcdEndpoints the node runs as before: its role is what replicaof and
// REPLICAOF make it.
type Cluster struct {
	// EtcdEndpoints are the etcd client URLs (http:// or https://).
	EtcdEndpoints []string `yaml:"etcd_endpoints"`
	// Name names the cluster; every key is under /logkv/<name>/ in etcd.
	Name string `yaml:"name"`
	// Shard is the replica group this node joins (-shard): each shard
	// elects its own leader under /logkv/<name>/shards/<shard>/, and the
	// slot map (docs/cluster.md, "Slots") says which keys it serves.
	// Empty is shard "0", the one shard of a cluster without a map.
	Shard string `yaml:"shard"`
	// LeaseTTL is the leader lease's time to live, whole seconds (default
	// 2s). A dead leader is replaced after about LeaseTTL; a leader that
	// cannot reach etcd stops acknowledging writes 3/4 of LeaseTTL after
	// its last renewal.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// Priority orders eligible followers with equally durable logs: the
	// highest runs first. 0, as Redis's replica-priority 0, means never
	// leader. Default 100.
	Priority int `yaml:"priority"`
	// NeverLeader keeps this node a follower whatever happens.
	NeverLeader bool `yaml:"never_leader"`
	// Settle is how long followers wait, once the leader key is gone, for
	// every member's progress before one runs (default 500ms).
	Settle Duration `yaml:"settle"`
	// MaxReadLag bounds how stale a follower's reads may be: a follower
	// that has not been caught up with its leader for longer answers
	// reads with -MASTERDOWN naming its lag (0: no bound, reads are
	// served however stale, as a Redis replica with
	// replica-serve-stale-data yes). See staleRead.
	MaxReadLag Duration `yaml:"max_read_lag"`
	// EtcdCA, EtcdCert and EtcdKey name PEM files for TLS to etcd: the CA
	// that signed etcd's certificate, and this node's client certificate
	// and key (when etcd asks for one).
	EtcdCA   string `yaml:"etcd_ca"`
	EtcdCert string `yaml:"etcd_cert"`
	EtcdKey  string `yaml:"etcd_key"`
	// EtcdUsername and EtcdPasswordFile log in to etcd with its
	// authentication; the password file's first line is the password.
	EtcdUsername     string `yaml:"etcd_username"`
	EtcdPasswordFile string `yaml:"etcd_password_file"`
}

// defaultCluster is Cluster's defaults: the ones coord owns.
func defaultCluster() Cluster {
	return Cluster{Priority: coord.DefaultPriority, LeaseTTL: Duration(coord.DefaultTTL), Settle: Duration(coord.DefaultSettle)}
}

func (c Cluster) enabled() bool { return len(c.EtcdEndpoints) > 0 }

// validate adds what is wrong with the cluster settings to bad.
func (c *Config) validateCluster(bad func(string, ...any)) {
	cl := c.Cluster
	if !cl.enabled() {
		if cl.Name != "" {
			bad("cluster.name is %q but cluster.etcd_endpoints is empty; set -etcd http://HOST:2379 (or remove the name)", cl.Name)
		}
		return
	}
	if cl.Name == "" || strings.ContainsAny(cl.Name, "/ ") {
		bad("cluster.name %q must be set (-cluster NAME) and hold no '/' or space", cl.Name)
	}
	if cl.Shard != "" {
		if err := validShardName(cl.Shard); err != nil {
			bad("cluster.shard (-shard): %v", err)
		}
	}
	for _, e := range cl.EtcdEndpoints {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			bad("cluster.etcd_endpoints: %q is not an http:// or https:// URL", e)
		}
	}
	if ttl := time.Duration(cl.LeaseTTL); ttl < time.Second || ttl%time.Second != 0 {
		bad("cluster.lease_ttl %v must be whole seconds, at least 1s (etcd's unit)", ttl)
	}
	if cl.Priority < 0 {
		bad("cluster.priority %d must be 0 (never leader) or more", cl.Priority)
	}
	if cl.Settle < 0 {
		bad("cluster.settle must not be negative")
	}
	if cl.MaxReadLag < 0 || (cl.MaxReadLag > 0 && time.Duration(cl.MaxReadLag) < minReadLag) {
		bad("cluster.max_read_lag %v must be 0 (no bound) or at least %v (the lag is sampled every few milliseconds)", time.Duration(cl.MaxReadLag), minReadLag)
	}
	if (cl.EtcdCert == "") != (cl.EtcdKey == "") {
		bad("cluster.etcd_cert and cluster.etcd_key go together")
	}
	if c.Replication.ReplicaOf != "" {
		bad("replication.replicaof is %q, but with a cluster etcd chooses whom to follow; remove replicaof", c.Replication.ReplicaOf)
	}
	if c.Durability != "full" || !c.TLS.configured() || c.Replication.Listen == "off" {
		bad("a cluster member ships its commit log: it needs durability full, certificates (-tls-dir) and replication.listen")
	}
}

// errFenced answers writes on a leader whose lease is not known valid.
var errFenced = errors.New("TRYAGAIN this node could not renew its leadership lease in etcd in time, or lost it; retry shortly (it resumes once renewed, or another node takes over)")

// clusterBackend is the replicated backend of a cluster member: writes are
// taken only by the elected leader, and acknowledged only while its lease is
// valid.
type clusterBackend struct {
	*replicatedBackend
	n      *Node
	cli    *clientv3.Client
	member atomic.Pointer[coord.Member] // nil until startCluster
	// leading is the epoch this node was promoted to by coord, 0 if none.
	leading atomic.Uint64
	// acked is the highest submitted seq a Sync acknowledged.
	acked  atomic.Uint64
	cancel context.CancelFunc
	done   chan struct{}
	subs   switchSubs
	// readLag is how long, in nanoseconds, this node has not been caught
	// up with its leader, as trackReadLag last sampled it (only with
	// max_read_lag set).
	readLag    atomic.Int64
	maxReadLag time.Duration
	// probeEpoch and probeSince: since when the leader of probeEpoch has
	// refused connections (probeLeader); guarded by mu.
	probeEpoch uint64
	probeSince time.Time
	// testHookSubmit, when a test sets it, runs at Submit's start with the
	// batch (and the caller's key locks held), before any move check.
	testHookSubmit atomic.Pointer[func(*logkv.Batch)]
	// testHookAwaited, when a test sets it, runs in Submit and Sync once
	// the writes are durable (and, in sync mode, on the quorum), before
	// mayAck decides whether to acknowledge them.
	testHookAwaited atomic.Pointer[func()]
	// route is the slot table the command path routes by (route.go).
	route router
	// moves tracks the ranges this node ships to other shards, moveStats
	// counts the moves into it, and moveTr dials and serves moves (TLS
	// over TCP on the node's certificates, transport.TCP): move.go.
	moves     moveTracker
	moveStats moveStats
	moveTr    transport.Transport
	// bg counts the move goroutines Close waits for.
	bg sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// withCluster wraps a replicated backend in a clusterBackend when the
// node is a cluster member.
func (n *Node) withCluster(b backend, err error) (backend, error) {
	if err != nil || !n.cfg.Cluster.enabled() {
		return b, err
	}
	rb, ok := b.(*replicatedBackend)
	if !ok {
		b.Close()
		return nil, errors.New("node: a cluster member needs the commit log (durability full)")
	}
	cli, err := n.etcdClient()
	if err != nil {
		rb.Close()
		return nil, err
	}
	return &clusterBackend{replicatedBackend: rb, n: n, cli: cli, done: make(chan struct{})}, nil
}

// etcdClient makes the etcd client the cluster settings describe. It does
// not wait for etcd: a member starts while etcd is down, and joins when it
// is back.
func (n *Node) etcdClient() (*clientv3.Client, error) {
	cl := n.cfg.Cluster
	cc := clientv3.Config{Endpoints: cl.EtcdEndpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), // coord logs what matters
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second}
	if cl.EtcdCA != "" || cl.EtcdCert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cl.EtcdCA != "" {
			pem, err := os.ReadFile(cl.EtcdCA)
			if err != nil {
				return nil, fmt.Errorf("node: cluster.etcd_ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("node: cluster.etcd_ca %s holds no PEM certificate", cl.EtcdCA)
			}
		}
		if cl.EtcdCert != "" {
			cert, err := tls.LoadX509KeyPair(cl.EtcdCert, cl.EtcdKey)
			if err != nil {
				return nil, fmt.Errorf("node: cluster.etcd_cert/etcd_key: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cc.TLS = tc
	}
	if cl.EtcdUsername != "" {
		cc.Username = cl.EtcdUsername
		if cl.EtcdPasswordFile != "" {
			b, err := os.ReadFile(cl.EtcdPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("node: cluster.etcd_password_file: %w", err)
			}
			cc.Password = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		}
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("node: etcd client for %v: %w", cl.EtcdEndpoints, err)
	}
	return cli, nil
}

// startCluster joins the cluster once the node's addresses are bound. A
// node that is not a cluster member does nothing.
func (n *Node) startCluster() {
	b, ok := n.backend.(*clusterBackend)
	if !ok {
		return
	}
	cl := n.cfg.Cluster
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	// Slot moves are served on a listener of their own (move_source.go);
	// a node that cannot open it still serves, it only cannot be a move's
	// source.
	moveAddr, err := b.startMoveListener(ctx)
	if err != nil {
		n.log.Error("cluster: no slot moves from this node", "err", err)
	}
	m, err := coord.New(coord.Config{
		Client:      b.cli,
		Cluster:     cl.Name,
		Shard:       cl.Shard,
		ID:          b.r.ID(),
		RESPAddr:    n.Addr(),
		ReplAddr:    b.r.Addr(),
		MoveAddr:    moveAddr,
		Priority:    max(cl.Priority, 1),
		NeverLeader: cl.NeverLeader || cl.Priority == 0,
		TTL:         time.Duration(cl.LeaseTTL),
		Settle:      time.Duration(cl.Settle),
		SyncQuorum:  b.syncQuorum(),
		Logger:      n.log,
	})
	if err != nil { // Validate checked every setting coord checks
		n.log.Error("cluster: not joining", "err", err)
		close(b.done)
		return
	}
	b.member.Store(m)
	n.log.Info("joining cluster", "cluster", cl.Name, "etcd", cl.EtcdEndpoints, "id", b.r.ID())
	go func() {
		defer close(b.done)
		m.Run(ctx, clusterReplica{b})
	}()
	go b.publishSwitches(ctx, m)
	go b.watchSlots(ctx) // the slot map and the shards' leaders (route.go)
	b.bg.Add(1)
	go func() { // moves into this shard, and the sweep of others' slots (move_target.go)
		defer b.bg.Done()
		b.runMoves(ctx)
	}()
	b.registerMoveMetrics()
	if b.maxReadLag = time.Duration(cl.MaxReadLag); b.maxReadLag > 0 {
		go b.trackReadLag(ctx)
	}
}

func (b *clusterBackend) syncQuorum() int {
	if b.syncAck {
		return b.n.cfg.Replication.Quorum
	}
	return 0
}

// IsFollower: only the leader coord elected takes writes; every other
// member, and a leader that lost its key, answers READONLY.
func (b *clusterBackend) IsFollower() bool {
	m := b.member.Load()
	return m == nil || b.leading.Load() == 0 || m.Leading() == 0 || b.r.Role() != replicate.Leader
}

// fenced reports whether this node leads but its lease is not known valid:
// writes then get TRYAGAIN before they are logged.
func (b *clusterBackend) fenced() bool {
	m := b.member.Load()
	return m != nil && m.Leading() != 0 && !m.Valid()
}

// leadingEpoch is the epoch coord names this node leader of, 0 if none: a
// write notes it before it is logged, and is acknowledged only if mayAck of
// it holds once it is durable (and on the quorum).
func (b *clusterBackend) leadingEpoch() uint64 {
	if m := b.member.Load(); m != nil {
		return m.Leading()
	}
	return 0
}

// mayAck reports whether a write logged while this node led epoch may be
// acknowledged now: the node still leads that same epoch and its lease is
// valid by its own clock (coord.Member.Valid).
//
// Why "still leads epoch and valid", not "not fenced": a member whose
// leadership ended (its key vanished or names another, its session ended)
// leads no epoch, so it is not fenced, and yet another member may have been
// elected without the write, which the old leader's followers then cut.
// That is how a leader paused past its lease acknowledged writes the next
// leader lacked (issue #17's kvhistory runs): it resumed, saw the new
// leader's key and stepped down, and its followers, not yet switched, acked
// the writes that were waiting for their quorum. Epochs only grow, so the
// same epoch before and after Valid means it led that epoch throughout.
func (b *clusterBackend) mayAck(epoch uint64) bool {
	m := b.member.Load()
	return m != nil && epoch != 0 && m.Leading() == epoch && m.Valid() && m.Leading() == epoch
}

// Set goes through this Submit: replicatedBackend.Set would call its own,
// which acknowledges without mayAck's check.
func (b *clusterBackend) Set(key, value []byte) error {
	var batch logkv.Batch
	batch.Set(key, value)
	return b.Submit(&batch)
}

// Submit refuses, before anything is logged, a write this node must not
// take (fenced; a slot moved away since the command was routed) and
// acknowledges it as replicatedBackend.Submit does.
func (b *clusterBackend) Submit(batch *logkv.Batch) error { return b.apply(batch, true) }

// apply is Submit; owned false skips the slot ownership check, for the
// sweep's deletes of the slots this shard gave away (move.go).
func (b *clusterBackend) apply(batch *logkv.Batch, owned bool) error {
	epoch := b.leadingEpoch()
	if b.fenced() {
		return errFenced
	}
	if h := b.testHookSubmit.Load(); h != nil {
		(*h)(batch)
	}
	// From the ownership check to the submit, a range this node ships
	// cannot pause, flip and unpause: a range tracked marks (or, paused,
	// refuses) the batch's keys under the tracker's read lock; with none
	// tracked, a move's start waits for this write to leave
	// (move_source.go: enter).
	locked := b.moves.enter()
	var err error
	if locked {
		err = b.moves.observe(batch)
	}
	if err == nil && owned {
		err = b.checkOwned(batch)
	}
	if err == nil {
		err = b.replicatedBackend.Submit(batch)
	}
	b.moves.exit(locked)
	if h := b.testHookAwaited.Load(); h != nil && err == nil {
		(*h)()
	}
	if err == nil && b.syncAck && !b.mayAck(epoch) {
		return errFenced // sync mode acknowledges in Submit
	}
	return err
}

// Sync acknowledges: it fails with errFenced unless the node still leads
// the epoch it led when the Sync began, with a valid lease (mayAck), since
// otherwise another node may lead by now without these writes.
// A Sync with nothing new to acknowledge (Shutdown's, an idle client's)
// is not refused.
func (b *clusterBackend) Sync() error {
	epoch := b.leadingEpoch()
	seq := b.submitted.Load()
	err := b.replicatedBackend.Sync()
	if err != nil || seq <= b.acked.Load() {
		return err
	}
	if h := b.testHookAwaited.Load(); h != nil {
		(*h)()
	}
	if !b.mayAck(epoch) {
		if b.noClientLeft() {
			// Shutdown's last Sync: the writes are durable in the log
			// (replicatedBackend.Sync above) and stay there, and no client
			// is left to acknowledge them to, so there is nothing to
			// refuse: a leader that cannot renew its lease stops cleanly.
			return nil
		}
		return errFenced
	}
	for {
		cur := b.acked.Load()
		if seq <= cur || b.acked.CompareAndSwap(cur, seq) {
			return nil
		}
	}
}

// noClientLeft reports whether the node is shutting down with every client
// connection gone (Shutdown closes them before its last Sync): a Sync then
// acknowledges nothing to anyone.
func (b *clusterBackend) noClientLeft() bool {
	n := b.n
	if !n.closing.Load() {
		return false
	}
	n.connsMu.Lock()
	defer n.connsMu.Unlock()
	return len(n.conns) == 0
}

// Barrier makes writes readable; it acknowledges nothing, so it is not
// fenced (a sync-mode leader's reads are: readindex.go).
func (b *clusterBackend) Barrier() error { return b.replicatedBackend.Barrier() }

// ReplicaOf is refused: etcd decides who leads (kvnode cluster failover
// hands leadership over).
func (b *clusterBackend) ReplicaOf(host, port string, _ bool) error {
	return errors.New("this node is a member of cluster " + b.n.cfg.Cluster.Name + ", where etcd elects the leader: use `kvnode cluster failover` to move leadership")
}

func (b *clusterBackend) Close() error {
	b.closeOnce.Do(func() {
		if b.cancel != nil {
			b.cancel() // Run revokes the lease: a follower takes over at once
			<-b.done
			b.bg.Wait()
		}
		b.subs.closeAll()
		b.cli.Close()
		b.closeErr = b.replicatedBackend.Close()
	})
	return b.closeErr
}

// Replication is the replicated backend's view, with the cluster's leader
// as the master a follower names (its client address, as Redis replicas
// do) and the cluster's own state.
//
// A member that is not the elected leader says slave even while its
// replicate.Replica still leads (it stepped down, and has not followed the
// next leader yet: whom etcd names is unknown), with no master address:
// answering master there (as it did) made clients, and kvhistory's ROLE,
// GET, ROLE check, take its reads for a leader's, after its leadership had
// ended and while its log may hold writes no quorum took.
func (b *clusterBackend) Replication() replicationView {
	follower := b.IsFollower()
	v := b.replicatedBackend.Replication()
	if follower {
		v.master = false
		var host, port string
		if l := b.clusterLeader(); l != nil {
			host, port, _ = net.SplitHostPort(l.RESP)
		}
		v.masterHost, v.masterPort = host, atoiOr0(port)
		v.linkState = v.log.State
		if v.log.Role == replicate.Leader {
			v.linkState = "connect" // Redis' word for a replica yet to reach its master
		}
	}
	cv := &memberView{name: b.n.cfg.Cluster.Name}
	if m := b.member.Load(); m != nil {
		cv.joined, cv.leader = true, m.Leader()
		cv.leading, cv.leaseValid = m.Leading(), m.Valid()
		if cv.leading != 0 {
			cv.leaseLeft = time.Until(m.Deadline())
		}
		if b.maxReadLag > 0 {
			cv.readLag, cv.maxReadLag = time.Duration(b.readLag.Load()), b.maxReadLag
		}
	}
	v.cluster = cv
	return v
}

func (b *clusterBackend) clusterLeader() *coord.Leader {
	if m := b.member.Load(); m != nil {
		return m.Leader()
	}
	return nil
}

func atoiOr0(s string) int {
	v := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		v = v*10 + int(c-'0')
	}
	return v
}

// clusterReplica is what coord drives: this node's replicate.Replica.
type clusterReplica struct{ b *clusterBackend }

// Progress reports the log's durable seq and its newest epoch as coord
// counts epochs (the leader key's revision, clusterEpochBase less), 0 for
// an epoch no election made: coord compares logs by epoch first, and a
// node's random first epoch must not outrank an elected one (nor another
// node's random epoch a longer log).
func (r clusterReplica) Progress() (durable, epoch uint64) {
	st := r.b.r.Status()
	if st.Epoch >= clusterEpochBase {
		epoch = st.Epoch - clusterEpochBase
	}
	return st.DurableSeq, epoch
}

// followProbeTimeout bounds Follow's check that the leader lives.
const followProbeTimeout = time.Second

// probeLeader refuses to follow l while its client port refuses
// connections, for at most two lease TTLs.
//
// Why: the leader key outlives its holder by up to a TTL. Following a dead
// leader blocks in replicate's handshake for its timeout (10 s), during
// which this member neither sees the key vanish nor runs, while the others
// defer to it if its log is the best: a failover stalled for 10 s. A live
// leader's client port answers at once, a dead process's is refused at
// once; coord retries the refusal and sees the key vanish. Anything else
// (a timeout, a firewall between members' client ports, an unspecified
// listen address) follows as before, as does a refusal that outlasts two
// TTLs, which no dead leader's key can.
func (b *clusterBackend) probeLeader(l coord.Leader) error {
	c, err := net.DialTimeout("tcp", l.RESP, followProbeTimeout)
	if err == nil {
		c.Close()
		return nil
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.probeEpoch != l.Epoch {
		b.probeEpoch, b.probeSince = l.Epoch, time.Now()
	}
	if time.Since(b.probeSince) > 2*time.Duration(b.n.cfg.Cluster.LeaseTTL) {
		return nil
	}
	return fmt.Errorf("node: leader %s refuses connections on %s (%w): it has likely died and its key will lapse; not following it yet", l.ID, l.RESP, err)
}

// clusterEpochBase is added to the leader key's etcd revision to make the
// commit log's epoch: replicate gives a node leading a history of its own a
// random first epoch below 2^40, so every epoch etcd chose is newer than any
// a node had before it joined a cluster, and the etcd revisions order the
// rest.
const clusterEpochBase = 1 << 40

// Lead promotes the node to the epoch of the leader key's etcd revision
// and writes the keyspace format key a fresh cluster's first leader owes
// its followers.
func (r clusterReplica) Lead(epoch uint64) error {
	b := r.b
	if err := b.r.PromoteTo(clusterEpochBase + epoch); err != nil {
		return err
	}
	b.mu.Lock()
	b.leader = ""
	b.mu.Unlock()
	format, err := b.r.Engine().Get(metaFormatKey)
	if errors.Is(err, logkv.ErrNotFound) {
		var fb logkv.Batch
		fb.Set(metaFormatKey, []byte{keyspaceFormat})
		if err := errors.Join(b.replicatedBackend.Submit(&fb), b.replicatedBackend.Sync()); err != nil {
			return err
		}
	} else if err != nil {
		return err
	} else {
		// The first record of the epoch, as Raft's no-op entry: the format
		// key written again with its value. A follower that holds it
		// reports this epoch (coord compares logs by epoch, then seq), so
		// a handoff can tell its target holds this leader's records, not
		// a divergent tail as long. Durable here only: no follower is
		// connected yet, and nothing is acknowledged by it.
		var nb logkv.Batch
		nb.Set(metaFormatKey, format)
		seq, err := b.r.Submit(&nb)
		if err == nil {
			err = b.r.AwaitLocal(seq)
		}
		if err != nil {
			return err
		}
	}
	b.n.ks.gensLoaded.Store(false) // generations are read again by the leader
	b.leading.Store(epoch)
	b.moves.wakeConfirm() // keyed commands wait for the table's confirmation (unconfirmed)
	b.n.log.Info("cluster: leading", "epoch", epoch)
	return nil
}

// Follow follows l. The cluster decided who leads: a divergent tail this
// node holds (a deposed leader's, never acknowledged in sync mode; in async
// mode, the writes a failover loses) is cut whatever max_discard says, or
// the member could never rejoin by itself.
func (r clusterReplica) Follow(l coord.Leader) error {
	b := r.b
	b.leading.Store(0)
	if err := b.probeLeader(l); err != nil {
		return err
	}
	if err := b.r.FollowForce(l.Repl); err != nil {
		return err
	}
	b.mu.Lock()
	b.leader = l.Repl
	b.mu.Unlock()
	b.n.log.Info("cluster: following", "leader", l.ID, "repl", l.Repl, "epoch", l.Epoch)
	return nil
}

func (r clusterReplica) SetSyncSet(ids []string) { r.b.r.SetSyncSet(ids) }

func (r clusterReplica) SyncDurable(ids []string, want int) uint64 {
	return r.b.r.SyncDurable(ids, want)
}

// StepDown stops taking writes; the node follows whoever coord names next.
func (r clusterReplica) StepDown() {
	r.b.leading.Store(0)
	r.b.n.log.Warn("cluster: stepped down; writes are refused until a leader is known")
}

// Stale reads (cluster.max_read_lag). A follower serves reads as a Redis
// replica does, possibly behind its leader; with max_read_lag set, one that
// has not been caught up for longer refuses them, so that stale reads
// become visible rather than silent.
//
// The lag is measured on the follower, with no clock shared with the
// leader: every few milliseconds trackReadLag samples, while the follower
// streams, the leader's last seq as last heard (records and heartbeats
// carry it). The follower is fresh as of the newest sample whose seq it has
// applied, and its lag is the time since. A follower whose link is down, or
// that leads no more (stepped down), or that never caught up since it
// started, ages from the last time it was fresh. The elected leader's lag is
// 0. The resolution is the sampling interval (at most 25ms).
//
// The reply is -MASTERDOWN, which a Redis replica answers when it refuses
// stale reads (replica-serve-stale-data no: "MASTERDOWN Link with MASTER is
// down ..."): clients already know it as "this replica's data is not to be
// trusted now" (go-redis retries it; redis-py and ioredis surface it as an
// error with that prefix), where a new word would be an unknown error.
// -TRYAGAIN would tell a cluster client to retry the same node, and
// -LOADING means a restart.

// minReadLag is the smallest max_read_lag: below it the sampling interval
// would decide, not the bound.
const minReadLag = 10 * time.Millisecond

// staleReadCommands read data but name no key (command.first == 0).
var staleReadCommands = map[string]bool{"scan": true, "keys": true, "dbsize": true, "randomkey": true}

// guardStaleRead makes a command that reads data refuse on a follower past
// max_read_lag. register calls it for every command; commands that write
// or read no data are left alone (a follower answers writes READONLY
// before they run).
func guardStaleRead(c *command) {
	if c.first > 0 || staleReadCommands[c.name] || c.name == "exec" {
		fenceRead(c) // a sync-mode leader's reads (readindex.go)
	}
	if c.write || (c.first == 0 && !staleReadCommands[c.name]) {
		return
	}
	run := c.run
	c.run = func(n *Node, cl *client, args [][]byte) {
		if b, ok := n.backend.(*clusterBackend); ok && b.maxReadLag > 0 {
			if msg := b.staleRead(); msg != "" {
				cl.fail(msg)
				return
			}
		}
		run(n, cl, args)
	}
}

// staleRead returns the error a read gets on this node now, "" if it may
// read.
func (b *clusterBackend) staleRead() string {
	lag := time.Duration(b.readLag.Load())
	if lag <= b.maxReadLag {
		return ""
	}
	return fmt.Sprintf("MASTERDOWN this replica has not been caught up with its leader for %.3fs, over cluster.max_read_lag %v: read from the leader (SENTINEL get-master-addr-by-name %s) or retry", lag.Seconds(), b.maxReadLag, b.n.cfg.Cluster.Name)
}

// trackReadLag samples the lag (see Stale reads above) until ctx ends.
func (b *clusterBackend) trackReadLag(ctx context.Context) {
	every := min(b.maxReadLag/4, 25*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	type sample struct {
		at   time.Time
		seen uint64 // the leader's last seq as heard at
	}
	const maxSamples = 4096
	var samples []sample // oldest first
	fresh := time.Now()  // a node that never caught up ages from its start
	for {
		now := time.Now()
		st := b.r.Status()
		switch {
		case b.leading.Load() != 0 && st.Role == replicate.Leader:
			fresh, samples = now, samples[:0]
		case st.Role == replicate.Follower && st.State == replicate.StateStreaming:
			if st.Applied >= st.LeaderLast {
				fresh, samples = now, samples[:0]
				break
			}
			if len(samples) == maxSamples {
				samples = samples[1:] // coarser, still conservative
			}
			samples = append(samples, sample{now, st.LeaderLast})
		}
		// The newest sample the follower has applied through.
		i := 0
		for i < len(samples) && samples[i].seen <= st.Applied {
			i++
		}
		if i > 0 {
			fresh = samples[i-1].at
			samples = samples[i:]
		}
		b.readLag.Store(int64(now.Sub(fresh)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
