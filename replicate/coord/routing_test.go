package coord

import (
	"context"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv/replicate/coord/etcdtest"
)

// TestRouting reads the map and the leaders in one revision, skips keys that
// are not leader keys, and wakes on a change of the map or of a watched
// leader key only.
func TestRouting(t *testing.T) {
	cli := etcdtest.Start(t).Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	r, err := ReadRouting(ctx, cli, "c")
	require.NoError(t, err)
	require.Nil(t, r.Map, "no map key: not sharded")
	require.Empty(t, r.Leaders)

	put, err := cli.Put(ctx, SlotsKey("c"), `{"v":1}`)
	require.NoError(t, err)
	lput, err := cli.Put(ctx, LeaderKey("c", "a"), mustJSON(Leader{V: 1, ID: "a1", RESP: "127.0.0.1:1"}))
	require.NoError(t, err)
	_, err = cli.Put(ctx, Prefix("c")+"shards/a/progress/a1", `{"v":1}`)
	require.NoError(t, err)
	_, err = cli.Put(ctx, LeaderKey("c", "b"), "not json")
	require.NoError(t, err)

	r, err = ReadRouting(ctx, cli, "c")
	require.NoError(t, err)
	require.Equal(t, `{"v":1}`, string(r.Map))
	require.Equal(t, put.Header.Revision, r.MapVersion)
	require.Equal(t, map[string]Leader{"a": {V: 1, ID: "a1", RESP: "127.0.0.1:1", Epoch: uint64(lput.Header.Revision)}}, r.Leaders)

}

// seen is one Apply of WatchRouting, copied.
type seen struct {
	whole   bool
	rev     int64
	mapv    string
	version int64
	leaders map[string]Leader
}

// routingRecorder is a RoutingHandler whose map value is a JSON list of
// shard names, and that records each Apply; hold, while set, blocks Apply
// after a whole read until it is closed.
type routingRecorder struct {
	applied chan seen
	reads   chan error
	hold    chan struct{}
}

func newRoutingRecorder() *routingRecorder {
	return &routingRecorder{applied: make(chan seen, 100), reads: make(chan error, 100)}
}

func (r *routingRecorder) handler() RoutingHandler {
	return RoutingHandler{
		Shards: func(v []byte) []string {
			var shards []string
			if json.Unmarshal(v, &shards) != nil {
				return nil
			}
			return shards
		},
		Read: func(err error) { r.reads <- err },
		Apply: func(ctx context.Context, rt *Routing, whole bool) {
			s := seen{whole: whole, rev: rt.Revision, mapv: string(rt.Map), version: rt.MapVersion, leaders: maps.Clone(rt.Leaders)}
			if rt.Map == nil {
				s.mapv = "<none>"
			}
			r.applied <- s
			if whole && r.hold != nil {
				select {
				case <-r.hold:
				case <-ctx.Done():
				}
			}
		},
	}
}

// next returns the next Apply, failing the test after a deadline.
func (r *routingRecorder) next(t *testing.T) seen {
	t.Helper()
	select {
	case s := <-r.applied:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("WatchRouting applied nothing within 20 s")
		return seen{}
	}
}

