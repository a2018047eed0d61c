package coord

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv/replicate/coord/etcdtest"
)

// TestFenceReaders: Leading, LeadingNow, Valid and ValidFor read the fence,
// without the mutex, and say what the mutex-guarded fields say after each
// change publishLocked publishes: leading, a lapsed deadline, a handoff's
// pause, stepping down.
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
	set := func(leading uint64, deadline time.Time, paused string) {
		m.mu.Lock()
		m.leading, m.deadline, m.pausedFor = leading, deadline, paused
		m.publishLocked()
		m.mu.Unlock()
	}
	later := time.Now().Add(time.Hour)
	set(7, later, "")
	check(7, true)
	set(7, time.Now().Add(-time.Millisecond), "")
	check(7, false) // the lease may have lapsed: no acknowledgement
	set(7, later, "b")
	check(7, false) // handing leadership to b
	set(0, later, "")
	check(0, false)
}

// TestForgetRoute: a leader whose leader key was deleted by hand deletes
// the route key its election wrote, and only that one.
func TestForgetRoute(t *testing.T) {
	cli := etcdtest.Start(t).Client(t)
	ctx := context.Background()
	m, err := New(Config{Client: cli, Cluster: "c", ID: "a"})
	require.NoError(t, err)
	put, err := cli.Put(ctx, RouteKey("c", "0"), `{"v":1,"id":"a"}`)
	require.NoError(t, err)
	epoch := uint64(put.Header.Revision)
	m.forgetRoute(ctx, epoch+1) // another election's key: kept
	resp, err := cli.Get(ctx, RouteKey("c", "0"))
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	m.forgetRoute(ctx, epoch)
	resp, err = cli.Get(ctx, RouteKey("c", "0"))
	require.NoError(t, err)
	require.Empty(t, resp.Kvs)
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
