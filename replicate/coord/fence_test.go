package coord

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

// TestRenewer: renewals share one stream; a renewal that times out (etcd
// silent behind a partition) closes it, so that its late answer is never
// read as the next one's, and the next renewal opens another; a revoked
// lease renews to TTL 0.
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
	ttl, err := r.renew(ctx, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, int64(5), ttl)
	first := r.stream
	require.NotNil(t, first)
	ttl, err = r.renew(ctx, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, int64(5), ttl)
	require.Same(t, first, r.stream, "a second stream for the second renewal")

	px.Partition()
	_, err = r.renew(ctx, 200*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Nil(t, r.stream, "a stream whose answer is late stays open")
	px.Heal()
	require.Eventually(t, func() bool {
		ttl, err := r.renew(ctx, time.Second)
		return err == nil && ttl == 5
	}, 10*time.Second, 10*time.Millisecond)
	require.NotSame(t, first, r.stream)

	_, err = cli.Revoke(ctx, g.ID)
	require.NoError(t, err)
	ttl, err = r.renew(ctx, 5*time.Second)
	require.NoError(t, err)
	require.Zero(t, ttl, "a revoked lease")
}
