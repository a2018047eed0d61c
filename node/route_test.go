package node

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate/coord"
)

// TestRouterApply: the watcher's events applied to the table (router.apply,
// which coord.WatchRouting calls after its whole read and after each
// event): a new map version becomes a new table with the leaders held; a
// leader's change or deletion swaps that one address and keeps the slots;
// an invalid map keeps the table held and says why; a map older than the
// one a flip installed is refused, but its leaders are taken; no map is
// notSharded.
func TestRouterApply(t *testing.T) {
	var r router
	require.Nil(t, r.table.Load(), "nil until the first read: CLUSTERDOWN")
	enc := func(m *slotMap) []byte {
		b, err := m.encode()
		require.NoError(t, err)
		return b
	}
	m1, err := evenSlotMap([]string{"a", "b"})
	require.NoError(t, err)
	leaders := map[string]coord.Leader{"a": {RESP: "10.0.0.1:1"}, "b": {RESP: "10.0.0.2:1"}}
	rt := &coord.Routing{Map: enc(m1), MapVersion: 10, Leaders: leaders}

	require.NoError(t, r.apply(rt, "b", "10.0.0.2:1"))
	t1 := r.table.Load()
	require.EqualValues(t, 10, t1.version)
	require.Equal(t, []string{"10.0.0.1:1", "10.0.0.2:1"}, t1.leaders)
	require.Equal(t, 1, t1.self)
	require.Equal(t, "10.0.0.2:1", t1.selfAddr)

	// A leader change: a new table, the same slots and version.
	leaders["a"] = coord.Leader{RESP: "10.0.0.3:1"}
	require.NoError(t, r.apply(rt, "b", "10.0.0.2:1"))
	t2 := r.table.Load()
	require.NotSame(t, t1, t2, "swapped, never changed in place: the command path reads it without a lock")
	require.Equal(t, []string{"10.0.0.3:1", "10.0.0.2:1"}, t2.leaders)
	require.Equal(t, []string{"10.0.0.1:1", "10.0.0.2:1"}, t1.leaders, "the old table is unchanged")
	require.Equal(t, t1.owner, t2.owner)
	require.Equal(t, "MOVED 0 10.0.0.3:1", t2.redirect(0, false, false))

	// Nothing changed: the table stays.
	require.NoError(t, r.apply(rt, "b", "10.0.0.2:1"))
	require.Same(t, t2, r.table.Load())

	// A leader deleted: its slots are CLUSTERDOWN until the next one.
	delete(leaders, "a")
	require.NoError(t, r.apply(rt, "b", "10.0.0.2:1"))
	require.Equal(t, errClusterDown, r.table.Load().redirect(0, false, false))
	leaders["a"] = coord.Leader{RESP: "10.0.0.4:1"}

	// A new map version: a new table.
	m2 := *m1
	m2.Ranges = []slotRange{{First: 0, Last: 99, Shard: 1}, {First: 100, Last: numSlots/2 - 1, Shard: 0}, {First: numSlots / 2, Last: numSlots - 1, Shard: 1}}
	rt.Map, rt.MapVersion = enc(&m2), 20
	require.NoError(t, r.apply(rt, "b", "10.0.0.2:1"))
	t3 := r.table.Load()
	require.EqualValues(t, 20, t3.version)
	require.Equal(t, "", t3.redirect(0, false, false), "slot 0 is b's now")
	require.Equal(t, "MOVED 100 10.0.0.4:1", t3.redirect(100, false, false))

	// An invalid map keeps the table held, and its leaders follow still.
	rt.Map, rt.MapVersion = []byte(`{"v":1,"shards":["a"`), 30
	require.Error(t, r.apply(rt, "b", "10.0.0.2:1"))
	require.EqualValues(t, 20, r.table.Load().version)
	leaders["a"] = coord.Leader{RESP: "10.0.0.5:1"}
	require.NoError(t, r.apply(rt, "b", "10.0.0.2:1"), "the invalid version is decoded once")
	require.Equal(t, "MOVED 100 10.0.0.5:1", r.table.Load().redirect(100, false, false))

	// A flip installed version 40 (installFlip); the watch then brings
	// version 35: refused, but its leaders are taken.
	flip := *r.table.Load()
	flip.version = 40
	require.True(t, r.install(&flip, func(old *slotTable) bool { return old.version < flip.version }))
	leaders["a"] = coord.Leader{RESP: "10.0.0.6:1"}
	rt.Map, rt.MapVersion = enc(m1), 35
	require.NoError(t, r.apply(rt, "b", "10.0.0.2:1"))
	require.EqualValues(t, 40, r.table.Load().version, "never back in time")
	require.Equal(t, "MOVED 100 10.0.0.6:1", r.table.Load().redirect(100, false, false))

	// No map: not sharded.
	rt.Map, rt.MapVersion = nil, 0
	require.NoError(t, r.apply(rt, "b", "10.0.0.2:1"))
	require.Same(t, notSharded, r.table.Load())
}

