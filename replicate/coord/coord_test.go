package coord_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logkv/logkv/replicate/coord"
	"github.com/logkv/logkv/replicate/coord/etcdtest"
)

// replica stands in for a replicate.Replica: it records what the member told
// it and reports the progress the test sets.
type replica struct {
	mu      sync.Mutex
	durable uint64
	epoch   uint64
	leadAt  time.Time // when Lead was last called
	leading uint64
	leader  string // the id followed
	// syncDurable is what SyncDurable answers; set it with setSyncDurable.
	syncDurable uint64
	// onSyncSet, if set, checks each SetSyncSet; syncSets records them.
	onSyncSet func(ids []string)
	syncSets  [][]string
	// hold, while set and open, makes Progress wait: a member whose
	// reports are slow to reach etcd.
	hold chan struct{}
}

func (r *replica) SetSyncSet(ids []string) {
	r.mu.Lock()
	check := r.onSyncSet
	r.syncSets = append(r.syncSets, slices.Clone(ids))
	r.mu.Unlock()
	if check != nil {
		check(ids)
	}
}

func (r *replica) SyncDurable([]string, int) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.syncDurable
}

func (r *replica) lastSyncSet() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.syncSets) == 0 {
		return nil
	}
	return r.syncSets[len(r.syncSets)-1]
}

func (r *replica) Progress() (uint64, uint64) {
	r.mu.Lock()
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		<-hold
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.durable, r.epoch
}

func (r *replica) Lead(epoch uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leading, r.epoch, r.leadAt, r.leader = epoch, epoch, time.Now(), ""
	return nil
}

func (r *replica) Follow(l coord.Leader) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leading, r.leader = 0, l.ID
	return nil
}

func (r *replica) StepDown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leading = 0
}

func (r *replica) state() (leading uint64, leadAt time.Time, leader string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leading, r.leadAt, r.leader
}

type member struct {
	id  string
	m   *coord.Member
	r   *replica
	cli *clientv3.Client
	end context.CancelFunc
	ran chan struct{}
}

// stop cancels the member's Run and waits for it: a clean leave, which
// revokes the lease.
func (m *member) stop() { m.end(); <-m.ran }

// kill closes the member's etcd client: its lease is no longer renewed
// and expires after the TTL, as when the process dies.
func (m *member) kill() { m.cli.Close() }

func startMember(t *testing.T, srv *etcdtest.Server, cfg coord.Config, durable uint64) *member {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	cfg.Client = cli
	if cfg.Cluster == "" {
		cfg.Cluster = "test"
	}
	if cfg.TTL == 0 {
		cfg.TTL = time.Second
	}
	if cfg.Settle == 0 {
		cfg.Settle = 200 * time.Millisecond
	}
	if cfg.ReportEvery == 0 {
		cfg.ReportEvery = 50 * time.Millisecond
	}
	cfg.RESPAddr, cfg.ReplAddr = "127.0.0.1:1"+cfg.ID, "127.0.0.1:2"+cfg.ID
	m, err := coord.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	mb := &member{id: cfg.ID, m: m, r: &replica{durable: durable}, cli: cli, end: cancel, ran: make(chan struct{})}
	go func() {
		defer close(mb.ran)
		m.Run(ctx, mb.r)
	}()
	t.Cleanup(func() {
		cancel()
		<-mb.ran
		cli.Close()
	})
	return mb
}

