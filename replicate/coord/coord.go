package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults of Config.
const (
	DefaultTTL         = 2 * time.Second
	DefaultSettle      = 500 * time.Millisecond
	DefaultReportEvery = 200 * time.Millisecond
	DefaultPriority    = 100
)

// formatVersion is the "v" field of every value this package writes.
const formatVersion = 1

// Config configures a Member.
type Config struct {
	// Client is the etcd client; the caller owns it and closes it after
	// the member's Run returned.
	Client *clientv3.Client
	// Cluster names the cluster: every key is under /logkv/<Cluster>/.
	Cluster string
	// Shard is the replica group, "0" when empty.
	Shard string
	// ID is the member's id, unique in the cluster (the node's replication
	// id).
	ID string
	// RESPAddr and ReplAddr are the addresses clients and followers use.
	RESPAddr, ReplAddr string
	// MoveAddr is where the member serves slot moves to other shards'
	// leaders (QUIC, mutual TLS; node/move.go), "" if it does not: the
	// leader key names it so that a move's target finds the source.
	MoveAddr string
	// Priority orders eligible members holding the same durable seq:
	// higher runs first (Redis's replica-priority, inverted as in
	// Sentinel's choice). 0 means DefaultPriority.
	Priority int
	// NeverLeader keeps the member from ever running for leader.
	NeverLeader bool
	// TTL is the lease's time to live, whole seconds (etcd's unit);
	// DefaultTTL when 0. etcd may grant more (its minimum is 1.5 election
	// timeouts); the member fences by what etcd granted.
	TTL time.Duration
	// Margin is how long before the lease could expire a leader stops
	// acknowledging, for clock drift; TTL/4 when 0.
	Margin time.Duration
	// Settle is how long a member waits after the leader key vanished,
	// for every member's progress to be reported, before it may run.
	Settle time.Duration
	// ReportEvery is how often the member reports its progress.
	ReportEvery time.Duration
	// SyncQuorum is replication's quorum in sync mode (followers that hold
	// each acknowledged write); 0 means async mode.
	SyncQuorum int
	// Logger receives the member's decisions; slog.Default() when nil.
	Logger *slog.Logger
}