// TestWatchRouting: after one whole read, each change of the map or of a
// watched leader key is applied from its event, with no read; keys it
// does not watch send nothing; a map naming a shard not watched, and a
// watch that etcd compacted past, are read again whole, and nothing
// written meanwhile is missed.
func TestWatchRouting(t *testing.T) {
	cli := etcdtest.Start(t).Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := func(id string) string { return mustJSON(Leader{V: 1, ID: id, RESP: "addr-" + id}) }
	put := func(key, val string) int64 {
		t.Helper()
		resp, err := cli.Put(ctx, key, val)
		require.NoError(t, err)
		return resp.Header.Revision
	}
	del := func(key string) int64 {
		t.Helper()
		resp, err := cli.Delete(ctx, key)
		require.NoError(t, err)
		return resp.Header.Revision
	}

	v1 := put(SlotsKey("c"), `["a"]`)
	ea1 := put(LeaderKey("c", "a"), leader("a1"))
	r := newRoutingRecorder()
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		WatchRouting(wctx, cli, "c", r.handler())
		close(done)
	}()
	defer func() { stop(); <-done }()

	s := r.next(t)
	require.True(t, s.whole)
	require.Equal(t, `["a"]`, s.mapv)
	require.Equal(t, v1, s.version)
	require.Equal(t, map[string]Leader{"a": {V: 1, ID: "a1", RESP: "addr-a1", Epoch: uint64(ea1)}}, s.leaders)
	require.NoError(t, <-r.reads)

	// Unwatched keys (another shard's leader, a progress report) send
	// nothing: the next Apply is the leader change that follows them.
	put(Prefix("c")+"shards/a/progress/a1", `{"v":1,"durable":5}`)
	put(LeaderKey("c", "z"), leader("z1"))
	del(LeaderKey("c", "a"))
	s = r.next(t)
	require.False(t, s.whole)
	require.Empty(t, s.leaders, "leader deleted")
	ea2 := put(LeaderKey("c", "a"), leader("a2"))
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, map[string]Leader{"a": {V: 1, ID: "a2", RESP: "addr-a2", Epoch: uint64(ea2)}}, s.leaders, "new leader, new epoch")
	require.Equal(t, ea2, s.rev)

	// A new map version of the same shards is an event.
	v2 := put(SlotsKey("c"), `["a" ]`)
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, `["a" ]`, s.mapv)
	require.Equal(t, v2, s.version)

	// An invalid map (the handler names no shards for it) is handed on
	// as it is: what to keep is the handler's to decide.
	v3 := put(SlotsKey("c"), `not a map`)
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, "not a map", s.mapv)
	require.Equal(t, v3, s.version)

	// A map naming a shard not watched: read again whole, with the
	// leader elected before the map named it.
	eb := put(LeaderKey("c", "b"), leader("b1"))
	v4 := put(SlotsKey("c"), `["a","b"]`)
	s = r.next(t)
	require.True(t, s.whole, "a new shard is read whole")
	require.Equal(t, v4, s.version)
	require.Equal(t, Leader{V: 1, ID: "b1", RESP: "addr-b1", Epoch: uint64(eb)}, s.leaders["b"])
	require.NoError(t, <-r.reads)

	// No map: handed on as none.
	del(SlotsKey("c"))
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, "<none>", s.mapv)
	require.Zero(t, s.version)
	v5 := put(SlotsKey("c"), `["a","b"]`)
	s = r.next(t)
	require.False(t, s.whole, "its shards' leader keys are still watched")
	require.Equal(t, v5, s.version)

	// Compaction: hold the next whole read's Apply (before its watches
	// start), change a leader, compact past the read: the watches fail
	// to start, and a whole read brings the change.
	r.hold = make(chan struct{})
	del(LeaderKey("c", "b")) // a watched key's event, then a new shard forces a whole read
	s = r.next(t)
	require.False(t, s.whole)
	put(LeaderKey("c", "d"), leader("d1"))
	put(SlotsKey("c"), `["a","b","d"]`)
	s = r.next(t)
	require.True(t, s.whole)
	require.NoError(t, <-r.reads)
	require.NotContains(t, s.leaders, "b")
	eb2 := put(LeaderKey("c", "b"), leader("b2"))
	// etcd keeps the compaction's own revision: compact one past eb2.
	_, err := cli.Compact(ctx, put(Prefix("c")+"shards/b/progress/b2", `{"v":1}`))
	require.NoError(t, err)
	close(r.hold)
	s = r.next(t)
	require.True(t, s.whole, "a compacted watch is read again whole")
	require.NoError(t, <-r.reads)
	require.Equal(t, Leader{V: 1, ID: "b2", RESP: "addr-b2", Epoch: uint64(eb2)}, s.leaders["b"])
}

// TestRoutingBackoff: the wait after failed reads doubles from RoutingRetry
// to RoutingRetryMax, each drawn from the upper half, so that routers that
// failed together spread out.
func TestRoutingBackoff(t *testing.T) {
	for failures, want := range map[int]time.Duration{1: RoutingRetry, 2: 2 * RoutingRetry, 4: RoutingRetryMax, 100: RoutingRetryMax, 1 << 20: RoutingRetryMax} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := routingBackoff(failures)
			require.GreaterOrEqual(t, d, want/2, "failures %d", failures)
			require.LessOrEqual(t, d, want, "failures %d", failures)
			seen[d] = true
		}
		require.Greater(t, len(seen), 100, "failures %d: the waits are spread", failures)
	}
}