// waitLeader polls until exactly one of ms leads and every other follows
// it, and returns the leader.
func waitLeader(t *testing.T, within time.Duration, ms ...*member) *member {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var leaders []*member
		for _, m := range ms {
			if l, _, _ := m.r.state(); l != 0 {
				leaders = append(leaders, m)
			}
		}
		require.LessOrEqual(t, len(leaders), 1, "two members lead at once")
		if len(leaders) == 1 {
			ok := true
			for _, m := range ms {
				if _, _, f := m.r.state(); m != leaders[0] && f != leaders[0].id {
					ok = false
				}
			}
			if ok {
				return leaders[0]
			}
		}
		if time.Now().After(deadline) {
			var st []string
			for _, m := range ms {
				l, _, f := m.r.state()
				st = append(st, fmt.Sprintf("%s: leading %d following %q", m.id, l, f))
			}
			t.Fatalf("no single leader followed by all within %v: %v", within, st)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func TestFailoverAfterLeaseExpiry(t *testing.T) {
	srv := etcdtest.Start(t)
	a := startMember(t, srv, coord.Config{ID: "a"}, 10)
	leader := waitLeader(t, 10*time.Second, a)
	require.Equal(t, a, leader)
	b := startMember(t, srv, coord.Config{ID: "b"}, 10)
	c := startMember(t, srv, coord.Config{ID: "c"}, 10)
	waitLeader(t, 10*time.Second, a, b, c)
	require.True(t, a.m.Valid(), "a leader with a renewed lease is valid")
	epochA := a.m.Leading()
	require.Equal(t, epochA, a.m.LeadingNow())
	require.True(t, a.m.ValidFor(epochA), "ValidFor is Valid for the epoch led")
	require.False(t, a.m.ValidFor(epochA+1), "and for no other")
	require.False(t, a.m.ValidFor(0))

	killed := time.Now()
	fence := a.m.Deadline()
	a.kill()
	// The fencing deadline is at most TTL - margin after the last renewal
	// was sent, which was before the kill.
	require.False(t, fence.After(killed.Add(time.Second-time.Second/4)), "fencing deadline %v past kill + TTL - margin", fence.Sub(killed))
	next := waitLeader(t, 10*time.Second, b, c)
	leadAt := func() time.Time { _, at, _ := next.r.state(); return at }()
	require.True(t, leadAt.After(fence), "the new leader was elected %v before the old one's fencing deadline", fence.Sub(leadAt))
	require.False(t, a.m.Valid(), "the deposed leader's lease is still valid by its clock")
	require.False(t, a.m.ValidFor(epochA), "the deposed leader's lease is still valid by its clock (lock-free view)")
	require.True(t, next.m.ValidFor(next.m.Leading()))
	require.Greater(t, next.m.Leading(), epochA, "epochs grow")
	t.Logf("failover: %v after the kill (TTL 1s, settle 200ms)", leadAt.Sub(killed))
}

func TestHighestDurableSeqWins(t *testing.T) {
	srv := etcdtest.Start(t)
	a := startMember(t, srv, coord.Config{ID: "a"}, 100)
	waitLeader(t, 10*time.Second, a)
	// c has the higher priority, b the more durable log: the log wins.
	b := startMember(t, srv, coord.Config{ID: "b"}, 90)
	c := startMember(t, srv, coord.Config{ID: "c", Priority: 1000}, 50)
	waitLeader(t, 10*time.Second, a, b, c)
	a.kill()
	require.Equal(t, "b", waitLeader(t, 10*time.Second, b, c).id)
}

func TestPriorityBreaksTies(t *testing.T) {
	srv := etcdtest.Start(t)
	a := startMember(t, srv, coord.Config{ID: "a"}, 100)
	waitLeader(t, 10*time.Second, a)
	b := startMember(t, srv, coord.Config{ID: "b"}, 90)
	c := startMember(t, srv, coord.Config{ID: "c", Priority: 1000}, 90)
	waitLeader(t, 10*time.Second, a, b, c)
	a.stop() // a clean leave revokes the lease: no TTL to wait
	require.Equal(t, "c", waitLeader(t, 10*time.Second, b, c).id)
}

func TestNeverLeaderNeverWins(t *testing.T) {
	srv := etcdtest.Start(t)
	a := startMember(t, srv, coord.Config{ID: "a"}, 100)
	waitLeader(t, 10*time.Second, a)
	// b holds the most durable log but may never lead: c, behind, wins.
	b := startMember(t, srv, coord.Config{ID: "b", NeverLeader: true}, 100)
	c := startMember(t, srv, coord.Config{ID: "c"}, 10)
	waitLeader(t, 10*time.Second, a, b, c)
	a.kill()
	require.Equal(t, "c", waitLeader(t, 10*time.Second, b, c).id)
	ok, why, err := b.m.Eligible(context.Background(), b.r)
	require.NoError(t, err)
	require.False(t, ok)
	require.Contains(t, why, "never_leader")
}

func TestSyncRuleNeedsEnoughOfTheSet(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	// The leader recorded S = {a, b, c} with quorum 2 (leader + 1): an
	// acknowledged write is on at least 2 of them, so a candidate must see
	// 3-2+1 = 2 of them.
	_, err := cli.Put(ctx, coord.Prefix("test")+"shards/0/sync", `{"v":1,"set":["a","b","c"],"quorum":2}`)
	require.NoError(t, err)
	b := startMember(t, srv, coord.Config{ID: "b", SyncQuorum: 1, NeverLeader: false}, 5)
	// b alone sees only itself: it must not run.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := coord.ReadShard(ctx, cli, "test", "0")
		require.NoError(t, err)
		if _, ok := st.Progress["b"]; ok {
			break
		}
		require.True(t, time.Now().Before(deadline), "b never reported progress")
		time.Sleep(10 * time.Millisecond)
	}
	ok, why, err := b.m.Eligible(ctx, b.r)
	require.NoError(t, err)
	require.False(t, ok)
	require.Contains(t, why, "1 of the synchronous set's 3 members seen, 2 needed")
	// c joins, ahead of b: c may run, b may not.
	c := startMember(t, srv, coord.Config{ID: "c", SyncQuorum: 1}, 7)
	l := waitLeader(t, 10*time.Second, b, c)
	require.Equal(t, "c", l.id)
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []coord.Config{
		{ID: "a", Cluster: "x"},
		{Client: &clientv3.Client{}, ID: "a"},
		{Client: &clientv3.Client{}, ID: "a/b", Cluster: "x"},
		{Client: &clientv3.Client{}, ID: "a", Cluster: "x", TTL: 1500 * time.Millisecond},
		{Client: &clientv3.Client{}, ID: "a", Cluster: "x", TTL: time.Second, Margin: time.Second},
	} {
		_, err := coord.New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

func TestHandOver(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	a := startMember(t, srv, coord.Config{ID: "a"}, 100)
	waitLeader(t, 10*time.Second, a)
	b := startMember(t, srv, coord.Config{ID: "b", Priority: 1000}, 80)
	c := startMember(t, srv, coord.Config{ID: "c"}, 100)
	waitLeader(t, 10*time.Second, a, b, c)
	// b, the target, is 20 records behind: the leader pauses and waits for
	// it to catch up before it lets go.
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := coord.HandOver(hctx, cli, "test", "", "b")
		done <- err
	}()
	// While it waits for b, a acknowledges nothing.
	deadline := time.Now().Add(10 * time.Second)
	for a.m.Valid() {
		require.True(t, time.Now().Before(deadline), "the leader never paused")
		time.Sleep(5 * time.Millisecond)
	}
	require.False(t, a.m.ValidFor(a.m.Leading()), "a leader handing over confirms no read")
	require.Equal(t, uint64(0), func() uint64 { l, _, _ := b.r.state(); return l }(), "b took over before it caught up")
	// b reaches a's seq, but in an older epoch: a divergent tail of its
	// own (a deposed leader's records a never had), not a's records.
	// Compared by seq alone, a would let go, and b would cut a's writes.
	b.r.mu.Lock()
	b.r.durable = 100
	b.r.mu.Unlock()
	require.Never(t, func() bool { return len(done) > 0 }, time.Second, 10*time.Millisecond,
		"a handed over to a member whose log of an older epoch only matches its seq")
	b.r.mu.Lock()
	b.r.epoch = a.m.Leading() // b catches up: it holds a's records, of a's epoch
	b.r.mu.Unlock()
	require.NoError(t, <-done)
	require.Equal(t, "b", waitLeader(t, 10*time.Second, a, b, c).id)
	st, err := coord.ReadShard(ctx, cli, "test", "")
	require.NoError(t, err)
	require.Nil(t, st.Handoff, "the new leader removes the handoff")
}

// TestSyncSetGrows: a sync-mode leader records the members as its
// synchronous set, and adds a member that joins later.
func TestSyncSetGrows(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	a := startMember(t, srv, coord.Config{ID: "a", SyncQuorum: 1}, 0)
	waitLeader(t, 10*time.Second, a)
	st, err := coord.ReadShard(ctx, cli, "test", "")
	require.NoError(t, err)
	require.Equal(t, &coord.SyncSet{V: 1, Set: []string{"a"}, Quorum: 2, Epoch: a.m.Leading()}, st.Sync, "recorded by a's leadership")
	startMember(t, srv, coord.Config{ID: "b", SyncQuorum: 1}, 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := coord.ReadShard(ctx, cli, "test", "")
		require.NoError(t, err)
		if st.Sync != nil && slices.Equal(st.Sync.Set, []string{"a", "b"}) {
			break
		}
		require.True(t, time.Now().Before(deadline), "b never joined the synchronous set: %+v", st.Sync)
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

// waitSync polls until the recorded synchronous set is want.
func waitSync(t *testing.T, cli *clientv3.Client, within time.Duration, want coord.SyncSet) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := coord.ReadShard(context.Background(), cli, "test", "")
		require.NoError(t, err)
		if st.Sync != nil && slices.Equal(st.Sync.Set, want.Set) && st.Sync.Quorum == want.Quorum {
			return
		}
		require.True(t, time.Now().Before(deadline), "synchronous set %+v, want %+v", st.Sync, want)
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

// TestSyncSetShrinks: a new leader keeps the inherited synchronous set (it
// names a member gone, which may have acknowledged writes), lets
// replication count only members the recorded set holds, and drops the
// members gone only once the live ones hold what was acknowledged.
func TestSyncSetShrinks(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	// The last leader, x, recorded {a, b, x}, quorum 2: x is gone.
	_, err := cli.Put(ctx, coord.Prefix("test")+"shards/0/sync", `{"v":1,"set":["a","b","x"],"quorum":2}`)
	require.NoError(t, err)
	var violations []string
	var vmu sync.Mutex
	// Every set replication is told to count must be within the recorded
	// one at that moment.
	check := func(ids []string) {
		st, err := coord.ReadShard(ctx, cli, "test", "")
		require.NoError(t, err)
		for _, id := range ids {
			if st.Sync == nil || !slices.Contains(st.Sync.Set, id) {
				vmu.Lock()
				violations = append(violations, fmt.Sprintf("replication counts %s, the recorded set is %+v", id, st.Sync))
				vmu.Unlock()
			}
		}
	}
	a := startMember(t, srv, coord.Config{ID: "a", SyncQuorum: 1}, 10)
	a.r.mu.Lock()
	a.r.onSyncSet = check
	a.r.mu.Unlock()
	b := startMember(t, srv, coord.Config{ID: "b", SyncQuorum: 1}, 5)
	l := waitLeader(t, 10*time.Second, a, b)
	require.Equal(t, "a", l.id, "a holds the most durable log")
	require.Equal(t, []string{"a", "b", "x"}, a.r.lastSyncSet(), "at election: the inherited set, x included")
	waitSync(t, cli, 5*time.Second, coord.SyncSet{Set: []string{"a", "b", "x"}, Quorum: 2})

	// b does not hold a's durable seq 10 yet: x stays recorded, though a
	// no longer counts it.
	require.Eventually(t, func() bool { return slices.Equal(a.r.lastSyncSet(), []string{"a", "b"}) }, 10*time.Second, 5*time.Millisecond)
	st, err := coord.ReadShard(ctx, cli, "test", "")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "x"}, st.Sync.Set, "x dropped before the live members held what was acknowledged")

	a.r.mu.Lock()
	a.r.syncDurable = 10 // b caught up
	a.r.mu.Unlock()
	waitSync(t, cli, 10*time.Second, coord.SyncSet{Set: []string{"a", "b"}, Quorum: 2})

	// c joins: recorded first, then counted.
	startMember(t, srv, coord.Config{ID: "c", SyncQuorum: 1}, 0)
	waitSync(t, cli, 10*time.Second, coord.SyncSet{Set: []string{"a", "b", "c"}, Quorum: 2})
	require.Eventually(t, func() bool { return slices.Equal(a.r.lastSyncSet(), []string{"a", "b", "c"}) }, 10*time.Second, 5*time.Millisecond)
	vmu.Lock()
	defer vmu.Unlock()
	require.Empty(t, violations)
}

// TestDrain: draining the leader hands leadership over with nothing lost
// (HandOver waits for the target); a drained member never runs, even when
// it is the only one left, until it is undrained.
func TestDrain(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	a := startMember(t, srv, coord.Config{ID: "a"}, 100)
	waitLeader(t, 10*time.Second, a)
	b := startMember(t, srv, coord.Config{ID: "b"}, 100)
	c := startMember(t, srv, coord.Config{ID: "c"}, 90)
	waitLeader(t, 10*time.Second, a, b, c)
	epoch := a.m.Leading()
	for _, f := range []*member{b, c} { // they hold a's records, of a's epoch
		f.r.mu.Lock()
		f.r.epoch = epoch
		f.r.mu.Unlock()
	}
	// Drain picks its target by the reports in etcd: wait until both carry
	// a's epoch. Until b's does, c's newer epoch ranks it first, and the
	// handoff waits for c (durable 90) to reach 100, which it never does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := coord.ReadShard(ctx, cli, "test", "")
		require.NoError(t, err)
		if st.Progress["b"].Epoch == epoch && st.Progress["c"].Epoch == epoch {
			break
		}
		require.True(t, time.Now().Before(deadline), "b and c never reported a's epoch: %+v", st.Progress)
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}

	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	l, err := coord.Drain(dctx, cli, "test", "", "a")
	require.NoError(t, err)
	require.Equal(t, "b", l.ID, "the most caught-up member that is not drained")
	require.Equal(t, b, waitLeader(t, 10*time.Second, a, b, c))
	st, err := coord.ReadShard(ctx, cli, "test", "")
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"a": true}, st.Drained)

	// a holds the most durable log, but it is drained: c runs.
	b.stop()
	require.Equal(t, c, waitLeader(t, 10*time.Second, a, c))
	c.stop()
	ok, why, err := a.m.Eligible(ctx, a.r)
	require.NoError(t, err)
	require.False(t, ok)
	require.Contains(t, why, "drained")
	require.Never(t, func() bool { l, _, _ := a.r.state(); return l != 0 }, 500*time.Millisecond, 10*time.Millisecond, "a drained member ran for leader")

	require.NoError(t, coord.Undrain(ctx, cli, "test", "", "a"))
	require.Equal(t, a, waitLeader(t, 10*time.Second, a))
	_, err = coord.Drain(ctx, cli, "test", "", "a/b")
	require.ErrorContains(t, err, "hold no '/'")
}