func (c *Config) fill() error {
	if c.Client == nil {
		return errors.New("coord: Config.Client is nil: pass an etcd client (clientv3.New)")
	}
	if err := c.checkNames(); err != nil {
		return err
	}
	if c.Shard == "" {
		c.Shard = "0"
	}
	if c.Priority == 0 {
		c.Priority = DefaultPriority
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < time.Second || c.TTL%time.Second != 0 {
		return fmt.Errorf("coord: lease TTL %v must be whole seconds, at least 1s (etcd grants leases in seconds)", c.TTL)
	}
	if c.Margin == 0 {
		c.Margin = c.TTL / 4
	}
	if c.Margin < 0 || c.Margin >= c.TTL {
		return fmt.Errorf("coord: fencing margin %v must be in [0, TTL %v)", c.Margin, c.TTL)
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.ReportEvery == 0 {
		c.ReportEvery = DefaultReportEvery
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// checkNames refuses names that would make keys of another layout.
func (c *Config) checkNames() error {
	if c.Cluster == "" || strings.Contains(c.Cluster, "/") {
		return fmt.Errorf("coord: cluster name %q must be non-empty and hold no '/'", c.Cluster)
	}
	if c.ID == "" || strings.Contains(c.ID, "/") {
		return fmt.Errorf("coord: member id %q must be non-empty and hold no '/'", c.ID)
	}
	if strings.Contains(c.Shard, "/") {
		return fmt.Errorf("coord: shard %q must hold no '/'", c.Shard)
	}
	return nil
}

// Prefix returns the key prefix of cluster: /logkv/<cluster>/.
func Prefix(cluster string) string { return "/logkv/" + cluster + "/" }

func (c *Config) prefix() string      { return Prefix(c.Cluster) }
func (c *Config) memberKey() string   { return c.prefix() + "members/" + c.ID }
func (c *Config) shardPrefix() string { return c.prefix() + "shards/" + c.Shard + "/" }
func (c *Config) leaderKey() string   { return c.shardPrefix() + "leader" }
func (c *Config) routeKey() string    { return RouteKey(c.Cluster, c.Shard) }
func (c *Config) syncKey() string     { return c.shardPrefix() + "sync" }
func (c *Config) handoffKey() string  { return c.shardPrefix() + "handoff" }
func (c *Config) progressKey() string { return c.shardPrefix() + "progress/" + c.ID }

// MemberInfo is the value of members/<id>.
type MemberInfo struct {
	V           int    `json:"v"`
	ID          string `json:"id"`
	Shard       string `json:"shard"`
	RESP        string `json:"resp"`
	Repl        string `json:"repl"`
	Priority    int    `json:"priority"`
	NeverLeader bool   `json:"never_leader,omitempty"`
}

// Leader is the value of shards/<shard>/leader, with its epoch.
type Leader struct {
	V    int    `json:"v"`
	ID   string `json:"id"`
	RESP string `json:"resp"`
	Repl string `json:"repl"`
	// Move is Config.MoveAddr of the leader, absent if it has none.
	Move string `json:"move,omitempty"`
	// Epoch is the leader key's CreateRevision (not stored in the value).
	Epoch uint64 `json:"-"`
}

// Progress is the value of shards/<shard>/progress/<id>.
type Progress struct {
	V       int    `json:"v"`
	Durable uint64 `json:"durable"`
	// Epoch is the newest epoch (leader key CreateRevision) the member's
	// log holds (Replica.Progress).
	Epoch uint64 `json:"epoch"`
	// After is the epoch of the newest leadership the member had seen end
	// before it sampled Durable: the sync key's Epoch, read in the same
	// etcd revision as the leader key's absence (0: none seen). A
	// sync-mode candidate counts only progress with After at least the
	// sync key's Epoch, so a report sampled before the last leader's last
	// acknowledgement (a slow etcd write landing late) never hides a
	// write a member holds (see Eligible).
	After uint64 `json:"after,omitempty"`
}

// Ahead reports whether a log at p holds more than one at q, as Raft
// compares logs: the newer epoch first, then the higher durable seq.
//
// Why the epoch first: a member's log is a prefix of the log of the leader
// of its newest epoch, and that leader held every write acknowledged before
// it was elected, so a log of a newer epoch holds every acknowledged write
// a log of an older one holds, whatever their seqs. A deposed leader's
// divergent tail (records no quorum took, or that its successor's
// followers cut) can make its seq the highest; by seq alone it would win
// and the writes its successor acknowledged would be cut instead.
func (p Progress) Ahead(q Progress) bool {
	if p.Epoch != q.Epoch {
		return p.Epoch > q.Epoch
	}
	return p.Durable > q.Durable
}

// SyncSet is the value of shards/<shard>/sync: the members a sync-mode
// leader may count towards its quorum, and the quorum (leader included).
type SyncSet struct {
	V      int      `json:"v"`
	Set    []string `json:"set"`
	Quorum int      `json:"quorum"`
	// Epoch is the leadership that recorded it. Every leader records the
	// set before it takes a write, so no leadership newer than Epoch has
	// acknowledged anything (Progress.After; 0 in keys written before
	// this field, which Eligible then does not check).
	Epoch uint64 `json:"epoch,omitempty"`
}

// Handoff is the value of shards/<shard>/handoff: while it exists (it is
// bound to the leader's lease), only Target may take the leader key.
type Handoff struct {
	V      int    `json:"v"`
	Target string `json:"target"`
}

// Replica is what a Member drives: the local replicated node.
type Replica interface {
	// Progress returns how far the local log is durable, and the newest
	// epoch it holds: the epoch (leader key CreateRevision) of its last
	// record, or of its leadership if it leads, 0 for a history no
	// election made. Eligible compares logs by both (Progress.Ahead).
	Progress() (durable, epoch uint64)
	// Lead promotes the local node to leader of epoch (newer than any it
	// has seen). If it fails, the member resigns.
	Lead(epoch uint64) error
	// SetSyncSet restricts the followers a sync-mode quorum counts to ids
	// (replicate.Replica.SetSyncSet). The member calls it only in sync mode,
	// and only with sets the sync key holds (syncset.go).
	SetSyncSet(ids []string)
	// SyncDurable returns the highest seq durable on the local leader and
	// on at least want of the followers ids (replicate.Replica.SyncDurable).
	SyncDurable(ids []string, want int) uint64
	// Follow makes the local node follow l.
	Follow(l Leader) error
	// StepDown stops the local node taking writes: the leadership it held
	// is gone. It follows the next leader Follow names.
	StepDown()
}

// Member is one node's presence in the cluster. Its methods are safe for
// concurrent use.
type Member struct {
	cfg Config
	cli *clientv3.Client
	log *slog.Logger

	mu      sync.Mutex
	lease   clientv3.LeaseID
	leader  *Leader // the leader as last seen
	changed chan struct{}

	// fence is the epoch led, the lease's fencing deadline and a
	// handoff's pause: what Valid, ValidFor, Leading and LeadingNow read,
	// which every command on a cluster member asks (some several times):
	// one atomic load, no lock. It is the only copy, changed only by
	// setFenceLocked under mu, so no change can be made and not
	// published (nil: the zero fenceState).
	fence atomic.Pointer[fenceState]

	// syncMu serializes this member's changes to the synchronous set.
	syncMu sync.Mutex

	// after is Progress.After for the next report; kick makes report
	// publish at once (the leader key just vanished).
	after atomic.Uint64
	kick  chan struct{}

	ran atomic.Bool
}

// New returns a member; Run brings it into the cluster.
func New(cfg Config) (*Member, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	return &Member{cfg: cfg, cli: cfg.Client, log: cfg.Logger.With("component", "coord", "member", cfg.ID), changed: make(chan struct{}), kick: make(chan struct{}, 1)}, nil
}

// Valid reports whether the member leads and its lease is certainly alive
// by its own clock: a leader acknowledges writes only while Valid. It reads
// the published fence, no lock: every write a cluster member acknowledges
// asks it.
func (m *Member) Valid() bool {
	f := m.fence.Load()
	return f != nil && f.leading != 0 && !f.paused && time.Now().Before(f.deadline)
}

// fenceState is what ValidFor reads: immutable once published.
type fenceState struct {
	leading  uint64    // epoch this member leads, 0 if none
	deadline time.Time // fencing deadline of the lease (monotonic)
	// paused is set while leadership is handed to another member: the
	// leader acknowledges nothing meanwhile (handoff.go).
	paused bool
}

// fenceNow returns the fence as last published.
func (m *Member) fenceNow() fenceState {
	if f := m.fence.Load(); f != nil {
		return *f
	}
	return fenceState{}
}

// setFenceLocked applies change to a copy of the fence and publishes it;
// m.mu is held, which serializes changes (readers take no lock).
func (m *Member) setFenceLocked(change func(f *fenceState)) {
	f := m.fenceNow()
	change(&f)
	m.fence.Store(&f)
}

// ValidFor reports whether the member leads epoch (not 0) and its lease is
// certainly alive by its own clock: Valid for that epoch, without a lock.
// The same epoch at two moments with ValidFor true at the second means the
// member led it throughout (epochs only grow, and a lost lease is a new
// epoch), which is what a linearizable read on the leader checks after it
// looked at the data.
func (m *Member) ValidFor(epoch uint64) bool {
	f := m.fence.Load()
	return f != nil && epoch != 0 && f.leading == epoch && !f.paused && time.Now().Before(f.deadline)
}

// LeadingNow is Leading (both read the fence without a lock).
func (m *Member) LeadingNow() uint64 { return m.Leading() }

// Deadline returns the fencing deadline of the member's lease: the time,
// by the member's monotonic clock, until which it may act as leader.
func (m *Member) Deadline() time.Time {
	return m.fenceNow().deadline
}

// Leading returns the epoch this member leads, or 0. It reads the
// published fence, no lock: a cluster member asks it several times a
// command (IsFollower, the write path's fencing), where a mutex showed in
// profiles (docs/cluster-scale.md, "One shard's cost").
func (m *Member) Leading() uint64 {
	if f := m.fence.Load(); f != nil {
		return f.leading
	}
	return 0
}

// Leader returns the shard's leader as last seen, or nil if none is known.
func (m *Member) Leader() *Leader {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader == nil {
		return nil
	}
	l := *m.leader
	return &l
}

// Changed returns a channel closed at the next change of Leader or Leading.
func (m *Member) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *Member) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Config returns the member's configuration, defaults filled.
func (m *Member) Config() Config { return m.cfg }

// errLeaseLost ends a session: the member's lease is gone from etcd.
var errLeaseLost = errors.New("coord: lease lost")

// Run keeps the member in the cluster until ctx ends: it registers, renews
// its lease, reports progress, follows the leader and runs for leader when
// the take-over rule lets it. When the lease is lost (etcd unreachable for
// longer than the TTL), it steps down and starts over with a new lease. On
// return it revokes its lease (best effort), which hands leadership on at
// once. Run may be called once.
func (m *Member) Run(ctx context.Context, r Replica) error {
	if !m.ran.CompareAndSwap(false, true) {
		return errors.New("coord: Run called twice")
	}
	defer m.revoke()
	for {
		err := m.session(ctx, r)
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("coordination session ended; starting another", "err", err)
		m.mu.Lock()
		wasLeading := m.fenceNow().leading != 0
		m.setFenceLocked(func(f *fenceState) { f.leading, f.deadline = 0, time.Time{} })
		// Whom etcd names is unknown until the next session reads it.
		m.leader = nil
		m.notifyLocked()
		m.mu.Unlock()
		if wasLeading {
			r.StepDown()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(m.cfg.ReportEvery): // back off before asking etcd again
		}
	}
}

func (m *Member) revoke() {
	m.mu.Lock()
	lease := m.lease
	m.lease = 0
	m.setFenceLocked(func(f *fenceState) { f.leading, f.deadline = 0, time.Time{} })
	m.mu.Unlock()
	if lease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m.cli.Revoke(ctx, lease)
}

// session is one lease's life: grant, register, then keep alive, report and
// elect until the lease is lost or ctx ends.
func (m *Member) session(ctx context.Context, r Replica) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t0 := time.Now()
	g, err := m.cli.Grant(ctx, int64(m.cfg.TTL/time.Second))
	if err != nil {
		return fmt.Errorf("coord: grant lease: %w", err)
	}
	ttl := time.Duration(g.TTL) * time.Second
	m.mu.Lock()
	m.lease = g.ID
	m.setFenceLocked(func(f *fenceState) { f.deadline = t0.Add(ttl - m.cfg.Margin) })
	m.mu.Unlock()
	info := MemberInfo{V: formatVersion, ID: m.cfg.ID, Shard: m.cfg.Shard, RESP: m.cfg.RESPAddr, Repl: m.cfg.ReplAddr,
		Priority: m.cfg.Priority, NeverLeader: m.cfg.NeverLeader}
	if _, err := m.cli.Put(ctx, m.cfg.memberKey(), mustJSON(info), clientv3.WithLease(g.ID)); err != nil {
		return fmt.Errorf("coord: register member: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	wg.Go(func() { m.keepAlive(ctx, cancel, g.ID) })
	wg.Go(func() { m.report(ctx, g.ID, r) })
	wg.Go(func() { m.watchHandoff(ctx, r) })
	if m.cfg.SyncQuorum > 0 {
		wg.Go(func() { m.maintainSync(ctx, r) })
	}
	err = m.elect(ctx, g.ID, r)
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

// keepAlive renews the lease every TTL/3 over a renewer's stream, and
// moves the fencing deadline to t0 + TTL - margin, t0 being when the
// renewal etcd answered was sent. A renewal unanswered for TTL/6 is not
// abandoned but doubled on another stream (renewer: its etcd member may
// hang), at most maxStreams waiting at once. It ends the session when etcd
// says the lease is gone, or when no renewal succeeded for a whole TTL.
func (m *Member) keepAlive(ctx context.Context, end context.CancelCauseFunc, id clientv3.LeaseID) {
	every := m.cfg.TTL / 3
	retry := every / 2
	t := time.NewTicker(retry)
	defer t.Stop()
	r := newRenewer(m.cli, id)
	defer r.close()
	// lastSent is when the newest renewal was sent, lastOK when the
	// newest one answered was; the grant counts as both. expires is when
	// the lease ends by the renewals answered (deadline + margin).
	lastSent := time.Now()
	lastOK := lastSent
	expires := m.Deadline().Add(m.cfg.Margin)
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-r.answers:
			sent, ttl, err, ok := r.take(a, time.Now())
			switch {
			case !ok:
				// A stream closed since: its request can no longer help.
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				end(errLeaseLost)
				return
			case err != nil:
				// This stream failed; the deadline stays, and passes
				// unless another renewal is answered.
				m.log.Warn("lease renewal failed", "err", err, "fencing_deadline_in", time.Until(m.Deadline()))
			case ttl <= 0:
				end(errLeaseLost)
				return
			default:
				lastOK = later(lastOK, sent)
				expires = later(expires, sent.Add(time.Duration(ttl)*time.Second))
				m.mu.Lock()
				if d := sent.Add(time.Duration(ttl)*time.Second - m.cfg.Margin); d.After(m.fenceNow().deadline) {
					m.setFenceLocked(func(f *fenceState) { f.deadline = d })
				}
				m.mu.Unlock()
			}
		case <-t.C:
			now := time.Now()
			if now.After(expires) {
				// etcd unreachable for a whole TTL since the last renewal
				// that succeeded was sent: etcd has let the lease go unless
				// a renewal whose answer was lost reached it, and the
				// member cannot tell. It steps down now rather than when
				// etcd is back: its SENTINEL answers then name no leader,
				// so that clients ask the members that know the next one.
				m.log.Warn("lease renewal failed for a whole TTL; stepping down until etcd answers")
				end(errLeaseLost)
				return
			}
			// A request whose answer would give a deadline already past
			// is of no use: its stream is closed, freeing its place.
			r.expire(now.Add(m.cfg.Margin - m.cfg.TTL))
			// Ticks come every retry; the halves absorb a tick's jitter.
			due := now.Sub(lastSent) >= every-retry/2
			stuck := lastOK.Before(lastSent) && now.Sub(lastSent) >= retry/2
			if (due || stuck) && r.send(ctx, now) {
				lastSent = now
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// report publishes the local progress whenever it changed, bound to the
// lease.
func (m *Member) report(ctx context.Context, id clientv3.LeaseID, r Replica) {
	var last Progress
	first := true
	t := time.NewTicker(m.cfg.ReportEvery)
	defer t.Stop()
	for {
		// after before Progress: the sample must postdate the absence
		// that after records (sawLeaderGone).
		after := m.after.Load()
		durable, epoch := r.Progress()
		p := Progress{V: formatVersion, Durable: durable, Epoch: epoch, After: after}
		if first || p != last {
			if _, err := m.cli.Put(ctx, m.cfg.progressKey(), mustJSON(p), clientv3.WithLease(id)); err == nil {
				last, first = p, false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick:
		}
	}
}

// sawLeaderGone notes that the leader key was absent in an etcd revision
// whose sync key named epoch: every leadership up to epoch had ended, and
// with it every acknowledgement of theirs, so progress sampled from now on
// holds every write this member acked to them. report publishes it at once.
func (m *Member) sawLeaderGone(epoch uint64) {
	for {
		cur := m.after.Load()
		if epoch <= cur {
			return
		}
		if m.after.CompareAndSwap(cur, epoch) {
			break
		}
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// elect follows the leader key: follows its holder, and when it is gone
// runs if Eligible.
func (m *Member) elect(ctx context.Context, lease clientv3.LeaseID, r Replica) error {
	var following *Leader
	for ctx.Err() == nil {
		// The leader and sync keys in one revision: the sync key's epoch
		// where the leader key is absent is what progress reports vouch
		// for (sawLeaderGone).
		tresp, err := m.cli.Txn(ctx).Then(clientv3.OpGet(m.cfg.leaderKey()), clientv3.OpGet(m.cfg.syncKey())).Commit()
		var resp *clientv3.GetResponse
		if err == nil {
			resp = (*clientv3.GetResponse)(tresp.Responses[0].GetResponseRange())
			resp.Header = tresp.Header
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			m.log.Warn("read leader key", "err", err)
			m.pause(ctx, m.cfg.ReportEvery)
			continue
		}
		rev := resp.Header.Revision
		if len(resp.Kvs) == 0 {
			var s SyncSet
			if kvs := tresp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 && json.Unmarshal(kvs[0].Value, &s) == nil {
				m.sawLeaderGone(s.Epoch)
			}
			m.setLeader(nil, 0)
			if m.Leading() != 0 {
				// Our key is gone (resigned, or deleted by an operator).
				m.stepDown(ctx, r)
			}
			if err := m.tryLead(ctx, lease, r); err != nil {
				m.log.Warn("election round", "err", err)
			}
			m.pause(ctx, m.cfg.Settle/5) // look again soon: someone else may have won
			continue
		}
		kv := resp.Kvs[0]
		var l Leader
		if err := json.Unmarshal(kv.Value, &l); err != nil {
			return fmt.Errorf("coord: leader key %s holds %q, not a leader record: %w; delete it with etcdctl to elect again", m.cfg.leaderKey(), kv.Value, err)
		}
		l.Epoch = uint64(kv.CreateRevision)
		ours := l.ID == m.cfg.ID && clientv3.LeaseID(kv.Lease) == lease
		if !ours && m.Leading() != 0 {
			// Our key was deleted and another member won before this
			// loop looked (or an operator overwrote it).
			m.stepDown(ctx, r)
		}
		if ours && m.Leading() != l.Epoch {
			m.lead(ctx, l, r)
		}
		if !ours && l.ID != m.cfg.ID && (following == nil || *following != l) {
			if err := r.Follow(l); err != nil {
				m.log.Warn("follow the leader", "leader", l.ID, "repl", l.Repl, "err", err)
				m.pause(ctx, m.cfg.ReportEvery)
				continue // try again
			}
			following = &l
		}
		m.setLeader(&l, 0)
		// Wait for the key to change.
		wctx, wcancel := context.WithCancel(ctx)
		wch := m.cli.Watch(clientv3.WithRequireLeader(wctx), m.cfg.leaderKey(), clientv3.WithRev(rev+1))
		for ev := range wch {
			if ev.Err() != nil || len(ev.Events) > 0 {
				break
			}
		}
		wcancel()
	}
	return ctx.Err()
}

func (m *Member) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (m *Member) setLeader(l *Leader, leading uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l == nil && m.leader == nil {
		return
	}
	if l != nil && m.leader != nil && *l == *m.leader {
		return
	}
	m.leader = l
	m.notifyLocked()
}

// stepDown ends this member's leadership and deletes the route key its
// election wrote (forgetRoute), which lives on with the lease otherwise.
func (m *Member) stepDown(ctx context.Context, r Replica) {
	m.mu.Lock()
	epoch := m.fenceNow().leading
	m.setFenceLocked(func(f *fenceState) { f.leading, f.paused = 0, false })
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Warn("stepping down: the leader key is no longer ours")
	r.StepDown()
	if epoch != 0 {
		m.forgetRoute(ctx, epoch)
	}
}

// releaseOps delete the leader key and its route key, in the transaction
// (guarded by the leader key's CreateRevision) that gives leadership up:
// the route key never names a leader whose key is gone, except one deleted
// by hand (forgetRoute).
func (c *Config) releaseOps() []clientv3.Op {
	return []clientv3.Op{clientv3.OpDelete(c.leaderKey()), clientv3.OpDelete(c.routeKey())}
}

// resign gives up the leadership of epoch that this member won but cannot
// take: it deletes the leader key and the route key if the key is still
// epoch's. If etcd cannot be reached, the keys stay: the next election
// round finds the leader key still its own and tries the promotion again,
// or they lapse with the lease once the session ends.
func (m *Member) resign(ctx context.Context, epoch uint64) {
	_, err := m.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(m.cfg.leaderKey()), "=", int64(epoch))).
		Then(m.cfg.releaseOps()...).Commit()
	if err != nil && ctx.Err() == nil {
		m.log.Warn("resigning: deleting the leader key failed", "key", m.cfg.leaderKey(), "epoch", epoch, "err", err)
	}
}

// forgetRoute deletes the route key of epoch, which a leader that finds its
// leader key gone still holds when the key was deleted by hand (etcdctl):
// its lease lives on, and so would the route key, sending clients to it.
// It deletes only the key epoch's election wrote (ModRevision = epoch), so
// it can be retried: until it succeeds, or the session ends (the lease,
// and the key with it, then goes: revoked, or lapsed). The election loop
// waits for it, so no later election's route key is ever in doubt.
func (m *Member) forgetRoute(ctx context.Context, epoch uint64) {
	wait := 50 * time.Millisecond
	for {
		_, err := m.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(m.cfg.routeKey()), "=", int64(epoch))).
			Then(clientv3.OpDelete(m.cfg.routeKey())).Commit()
		if err == nil || ctx.Err() != nil {
			return
		}
		m.log.Warn("deleting the route key of a leadership that ended; retrying", "key", m.cfg.routeKey(), "err", err, "retry_in", wait)
		m.pause(ctx, wait)
		wait = min(2*wait, m.cfg.TTL)
	}
}

// lead promotes the replica to l's epoch; if that fails, it resigns.
func (m *Member) lead(ctx context.Context, l Leader, r Replica) {
	if err := r.Lead(l.Epoch); err != nil {
		m.log.Error("promotion failed; resigning", "epoch", l.Epoch, "err", err)
		m.resign(ctx, l.Epoch)
		return
	}
	m.mu.Lock()
	m.setFenceLocked(func(f *fenceState) { f.leading, f.paused = l.Epoch, false })
	m.leader = &l
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Info("leading", "epoch", l.Epoch)
}

// tryLead waits Settle, checks the take-over rule and, if it allows,
// creates the leader key in a transaction on its CreateRevision being 0.
func (m *Member) tryLead(ctx context.Context, lease clientv3.LeaseID, r Replica) error {
	if m.cfg.NeverLeader {
		return nil
	}
	m.pause(ctx, m.cfg.Settle)
	ok, why, err := m.Eligible(ctx, r)
	if err != nil || !ok {
		if why != "" {
			m.log.Info("not running for leader", "why", why)
		}
		return err
	}
	if time.Now().After(m.Deadline()) {
		return errors.New("coord: own lease not known alive; not running")
	}
	val := mustJSON(Leader{V: formatVersion, ID: m.cfg.ID, RESP: m.cfg.RESPAddr, Repl: m.cfg.ReplAddr, Move: m.cfg.MoveAddr})
	txn, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(m.cfg.leaderKey()), "=", 0)).
		Then(clientv3.OpPut(m.cfg.leaderKey(), val, clientv3.WithLease(lease)),
			// The route key, in the same revision and on the same lease:
			// routers learn the leader from it (routing.go).
			clientv3.OpPut(m.cfg.routeKey(), val, clientv3.WithLease(lease))).
		Commit()
	if err != nil || !txn.Succeeded {
		return err
	}
	// The Put's revision is the key's CreateRevision: the new epoch.
	epoch := uint64(txn.Header.Revision)
	if m.cfg.SyncQuorum > 0 {
		if err := m.growSync(ctx, epoch, r); err != nil {
			m.log.Error("recording the synchronous set failed; resigning", "err", err)
			m.resign(ctx, epoch)
			return err
		}
	}
	m.log.Info("won the election", "epoch", epoch)
	// A handoff that named this member is done.
	m.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(m.cfg.handoffKey()), "=", mustJSON(Handoff{V: formatVersion, Target: m.cfg.ID}))).
		Then(clientv3.OpDelete(m.cfg.handoffKey())).Commit()
	m.lead(ctx, Leader{V: formatVersion, ID: m.cfg.ID, RESP: m.cfg.RESPAddr, Repl: m.cfg.ReplAddr, Move: m.cfg.MoveAddr, Epoch: epoch}, r)
	return nil
}

// Eligible applies the take-over rule of docs/cluster.md to this member:
// whether it may run for leader now, and if not, why.
func (m *Member) Eligible(ctx context.Context, r Replica) (bool, string, error) {
	if m.cfg.NeverLeader {
		return false, "never_leader is set", nil
	}
	st, err := ReadShard(ctx, m.cli, m.cfg.Cluster, m.cfg.Shard)
	if err != nil {
		return false, "", err
	}
	durable, epoch := r.Progress()
	// Sampled after ReadShard: as fresh as the sync key it read.
	var after uint64
	if st.Sync != nil {
		after = st.Sync.Epoch
	}
	st.Progress[m.cfg.ID] = Progress{V: formatVersion, Durable: durable, Epoch: epoch, After: after}
	if st.Drained[m.cfg.ID] {
		return false, "drained (kvnode cluster undrain lets it lead again)", nil
	}
	if st.Handoff != nil && st.Handoff.Target != m.cfg.ID {
		return false, "leadership is being handed to " + st.Handoff.Target, nil
	}
	type cand struct {
		id       string
		progress Progress
		priority int
	}
	var cands []cand
	own := st.Progress[m.cfg.ID]
	if st.Sync != nil {
		inSet := 0
		mine := false
		stale := 0
		var maxSeen Progress
		for _, id := range st.Sync.Set {
			p, ok := st.Progress[id]
			if ok && p.After < st.Sync.Epoch {
				// Sampled before the last leadership ended: it may
				// predate writes this member acked (Progress.After).
				ok = false
				stale++
			}
			if ok {
				inSet++
				if p.Ahead(maxSeen) {
					maxSeen = p
				}
				mine = mine || id == m.cfg.ID
			}
		}
		need := len(st.Sync.Set) - st.Sync.Quorum + 1
		if !mine {
			return false, "not in the synchronous set, which may hold acknowledged writes this member lacks", nil
		}
		if inSet < need {
			why := fmt.Sprintf("sync mode: progress of %d of the synchronous set's %d members seen, %d needed to be sure to hold every acknowledged write", inSet, len(st.Sync.Set), need)
			if stale > 0 {
				why += fmt.Sprintf(" (%d more reported only before leadership %d ended: waiting for their next report)", stale, st.Sync.Epoch)
			}
			return false, why, nil
		}
		if maxSeen.Ahead(own) {
			return false, fmt.Sprintf("sync mode: the log (epoch %d, durable seq %d) is behind another member's of the synchronous set (epoch %d, durable seq %d)", own.Epoch, own.Durable, maxSeen.Epoch, maxSeen.Durable), nil
		}
	}
	if st.Handoff != nil {
		return true, "", nil // the leader waited for this member to catch up
	}
	for id, p := range st.Progress {
		mi, ok := st.Members[id]
		if id == m.cfg.ID {
			mi, ok = MemberInfo{ID: id, Priority: m.cfg.Priority}, true
		}
		if !ok || mi.NeverLeader || st.Drained[id] {
			continue
		}
		cands = append(cands, cand{id, p, mi.Priority})
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.progress.Ahead(b.progress) || b.progress.Ahead(a.progress) {
			return a.progress.Ahead(b.progress)
		}
		if a.priority != b.priority {
			return a.priority > b.priority
		}
		return a.id < b.id
	})
	if best := cands[0]; best.id != m.cfg.ID {
		return false, fmt.Sprintf("%s is a better candidate (epoch %d, durable seq %d, priority %d; ours %d, %d, %d)", best.id, best.progress.Epoch, best.progress.Durable, best.priority, own.Epoch, own.Durable, m.cfg.Priority), nil
	}
	return true, "", nil
}

// Shard is a shard's state as read from etcd in one revision.
type Shard struct {
	// Revision is the etcd revision read.
	Revision int64
	// Leader is nil when the shard has none.
	Leader *Leader
	// Members are the live members of the shard, by id.
	Members map[string]MemberInfo
	// Progress holds the live progress reports, by member id.
	Progress map[string]Progress
	// Sync is the recorded synchronous set, nil in async mode.
	Sync *SyncSet
	// SyncRevision is the sync key's ModRevision, 0 without one.
	SyncRevision int64
	// Handoff is a leadership hand-off in progress, or nil.
	Handoff *Handoff
	// Drained holds the members marked drained (drain.go), live or not.
	Drained map[string]bool
}

// ReadShard reads a shard's keys in one transaction (one revision).
func ReadShard(ctx context.Context, cli *clientv3.Client, cluster, shard string) (*Shard, error) {
	c := Config{Cluster: cluster, Shard: shard}
	if shard == "" {
		c.Shard = "0"
	}
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(c.prefix()+"members/", clientv3.WithPrefix()),
		clientv3.OpGet(c.shardPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("coord: read shard %s of cluster %s: %w", c.Shard, cluster, err)
	}
	st := &Shard{Revision: resp.Header.Revision, Members: map[string]MemberInfo{}, Progress: map[string]Progress{}, Drained: map[string]bool{}}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var mi MemberInfo
		if json.Unmarshal(kv.Value, &mi) == nil && mi.Shard == c.Shard {
			st.Members[mi.ID] = mi
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		key := string(kv.Key)
		switch {
		case key == c.leaderKey():
			var l Leader
			if json.Unmarshal(kv.Value, &l) == nil {
				l.Epoch = uint64(kv.CreateRevision)
				st.Leader = &l
			}
		case key == c.syncKey():
			var s SyncSet
			if json.Unmarshal(kv.Value, &s) == nil {
				st.Sync, st.SyncRevision = &s, kv.ModRevision
			}
		case key == c.handoffKey():
			var h Handoff
			if json.Unmarshal(kv.Value, &h) == nil {
				st.Handoff = &h
			}
		case strings.HasPrefix(key, c.drainedPrefix()):
			st.Drained[strings.TrimPrefix(key, c.drainedPrefix())] = true
		case strings.HasPrefix(key, c.shardPrefix()+"progress/"):
			var p Progress
			if json.Unmarshal(kv.Value, &p) == nil {
				st.Progress[strings.TrimPrefix(key, c.shardPrefix()+"progress/")] = p
			}
		}
	}
	return st, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // our own fixed structs always marshal
	}
	return string(b)
}
