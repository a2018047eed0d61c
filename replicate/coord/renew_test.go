package coord_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logkv/logkv/replicate/coord"
	"github.com/logkv/logkv/replicate/coord/etcdtest"
)

// TestLeaseSurvivesAHungEtcdMember: a leader whose keep-alive stream sits
// on an etcd member that hangs (SIGSTOP: its TCP connections stay open and
// silent) keeps its lease, its epoch and its fence, through the other two
// members. The client is kvnode's (node/cluster.go): gRPC keep-alive 2 s +
// 2 s, so the hung connection is closed only after the 2 s TTL would have
// run out. A renewer that waits on one stream loses the lease here every
// time.
func TestLeaseSurvivesAHungEtcdMember(t *testing.T) {
	srvs := etcdtest.StartCluster(t, 3, 100, 1000)
	all := etcdtest.Endpoints(srvs)
	// A follower, so that pausing it starts no etcd election (which would
	// stall every member for an election timeout, and test something else).
	admin := etcdtest.ClientOf(t, all...)
	hung := -1
	for i, ep := range all {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := admin.Status(ctx, ep)
		cancel()
		require.NoError(t, err)
		if st.Leader != st.Header.MemberId {
			hung = i
			break
		}
	}
	require.NotEqual(t, -1, hung, "no etcd follower")
	// The client starts with the member to hang alone, so that the
	// renewal stream opens there; then it learns the other two.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{all[hung]}, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	defer cli.Close()
	m, err := coord.New(coord.Config{Client: cli, Cluster: "test", ID: "a", TTL: 2 * time.Second,
		Settle: 200 * time.Millisecond, ReportEvery: 50 * time.Millisecond, RESPAddr: "127.0.0.1:1", ReplAddr: "127.0.0.1:2"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = m.Run(ctx, &replica{})
	}()
	defer func() { cancel(); <-ran }()
	deadline := time.Now().Add(10 * time.Second)
	for m.Leading() == 0 || !m.Valid() {
		require.True(t, time.Now().Before(deadline), "no leader within 10s")
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	epoch := m.Leading()
	// A renewal answered through the member to hang: the stream is open.
	renewed := m.Deadline()
	for !m.Deadline().After(renewed) {
		require.True(t, time.Now().Before(deadline), "no renewal within 10s")
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	cli.SetEndpoints(all...)
	require.NoError(t, srvs[hung].Pause())
	defer func() { require.NoError(t, srvs[hung].Resume()) }()

	// Three TTLs: the lease would have gone twice over.
	var gaps, renewalGap time.Duration
	last, end := time.Now(), time.Now().Add(6*time.Second)
	lastRenewal, d := last, m.Deadline()
	for now := time.Now(); now.Before(end); now = time.Now() {
		require.Equal(t, epoch, m.Leading(), "the leader stepped down: its lease was not renewed through the live members")
		if m.Valid() {
			gaps = max(gaps, now.Sub(last))
			last = now
		}
		if nd := m.Deadline(); nd.After(d) {
			renewalGap = max(renewalGap, now.Sub(lastRenewal))
			lastRenewal, d = now, nd
		}
		time.Sleep(10 * time.Millisecond) // sampling the fence
	}
	gaps = max(gaps, time.Since(last))
	renewalGap = max(renewalGap, time.Since(lastRenewal))
	t.Logf("longest time without a valid fence: %v; longest between renewals: %v", gaps, renewalGap)
	require.Less(t, gaps, time.Second, "the fence lapsed for long")
}
