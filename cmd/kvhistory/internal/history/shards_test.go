package history

import (
	"context"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

func TestKeySlot(t *testing.T) {
	// Values a cluster-enabled redis-server's CLUSTER KEYSLOT gives (node's
	// TestKeySlotRedis checks node's keySlot against one on 3000 keys).
	require.Equal(t, 12182, keySlot("foo"))
	require.Equal(t, 5061, keySlot("bar"))
	require.Equal(t, keySlot("user1000"), keySlot("{user1000}.following"))
	require.Equal(t, keySlot("bar"), keySlot("foo{bar}{zap}"))
	require.NotEqual(t, keySlot("foo{}{bar}"), keySlot("bar"), "an empty tag hashes the whole key")
	require.Equal(t, keySlot("bar"), keySlot("{bar}}"))
}

func TestRedirect(t *testing.T) {
	for _, c := range []struct {
		err        string
		kind, addr string
		slot       int
		ok         bool
	}{
		{"MOVED 3999 127.0.0.1:6381", "MOVED", "127.0.0.1:6381", 3999, true},
		{"ASK 16383 10.0.0.1:7000", "ASK", "10.0.0.1:7000", 16383, true},
		{"MOVED 16384 127.0.0.1:6381", "", "", 0, false},
		{"MOVED -1 127.0.0.1:6381", "", "", 0, false},
		{"MOVED x 127.0.0.1:6381", "", "", 0, false},
		{"CLUSTERDOWN The cluster is down", "", "", 0, false},
		{"MOVED 1", "", "", 0, false},
	} {
		kind, slot, addr, ok := redirect(errString(c.err))
		require.Equal(t, c.ok, ok, c.err)
		if ok {
			require.Equal(t, []any{c.kind, c.slot, c.addr}, []any{kind, slot, addr}, c.err)
		}
	}
	require.Equal(t, Failed, classifyShard(errString("MOVED 1 127.0.0.1:1")))
	require.Equal(t, Failed, classifyShard(errString("CLUSTERDOWN The cluster is down")))
	require.Equal(t, Unknown, classifyShard(errString("i/o timeout")))
}

type errString string

func (e errString) Error() string { return string(e) }

// TestShardsNemesisLinearizable runs two shards of two nodes through a
// real etcd, clients routing by slot (half of them from MOVED replies
// alone), kills shards' leaders and moves slots holding the workload's keys
// between the shards: the history must be linearizable per key with no
// acknowledged write lost, clients must have followed redirects, and both
// shards must have served.
func TestShardsNemesisLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and four kvnodes")
	}
	work, bin := buildKvnode(t)
	const seed = 21
	cfg := Config{
		Kvnode: bin, Work: work, Ack: "sync", Engine: "memory", Duration: 8 * time.Second, Clients: 6, Keys: 16,
		Shards: 2, Nemesis: []string{FaultKillLeader, FaultMoveSlots}, Interval: time.Second, Seed: seed,
		CheckTimeout: 2 * time.Minute, Logf: t.Logf,
	}
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	t.Log(res.Summary("sync"))
	require.Greater(t, res.OK, 100, "the workload made progress")
	require.Positive(t, res.Faults[FaultKillLeader], "the nemesis killed leaders")
	require.Positive(t, res.Faults[FaultMoveSlots]-res.Faults[FaultMoveSlots+"-failed"], "the nemesis moved slots")
	require.NotEmpty(t, res.LostPerFailover, "a failover's loss was measured")
	require.Positive(t, res.Redirects, "clients followed MOVED")
	// Each shard served acknowledged operations: kvnode cluster init gives
	// shard a slots 0-8191 and b 8192-16383, as redis-cli does for two.
	halves := map[bool]int{}
	for _, o := range res.History {
		if o.Outcome == OK {
			halves[keySlot(o.Key) < 8192]++
		}
	}
	require.Positive(t, halves[true], "shard a acknowledged operations")
	require.Positive(t, halves[false], "shard b acknowledged operations")
	require.Empty(t, res.Failures(cfg), "seed %d: %s; porcupine's visualisation: %s", seed, res.Summary("sync"), res.Verdict.HTML)
	require.NotEqual(t, porcupine.Unknown, res.Verdict.Result)
}