// TestNewerEpochWins: a log of a newer epoch wins over a longer log of an
// older one, in sync and async mode. a is a deposed leader of epoch 5 that
// kept appending after its successor was elected (a divergent tail, seq
// 120, never acknowledged); c followed the leader of epoch 9, which
// acknowledged writes up to seq 110 on c. By seq alone a would lead and c's
// acknowledged writes would be cut when c follows it.
func TestNewerEpochWins(t *testing.T) {
	for _, quorum := range []int{1, 0} {
		t.Run(fmt.Sprintf("sync_quorum_%d", quorum), func(t *testing.T) {
			srv := etcdtest.Start(t)
			cli := srv.Client(t)
			ctx := context.Background()
			if quorum > 0 {
				_, err := cli.Put(ctx, coord.Prefix("test")+"shards/0/sync", `{"v":1,"set":["a","b","c"],"quorum":2}`)
				require.NoError(t, err)
			}
			// b, the leader of epoch 9, holds the leader key (with a lease
			// the test keeps) while the others report their progress.
			lease, err := cli.Grant(ctx, 60)
			require.NoError(t, err)
			_, err = cli.Put(ctx, coord.Prefix("test")+"shards/0/leader", `{"v":1,"id":"b","resp":"127.0.0.1:1b","repl":"127.0.0.1:2b"}`, clientv3.WithLease(lease.ID))
			require.NoError(t, err)
			a := startMember(t, srv, coord.Config{ID: "a", SyncQuorum: quorum}, 0)
			c := startMember(t, srv, coord.Config{ID: "c", SyncQuorum: quorum}, 0)
			for _, p := range []struct {
				m              *member
				durable, epoch uint64
			}{{a, 120, 5}, {c, 110, 9}} {
				p.m.r.mu.Lock()
				p.m.r.durable, p.m.r.epoch = p.durable, p.epoch
				p.m.r.mu.Unlock()
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, err := coord.ReadShard(ctx, cli, "test", "0")
				require.NoError(t, err)
				if st.Progress["a"].Durable == 120 && st.Progress["c"].Durable == 110 {
					break
				}
				require.True(t, time.Now().Before(deadline), "progress never reported: %+v", st.Progress)
				time.Sleep(10 * time.Millisecond) // polling with a deadline
			}
			ok, why, err := a.m.Eligible(ctx, a.r)
			require.NoError(t, err)
			require.False(t, ok, "the longer log of the older epoch may run")
			require.Contains(t, why, "epoch 9")
			ok, why, err = c.m.Eligible(ctx, c.r)
			require.NoError(t, err)
			require.True(t, ok, why)

			// b's lease is gone: c is elected.
			_, err = cli.Revoke(ctx, lease.ID)
			require.NoError(t, err)
			require.Equal(t, "c", waitLeader(t, 10*time.Second, a, c).id)
		})
	}
}

