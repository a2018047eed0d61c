package coord

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/logkv/logkv/replicate/coord/etcdtest"
)

// TestRouting reads the map and the route keys in one revision, and
// nothing else: not the leader keys, progress reports or a route key that
// does not decode.
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
	lput, err := cli.Put(ctx, RouteKey("c", "a"), mustJSON(Leader{V: 1, ID: "a1", RESP: "127.0.0.1:1"}))
	require.NoError(t, err)
	for k, v := range map[string]string{
		Prefix("c") + "shards/a/progress/a1": `{"v":1}`,
		LeaderKey("c", "x"):                  mustJSON(Leader{V: 1, ID: "x1"}),
		RouteKey("c", "b"):                   "not json",
		RouteKey("other", "a"):               mustJSON(Leader{V: 1, ID: "o1"}),
	} {
		_, err = cli.Put(ctx, k, v)
		require.NoError(t, err)
	}

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

// routingRecorder is a RoutingHandler that records each Apply; hold, while
// set, blocks Apply after a whole read until it is closed.
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

// TestWatchRouting: after one whole read, each change of the map or of any
// shard's route key (a shard the map did not name yet included) is applied
// from its event, with no read; other keys send nothing; a watch that etcd
// compacted past is read again whole, and nothing written meanwhile is
// missed.
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
	ea1 := put(RouteKey("c", "a"), leader("a1"))
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

	// Other keys (a progress report, a leader key, another cluster's route
	// key) send nothing: the next Apply is the route key's deletion.
	put(Prefix("c")+"shards/a/progress/a1", `{"v":1,"durable":5}`)
	put(LeaderKey("c", "a"), leader("a9"))
	put(RouteKey("other", "a"), leader("o1"))
	del(RouteKey("c", "a"))
	s = r.next(t)
	require.False(t, s.whole)
	require.Empty(t, s.leaders, "leader deleted")
	ea2 := put(RouteKey("c", "a"), leader("a2"))
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, map[string]Leader{"a": {V: 1, ID: "a2", RESP: "addr-a2", Epoch: uint64(ea2)}}, s.leaders, "new leader, new epoch")
	require.Equal(t, ea2, s.rev)

	// A new map version is an event.
	v2 := put(SlotsKey("c"), `["a" ]`)
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, `["a" ]`, s.mapv)
	require.Equal(t, v2, s.version)

	// An invalid map is handed on as it is: what to keep is the handler's
	// to decide.
	v3 := put(SlotsKey("c"), `not a map`)
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, "not a map", s.mapv)
	require.Equal(t, v3, s.version)

	// A shard no map named yet: its leader's event, then the map naming
	// it, each applied, with no whole read.
	eb := put(RouteKey("c", "b"), leader("b1"))
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, Leader{V: 1, ID: "b1", RESP: "addr-b1", Epoch: uint64(eb)}, s.leaders["b"])
	v4 := put(SlotsKey("c"), `["a","b"]`)
	s = r.next(t)
	require.False(t, s.whole, "a new shard's leader came by the prefix's watch")
	require.Equal(t, v4, s.version)
	require.Len(t, s.leaders, 2)

	// A route key that does not decode removes the shard's leader, as a
	// whole read skips it.
	put(RouteKey("c", "b"), "not json")
	s = r.next(t)
	require.NotContains(t, s.leaders, "b")

	// No map: handed on as none.
	del(SlotsKey("c"))
	s = r.next(t)
	require.False(t, s.whole)
	require.Equal(t, "<none>", s.mapv)
	require.Zero(t, s.version)

	// Compaction: a second watcher, its whole read's Apply held (before
	// its watches start); change a leader, compact past the read: the
	// watches fail to start, and a whole read brings the change.
	r2 := newRoutingRecorder()
	r2.hold = make(chan struct{})
	w2ctx, stop2 := context.WithCancel(ctx)
	done2 := make(chan struct{})
	go func() {
		WatchRouting(w2ctx, cli, "c", r2.handler())
		close(done2)
	}()
	defer func() { stop2(); <-done2 }()
	s = r2.next(t)
	require.True(t, s.whole)
	require.NoError(t, <-r2.reads)
	eb2 := put(RouteKey("c", "b"), leader("b2"))
	// etcd keeps the compaction's own revision: compact one past eb2.
	_, err := cli.Compact(ctx, put(Prefix("c")+"shards/b/progress/b2", `{"v":1}`))
	require.NoError(t, err)
	close(r2.hold)
	s = r2.next(t)
	require.True(t, s.whole, "a compacted watch is read again whole")
	require.NoError(t, <-r2.reads)
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
