package coord

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv/replicate/coord/etcdtest"
)

// TestFenceReaders: Leading, LeadingNow, Valid, ValidFor and Deadline read
// the fence without the mutex and see each change setFenceLocked makes
// (the fence's only writer, so no change can go unpublished): leading, a
// lapsed deadline, a handoff's pause, stepping down; a change of one field
// keeps the others.
func TestFenceReaders(t *testing.T) {
	m, err := New(Config{Client: &clientv3.Client{}, Cluster: "c", ID: "a"})
	require.NoError(t, err)
	check := func(leading uint64, valid bool) {
		t.Helper()
		require.Equal(t, leading, m.Leading())
		require.Equal(t, leading, m.LeadingNow())
		require.Equal(t, valid, m.Valid())
		require.Equal(t, valid, m.ValidFor(leading))
	}
	check(0, false) // nothing published yet
	set := func(leading uint64, deadline time.Time, paused bool) {
		m.mu.Lock()
		m.setFenceLocked(func(f *fenceState) { f.leading, f.deadline, f.paused = leading, deadline, paused })
		m.mu.Unlock()
	}
	later := time.Now().Add(time.Hour)
	set(7, later, false)
	check(7, true)
	set(7, time.Now().Add(-time.Millisecond), false)
	check(7, false) // the lease may have lapsed: no acknowledgement
	set(7, later, true)
	check(7, false) // handing leadership to b
	m.mu.Lock()
	m.setFenceLocked(func(f *fenceState) { f.paused = false })
	m.mu.Unlock()
	check(7, true) // the handoff resumed: leading and the deadline kept
	require.Equal(t, later, m.Deadline())
	set(0, later, false)
	check(0, false)
}

// stubReplica is a Replica that does nothing, for tests of the member's
// own etcd keys.
type stubReplica struct{}

func (stubReplica) Progress() (uint64, uint64)       { return 0, 0 }
func (stubReplica) Lead(uint64) error                { return nil }
func (stubReplica) SetSyncSet([]string)              {}
func (stubReplica) SyncDurable([]string, int) uint64 { return 0 }
func (stubReplica) Follow(Leader) error              { return nil }
func (stubReplica) StepDown()                        {}

// failingKV fails the first fails transactions that delete key, as an etcd
// that does not answer would: the member must retry them.
type failingKV struct {
	clientv3.KV
	key   string
	fails *atomic.Int32
}

func (k failingKV) Txn(ctx context.Context) clientv3.Txn {
	return &failingTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type failingTxn struct {
	clientv3.Txn
	kv      failingKV
	deletes bool
}

func (t *failingTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.Txn = t.Txn.If(cs...); return t }
func (t *failingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}
func (t *failingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		t.deletes = t.deletes || op.IsDelete() && string(op.KeyBytes()) == t.kv.key
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}
func (t *failingTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.deletes && t.kv.fails.Add(-1) >= 0 {
		return nil, errors.New("failingKV: etcd did not answer")
	}
	return t.Txn.Commit()
}

// TestForgetRoute: a leader whose leader key is deleted or replaced by hand
// deletes the route key its election wrote, through its election loop, and
// retries when etcd does not answer. "deleted": the key is gone, and
// another's appears only once the member has stepped down (so that the
// member's own next election cannot overwrite the route key). "replaced":
// another member's key is there when the deposed leader looks (it won
// before the deposed leader's loop saw the deletion), and the first two
// deletes fail.
func TestForgetRoute(t *testing.T) {
	for _, replaced := range []bool{false, true} {
		t.Run(map[bool]string{false: "deleted", true: "replaced"}[replaced], func(t *testing.T) {
			srv := etcdtest.Start(t)
			admin := srv.Client(t)
			cli := srv.Client(t)
			var fails atomic.Int32
			if replaced {
				fails.Store(2)
			}
			cli.KV = failingKV{KV: cli.KV, key: RouteKey("c", "0"), fails: &fails}
			m, err := New(Config{Client: cli, Cluster: "c", Shard: "0", ID: "a", TTL: time.Second,
				Settle: 500 * time.Millisecond, ReportEvery: 50 * time.Millisecond})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan struct{})
			go func() {
				defer close(ran)
				_ = m.Run(ctx, stubReplica{})
			}()
			defer func() { cancel(); <-ran }()
			poll := func(what string, cond func() bool) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for !cond() {
					require.True(t, time.Now().Before(deadline), "not within 10s: %s", what)
					time.Sleep(10 * time.Millisecond) // polling with a deadline
				}
			}
			poll("a leads", func() bool { return m.Leading() != 0 })
			epoch := m.Leading()
			route := func() *mvccpb.KeyValue {
				resp, err := admin.Get(context.Background(), RouteKey("c", "0"))
				require.NoError(t, err)
				if len(resp.Kvs) == 0 {
					return nil
				}
				return resp.Kvs[0]
			}
			kv := route()
			require.NotNil(t, kv, "no route key")
			require.Equal(t, int64(epoch), kv.ModRevision)
			other := `{"v":1,"id":"x","resp":"127.0.0.1:9","repl":"127.0.0.1:9"}`
			if replaced {
				// A Put keeps the key's CreateRevision: the member sees
				// another's key, never none.
				_, err = admin.Put(context.Background(), m.cfg.leaderKey(), other)
				require.NoError(t, err)
			} else {
				_, err = admin.Delete(context.Background(), m.cfg.leaderKey())
				require.NoError(t, err)
				poll("a steps down", func() bool { return m.Leading() == 0 })
				_, err = admin.Put(context.Background(), m.cfg.leaderKey(), other)
				require.NoError(t, err)
			}
			poll("the route key of a's election deleted", func() bool {
				kv := route()
				return kv == nil || kv.ModRevision != int64(epoch)
			})
			require.Nil(t, route(), "a route key written since")
			require.Equal(t, uint64(0), m.Leading())
			require.LessOrEqual(t, fails.Load(), int32(0), "the failing deletes were not all tried")
		})
	}
}