// TestTableSole: a table names the shard that owns every slot (sole) when
// one does and no move runs, however the map's ranges split the slots, and
// none otherwise (route's and checkOwned's one-shard case).
func TestTableSole(t *testing.T) {
	one := &slotMap{Shards: []string{"0"}, Ranges: []slotRange{{0, numSlots - 1, 0}}}
	split := &slotMap{Shards: []string{"0", "x"}, Ranges: []slotRange{{0, 99, 0}, {100, numSlots - 1, 0}}}
	two := &slotMap{Shards: []string{"0", "x"}, Ranges: []slotRange{{0, 99, 0}, {100, numSlots - 1, 1}}}
	moving := &slotMap{Shards: []string{"0", "x"}, Ranges: []slotRange{{0, numSlots - 1, 0}},
		Moves: []slotMove{{First: 0, Last: 9, From: 0, To: 1, State: moveCopying}}}
	for _, m := range []*slotMap{one, split, two, moving} {
		require.NoError(t, m.validate())
	}
	require.Equal(t, 0, one.table().sole)
	require.Equal(t, 0, split.table().sole, "every slot is shard 0's, in two ranges")
	require.Equal(t, -1, two.table().sole)
	require.Equal(t, -1, moving.table().sole, "a move in flight")
}

// TestRouteOneShard: a one-shard cluster's members route by the shortcut
// (route: one key, a shard that owns every slot, its confirmed leader)
// only where the whole path would serve: the leader serves one-key
// commands, and still answers CROSSSLOT to a multi-key command and to an
// EXEC of two slots, refuses SELECT 1, and refuses keys with TRYAGAIN
// while its table is unconfirmed; the follower answers MOVED to it.
func TestRouteOneShard(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	tc.add("a")
	tc.add("b")
	tc.leader(20 * time.Second)
	var out, errOut strings.Builder
	require.Equal(t, 0, Main([]string{"cluster", "init", "-shards", "0", "-etcd", tc.etcd.Endpoint, "-cluster", tc.name}, &out, &errOut), errOut.String())
	m, err := readSlotMap(ctx, tc.nodes["a"].cb().cli, tc.name)
	require.NoError(t, err)
	leader := tc.shardLeaders(map[string]string{"a": "0", "b": "0"}, m.Version, 30*time.Second)["0"]
	follower := tc.nodes["a"]
	if follower == leader {
		follower = tc.nodes["b"]
	}
	tab := leader.cb().route.table.Load()
	require.Equal(t, 0, tab.sole)
	require.Equal(t, 0, tab.self)

	lc := leader.client(t)
	k1, k2 := "a", "b" // slots 15495 and 3300
	require.NotEqual(t, keySlot([]byte(k1)), keySlot([]byte(k2)))
	// The new leader confirms its table within a tick of runMoves.
	require.Eventually(t, func() bool { return lc.Set(ctx, k1, "1", 0).Err() == nil }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "1", lc.Get(ctx, k1).Val())
	require.NoError(t, lc.MSet(ctx, "{t}1", "x", "{t}2", "y").Err())
	require.EqualError(t, lc.MSet(ctx, k1, "x", k2, "y").Err(), errCrossSlot)
	require.EqualError(t, lc.Do(ctx, "select", "1").Err(), errSelectMode)

	conn := lc.Conn()
	defer conn.Close()
	require.NoError(t, conn.Do(ctx, "multi").Err())
	require.NoError(t, conn.Do(ctx, "set", k1, "2").Err())
	require.NoError(t, conn.Do(ctx, "set", k2, "2").Err())
	require.EqualError(t, conn.Do(ctx, "exec").Err(), errCrossSlot)
	require.Equal(t, "1", lc.Get(ctx, k1).Val(), "nothing of the transaction ran")

	fc := follower.client(t)
	require.EqualError(t, fc.Get(ctx, k1).Err(), fmt.Sprintf("MOVED %d %s", keySlot([]byte(k1)), leader.n.Addr()))

	// Unconfirmed again (as a new leader is until runMoves read etcd): a
	// key is refused. runMoves confirms again within its tick, so each try
	// unconfirms it just before the command.
	refused := false
	for range 100 {
		leader.cb().moves.freshFor.Store(0)
		err := lc.Get(ctx, k1).Err()
		if err != nil && err.Error() == errTableUnconfirmedMsg {
			refused = true
			break
		}
	}
	require.True(t, refused, "an unconfirmed leader served a key")
	require.Eventually(t, func() bool { return lc.Get(ctx, k1).Val() == "1" }, 10*time.Second, 5*time.Millisecond)
}

