package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestSentinelFailoverClient: a go-redis FailoverClient, given the members
// as its sentinels, finds the leader, keeps writing across a leader crash,
// and a client subscribed to +switch-master on a follower hears of it.
func TestSentinelFailoverClient(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	var addrs []string
	for _, name := range []string{"a", "b", "c"} {
		addrs = append(addrs, tc.add(name).n.Addr())
	}
	leader := tc.leader(20 * time.Second)

	// The Sentinel view, from a follower.
	var follower *clusterMember
	for _, m := range tc.nodes {
		if m != leader {
			follower = m
		}
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: follower.n.Addr()})
	defer sc.Close()
	got, err := sc.GetMasterAddrByName(ctx, "c1").Result()
	require.NoError(t, err)
	host, port, _ := net.SplitHostPort(leader.n.Addr())
	require.Equal(t, []string{host, port}, got)
	_, err = sc.GetMasterAddrByName(ctx, "nosuch").Result()
	require.ErrorIs(t, err, redis.Nil)
	master, err := sc.Master(ctx, "c1").Result()
	require.NoError(t, err)
	require.Equal(t, "c1", master["name"])
	require.Equal(t, port, master["port"])
	require.Equal(t, "master", master["flags"])
	require.Equal(t, "2", master["num-slaves"])
	replicas, err := sc.Replicas(ctx, "c1").Result()
	require.NoError(t, err)
	require.Len(t, replicas, 2)
	for _, r := range replicas {
		require.Equal(t, "slave", r["flags"])
		require.Equal(t, port, r["master-port"])
	}
	sentinels, err := sc.Sentinels(ctx, "c1").Result()
	require.NoError(t, err)
	require.Len(t, sentinels, 2)
	_, err = sc.Master(ctx, "nosuch").Result()
	require.ErrorContains(t, err, "No such master with that name")

	sub := redis.NewClient(&redis.Options{Addr: follower.n.Addr()})
	defer sub.Close()
	require.ErrorContains(t, sub.Do(ctx, "subscribe", "news").Err(), "not served")
	ps := sub.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	_, err = ps.Receive(ctx) // the subscription's confirmation
	require.NoError(t, err)

	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "c1", SentinelAddrs: addrs,
		MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	defer fc.Close()
	require.NoError(t, fc.Set(ctx, "before", "1", 0).Err())

	crashed := time.Now()
	tc.crash(leader)
	var lastErr error
	for i := 0; ; i++ {
		lastErr = fc.Set(ctx, fmt.Sprint("k", i), "v", 0).Err()
		if lastErr == nil {
			break
		}
		require.Less(t, time.Since(crashed), 20*time.Second, "no write succeeded after the failover: %v", lastErr)
		time.Sleep(20 * time.Millisecond) // the client's retry interval
	}
	t.Logf("first write through the FailoverClient %v after the crash", time.Since(crashed))
	require.Equal(t, "1", fc.Get(ctx, "before").Val())
	next := tc.leader(20 * time.Second)
	require.NotEqual(t, leader, next)

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg, err := ps.ReceiveMessage(rctx)
	require.NoError(t, err)
	nh, np, _ := net.SplitHostPort(next.n.Addr())
	require.Equal(t, "+switch-master", msg.Channel)
	require.Equal(t, strings.Join([]string{"c1", host, port, nh, np}, " "), msg.Payload)

	// A follower answers writes with READONLY, as a Redis replica does.
	for _, m := range tc.nodes {
		if m.n != nil && m != next {
			err := m.client(t).Set(ctx, "x", "y", 0).Err()
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "READONLY"), err.Error())
		}
	}
	require.False(t, errors.Is(lastErr, redis.Nil))
}

func TestSentinelNeedsACluster(t *testing.T) {
	n := startNode(t, nil)
	c := redis.NewClient(&redis.Options{Addr: n.Addr()})
	defer c.Close()
	require.ErrorContains(t, c.Do(context.Background(), "sentinel", "masters").Err(), "cluster members only")
}