// renewOnce sends one keep-alive on r and waits up to within for an answer
// that take accepts.
func renewOnce(t *testing.T, r *renewer, within time.Duration) (sent time.Time, ttl int64, err error) {
	if !r.send(context.Background(), time.Now()) {
		return time.Time{}, 0, errors.New("no stream free")
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case a := <-r.answers:
			if sent, ttl, err, ok := r.take(a, time.Now()); ok {
				return sent, ttl, err
			}
		case <-timer.C:
			return time.Time{}, 0, context.DeadlineExceeded
		}
	}
}

// TestRenewer: renewals share one stream; a renewal that goes unanswered
// (etcd silent behind a partition) keeps its stream, and the next one opens
// another, each with its own send time, at most maxStreams waiting; expire
// closes the streams whose answers could no longer help, and their late
// answers are dropped; a revoked lease renews to TTL 0.
func TestRenewer(t *testing.T) {
	srv := etcdtest.Start(t)
	px := etcdtest.NewProxy(t, srv)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{px.Endpoint}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx := context.Background()
	g, err := cli.Grant(ctx, 5)
	require.NoError(t, err)
	r := newRenewer(cli, g.ID)
	defer r.close()
	_, ttl, err := renewOnce(t, r, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, int64(5), ttl)
	require.Len(t, r.streams, 1)
	first := r.streams[0]
	_, ttl, err = renewOnce(t, r, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, int64(5), ttl)
	require.Equal(t, []*keepStream{first}, r.streams, "a second stream for the second renewal")

	px.Partition()
	t0 := time.Now()
	_, _, err = renewOnce(t, r, 100*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, []*keepStream{first}, r.streams, "an unanswered renewal's stream is kept")
	require.False(t, first.sent.Before(t0), "the waiting request's send time")
	for range maxStreams - 1 {
		require.True(t, r.send(ctx, time.Now()))
	}
	require.Len(t, r.streams, maxStreams, "each waiting renewal on a stream of its own")
	require.False(t, r.send(ctx, time.Now()), "more than maxStreams waiting")
	r.expire(first.sent)
	require.Len(t, r.streams, maxStreams-1, "expire closes the oldest")
	require.True(t, first.closed)
	_, _, _, ok := r.take(answer{s: first, resp: &pb.LeaseKeepAliveResponse{TTL: 5}}, time.Now())
	require.False(t, ok, "an answer from a closed stream is taken")
	r.expire(time.Now())
	require.Empty(t, r.streams)
	px.Heal()
	require.Eventually(t, func() bool {
		_, ttl, err := renewOnce(t, r, time.Second)
		return err == nil && ttl == 5
	}, 10*time.Second, 10*time.Millisecond)
	require.Len(t, r.streams, 1, "idle streams left after an answer")

	_, err = cli.Revoke(ctx, g.ID)
	require.NoError(t, err)
	_, ttl, err = renewOnce(t, r, 5*time.Second)
	require.NoError(t, err)
	require.Zero(t, ttl, "a revoked lease")
}