// TestConfirmationReadFirst: route and checkOwned read whether the table
// is confirmed before the table itself (confirmedTable). The hook runs
// between the two reads and does what the watch and runMoves do while a
// new leader's command is descheduled there: install the new table, in
// which the key's slot moved to shard b, then confirm it. Read in the
// other order, the stale table (every slot this shard's) would pass with
// the confirmation: a READONLY read of a slot that moved (back in time),
// and a write to a slot given away, which the sweep then deletes.
func TestConfirmationReadFirst(t *testing.T) {
	m, err := evenSlotMap([]string{"a", "b"})
	require.NoError(t, err)
	moved := m.table()
	moved.leaders, moved.self = []string{"127.0.0.1:1", "127.0.0.1:2"}, 0
	kb := keyOfShard(t, m, "b")
	t.Cleanup(func() { testHookConfirmedTable = nil })

	for _, path := range []string{"route", "checkOwned"} {
		t.Run(path, func(t *testing.T) {
			stale := oneShardTable("127.0.0.1:1")
			n, c := routeFixture(stale)
			b := n.backend.(*clusterBackend)
			b.n = n
			b.moves.confirm = make(chan struct{}, 1)
			b.leading.Store(7) // leads epoch 7, not confirmed yet (freshFor 0)
			testHookConfirmedTable = func() {
				b.route.table.Store(moved)
				b.moves.freshFor.Store(7)
			}
			defer func() { testHookConfirmedTable = nil }()
			if path == "route" {
				c.conn = &replyConn{n: n, c: c, check: 1 << 30}
				args := [][]byte{[]byte("get"), []byte(kb)}
				require.True(t, n.misrouted(c, lookup(args[0]), args), "served with the stale table")
				require.Equal(t, "-"+errTableUnconfirmedMsg+"\r\n", string(c.conn.out))
			} else {
				var batch logkv.Batch
				batch.Set(appendDataKey(nil, 0, 0, []byte(kb)), []byte("v"))
				require.ErrorIs(t, b.checkOwned(&batch), errTableUnconfirmed, "passed with the stale table")
			}
			// Once confirmed, the new table decides.
			testHookConfirmedTable = nil
			if path == "route" {
				c.conn = &replyConn{n: n, c: c, check: 1 << 30}
				args := [][]byte{[]byte("get"), []byte(kb)}
				require.True(t, n.misrouted(c, lookup(args[0]), args))
				require.Contains(t, string(c.conn.out), "MOVED")
			} else {
				var batch logkv.Batch
				batch.Set(appendDataKey(nil, 0, 0, []byte(kb)), []byte("v"))
				require.ErrorIs(t, b.checkOwned(&batch), errSlotGivenAway)
			}
		})
	}
}

// TestRouteEmptyShard: the leader of a shard added with no slots yet
// redirects every key to the shard that owns it. Its table has a sole
// owner (sole >= 0) that is not itself, which is what route's shortcut
// checks (t.sole == t.self); TestRouteOneShard cannot, since in a
// one-shard cluster the sole owner is always the leader's own shard.
func TestRouteEmptyShard(t *testing.T) {
	requireEtcdCluster(t)
	ctx := context.Background()
	tc := newTestCluster(t, time.Second)
	etcdArgs := []string{"-etcd", tc.etcd.Endpoint, "-cluster", tc.name}
	run := func(args ...string) {
		var o, e strings.Builder
		require.Equal(t, 0, Main(append(append([]string{"cluster"}, args...), etcdArgs...), &o, &e), "%v: %s%s", args, o.String(), e.String())
	}
	tc.add("a1", func(c *Config) { c.Cluster.Shard = "a" })
	tc.shardLeaders(map[string]string{"a1": "a"}, 0, 30*time.Second)
	run("init", "-shards", "a")
	run("add-shard", "b")
	tc.add("b1", func(c *Config) { c.Cluster.Shard = "b" })
	m, err := readSlotMap(ctx, tc.nodes["a1"].cb().cli, tc.name)
	require.NoError(t, err)
	tc.shardLeaders(map[string]string{"a1": "a", "b1": "b"}, m.Version, 30*time.Second)
	tab := tc.nodes["b1"].cb().route.table.Load()
	require.Equal(t, 0, tab.sole, "shard a owns every slot")
	require.Equal(t, 1, tab.self)

	bc := tc.nodes["b1"].client(t)
	key := "b1"
	want := fmt.Sprintf("MOVED %d %s", keySlot([]byte(key)), tc.nodes["a1"].n.Addr())
	// TRYAGAIN until b1 confirmed its table (CLUSTERDOWN until its watch
	// saw a1's leader key), then MOVED; never served.
	var last error
	require.Eventually(t, func() bool {
		last = bc.Get(ctx, key).Err()
		return last == nil || (last.Error() != errTableUnconfirmedMsg && last.Error() != errClusterDown)
	}, 10*time.Second, 5*time.Millisecond)
	require.EqualError(t, last, want, "the leader of an empty shard answers GET")
	require.EqualError(t, bc.Set(ctx, key, "x", 0).Err(), want)
}
