package sim

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv/replicate/coord/etcdtest"
)

// TestSmallCluster runs the simulation small, so that it cannot rot: three
// shards of three members against a real etcd elect one leader each (Run
// fails otherwise: it waits for exactly one leader per shard that all its
// members follow), every member's router reads every map update and every
// successor of a killed leader, and the costs come from etcd's metrics.
// The router is node's, which applies watch events: a map update costs it
// no read and no watch request.
func TestSmallCluster(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Endpoint: srv.Endpoint, Shards: 3, Members: 3, TTL: time.Second, Busy: true,
		Steady: 500 * time.Millisecond, MapUpdates: 3, Kills: 2, KillBatch: 2, Converge: 30 * time.Second, Seed: 7})
	require.NoError(t, err)
	require.Zero(t, rep.WatchReqPerMap, "the router re-creates no watch on a map update")
	require.LessOrEqual(t, rep.ReadsPerMap, 1.0, "only the map's own write transaction")
	require.Equal(t, Latency{}, Latency{N: rep.MapSeen.N - 27, Timeouts: rep.MapSeen.Timeouts}, "every member of 9 reads each of 3 map updates")
	require.Equal(t, 4, rep.ElectAfterKill.N, "each of 2x2 killed leaders has a successor")
	require.Equal(t, 4, rep.SeenAfterKill.N, "every router reads each successor")
	require.Zero(t, rep.ElectAfterKill.Timeouts)
	// A killed leader's lease must expire before anyone may lead: the
	// kill is a SIGKILL's, not a clean resignation.
	require.GreaterOrEqual(t, rep.ElectAfterKill.P50, 500*time.Millisecond)
	require.Positive(t, rep.Steady.KeepAlivesPerS, "etcd's metrics were read")
	require.Positive(t, rep.Steady.PutsPerS, "busy members report progress")
	require.Positive(t, rep.EventsPerMap)
}