// TestStaleProgressNotCounted: in sync mode a candidate counts only
// progress sampled after the last leadership ended (Progress.After). Here
// a acknowledged seq 20 with b (b holds it, c does not), and b's progress
// key then shows an older sample (5): a report sent before b acked, landing
// late, while b's next report is slow. Counting it, c (10) would see itself
// ahead of b, run, and lose the write. c must wait for b's report sampled
// after a's key vanished; then b, which holds seq 20, leads.
func TestStaleProgressNotCounted(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	a := startMember(t, srv, coord.Config{ID: "a", SyncQuorum: 1, Priority: 200}, 20)
	require.Equal(t, "a", waitLeader(t, 10*time.Second, a).id)
	b := startMember(t, srv, coord.Config{ID: "b", SyncQuorum: 1}, 20)
	c := startMember(t, srv, coord.Config{ID: "c", SyncQuorum: 1, Priority: 300}, 10)
	waitLeader(t, 10*time.Second, a, b, c)
	// The set {a, b, c} with quorum 2 is recorded by a's leadership.
	require.Eventually(t, func() bool {
		st, err := coord.ReadShard(ctx, cli, "test", "0")
		return err == nil && st.Sync != nil && len(st.Sync.Set) == 3 && st.Sync.Epoch == a.m.Leading() &&
			st.Progress["b"].Durable == 20 && st.Progress["c"].Durable == 10
	}, 10*time.Second, 10*time.Millisecond)
	st, err := coord.ReadShard(ctx, cli, "test", "0")
	require.NoError(t, err)
	require.Equal(t, 2, st.Sync.Quorum)

	// a dies; b's reports stall, and its key shows an old sample.
	resp, err := cli.Get(ctx, coord.Prefix("test")+"shards/0/progress/b")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	hold := make(chan struct{})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(hold) }) }) // before the members stop
	b.r.mu.Lock()
	b.r.hold = hold
	b.r.mu.Unlock()
	a.kill()
	_, err = cli.Put(ctx, coord.Prefix("test")+"shards/0/progress/b", fmt.Sprintf(`{"v":1,"durable":5,"epoch":%d}`, st.Progress["b"].Epoch),
		clientv3.WithLease(clientv3.LeaseID(resp.Kvs[0].Lease)))
	require.NoError(t, err)
	// a's lease (1 s) lapses and c settles (200 ms) well within 3 s.
	require.Never(t, func() bool { l, _, _ := c.r.state(); return l != 0 }, 3*time.Second, 10*time.Millisecond,
		"c ran on b's stale progress and would cut seq 20, acknowledged by a")
	release.Do(func() { close(hold) })
	require.Equal(t, "b", waitLeader(t, 15*time.Second, b, c).id)
}

