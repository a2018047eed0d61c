package node

import (
	"testing"

	"github.com/stretchr/testify/require"

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
	require.Equal(t, []string{"a", "b"}, r.watchShards(rt.Map))

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

	// An invalid map keeps the table held, and its leaders follow still:
	// the shards watched are the held table's.
	rt.Map, rt.MapVersion = []byte(`{"v":1,"shards":["a"`), 30
	require.Error(t, r.apply(rt, "b", "10.0.0.2:1"))
	require.EqualValues(t, 20, r.table.Load().version)
	require.Equal(t, []string{"a", "b"}, r.watchShards(rt.Map))
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
	require.Nil(t, r.watchShards(nil))
}