// TestRouteKey: the election writes the route key (leaders/<shard>) with
// the leader key, in one revision and on one lease, so its ModRevision is
// the epoch; a handover and a leader's death (its lease expires) replace
// it with the next leader's, and a lease's end (revoked) takes it with the
// leader key.
func TestRouteKey(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	check := func(want *member) {
		t.Helper()
		resp, err := cli.Txn(ctx).Then(clientv3.OpGet(coord.LeaderKey("test", "0")), clientv3.OpGet(coord.RouteKey("test", "0"))).Commit()
		require.NoError(t, err)
		lk, rk := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
		if want == nil {
			require.Empty(t, lk)
			require.Empty(t, rk, "a route key outlived its leader key")
			return
		}
		require.Len(t, lk, 1)
		require.Len(t, rk, 1, "no route key for leader %s", want.id)
		require.Equal(t, string(lk[0].Value), string(rk[0].Value))
		require.Equal(t, lk[0].CreateRevision, rk[0].ModRevision, "the route key's ModRevision is the epoch")
		require.Equal(t, int64(want.m.Leading()), rk[0].ModRevision)
		require.Equal(t, lk[0].Lease, rk[0].Lease, "one lease")
		rt, err := coord.ReadRouting(ctx, cli, "test")
		require.NoError(t, err)
		require.Equal(t, want.id, rt.Leaders["0"].ID)
		require.Equal(t, want.m.Leading(), rt.Leaders["0"].Epoch)
	}
	a := startMember(t, srv, coord.Config{ID: "a"}, 100)
	b := startMember(t, srv, coord.Config{ID: "b"}, 100)
	l := waitLeader(t, 10*time.Second, a, b)
	check(l)
	other := a
	if l == a {
		other = b
	}
	other.r.mu.Lock()
	other.r.epoch = l.m.Leading() // it holds the leader's records: the handoff waits for that
	other.r.mu.Unlock()
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := coord.HandOver(hctx, cli, "test", "", other.id)
	require.NoError(t, err)
	require.Equal(t, other, waitLeader(t, 10*time.Second, a, b))
	check(other)
	other.kill() // its lease expires: l is elected again
	require.Equal(t, l, waitLeader(t, 15*time.Second, l))
	check(l)
	l.stop() // revokes its lease
	check(nil)
}
