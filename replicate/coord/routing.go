package coord

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// What a member routes by, as etcd holds it: the slot map (its value is
// node's to decode: node/slots.go) and each shard's leader, as its route
// key says (RouteKey: leaders/<shard>, written with the leader key in the
// election's transaction and bound to the same lease). A member reads both
// in one revision (ReadRouting), then keeps two watches from that revision
// on, the map's key and the leaders/ prefix, and applies each event to what
// it read (WatchRouting): a change costs each member one watch event, and
// no read and no watch request. It reads everything again only when a
// watch fails (etcd compacted past it, lost its leader, or the member's
// client closed).
//
//	etcd --ReadRouting--> Routing --Apply--> the member's table
//	     --watch events (slots, leaders/*)--> Routing --Apply--> ...
//
// Why a route key beside the leader key: the leader keys
// (shards/<s>/leader) sit among each shard's progress reports, sync and
// handoff keys, so a router could only read them all by reading every
// member's progress, and only watch them one key per shard: S + 1 watches
// a member, 30,900 at 100 shards x 3, which kept 100 x 3 from converging
// with the 2 s lease TTL (docs/cluster-scale.md). Elections still decide on
// the leader key alone: the route key is what routers are told, never what
// fencing or an election reads.
//
// These are the etcd half of node's slot watcher (node/route.go), here so
// that cmd/kvclustersim runs the very requests a kvnode makes without a
// whole kvnode. docs/cluster-scale.md measures what they cost etcd.

// SlotsKey is the slot map's key: /logkv/<cluster>/slots.
func SlotsKey(cluster string) string { return Prefix(cluster) + "slots" }

// LeaderKey is shard's leader key: /logkv/<cluster>/shards/<shard>/leader.
func LeaderKey(cluster, shard string) string {
	return Prefix(cluster) + "shards/" + shard + "/leader"
}

// RouteKey is shard's route key, /logkv/<cluster>/leaders/<shard>: the
// leader key's value, put in the election's transaction on the leader's
// lease (so its ModRevision is the epoch) and deleted with the leader key.
func RouteKey(cluster, shard string) string { return routesPrefix(cluster) + shard }

// routesPrefix is the prefix of every shard's route key.
func routesPrefix(cluster string) string { return Prefix(cluster) + "leaders/" }

// Routing is the slot map and every shard's leader, read in one revision.
type Routing struct {
	// Revision is the etcd revision read.
	Revision int64
	// Map is the slot map's value, nil when the cluster has none.
	Map []byte
	// MapVersion is the map key's ModRevision (the map's version), 0
	// without one.
	MapVersion int64
	// Leaders holds each shard's leader, by shard name; a shard without
	// one is absent. A route key that does not decode is skipped.
	Leaders map[string]Leader
}

// ReadRouting reads the slot map and the shards' route keys of cluster in
// one transaction: the map and one key per shard that has a leader.
func ReadRouting(ctx context.Context, cli *clientv3.Client, cluster string) (*Routing, error) {
	routes := routesPrefix(cluster)
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(SlotsKey(cluster)),
		clientv3.OpGet(routes, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	r := &Routing{Revision: resp.Header.Revision, Leaders: map[string]Leader{}}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		r.Map, r.MapVersion = kvs[0].Value, kvs[0].ModRevision
		if r.Map == nil {
			r.Map = []byte{} // an empty value is a map that fails to decode, not no map
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		shard := strings.TrimPrefix(string(kv.Key), routes)
		if l, ok := decodeLeader(kv.Value, kv.ModRevision); ok && shard != "" {
			r.Leaders[shard] = l
		}
	}
	return r, nil
}

// decodeLeader decodes a route key's value; its epoch is the key's
// ModRevision, the election's revision (the leader key's CreateRevision).
func decodeLeader(v []byte, modRevision int64) (Leader, bool) {
	var l Leader
	if json.Unmarshal(v, &l) != nil {
		return Leader{}, false
	}
	l.Epoch = uint64(modRevision)
	return l, true
}

// RoutingRetry is how long WatchRouting waits after a whole read failed;
// each failure in a row doubles it, up to RoutingRetryMax.
const RoutingRetry = 500 * time.Millisecond

// RoutingRetryMax bounds WatchRouting's wait between failed reads: how late
// a member's table may catch up once etcd answers again.
const RoutingRetryMax = 4 * time.Second

// routingBackoff is the wait after the failures-th failed read in a row
// (failures >= 1): RoutingRetry doubled each time up to RoutingRetryMax,
// drawn from the upper half of that. Routers fail together (etcd
// unreachable, a cold start of every member) and would otherwise retry
// together: at 300 x 3 such retries, each a read of the whole shards/
// prefix then, were most of what etcd served (docs/cluster-scale.md).
func routingBackoff(failures int) time.Duration {
	d := min(RoutingRetry<<min(failures-1, 8), RoutingRetryMax)
	return d/2 + rand.N(d/2+1)
}

// RoutingReadTimeout bounds one whole read of WatchRouting.
const RoutingReadTimeout = 5 * time.Second

// RoutingHandler is what WatchRouting tells of the routing it holds. Its
// functions run on WatchRouting's goroutine, one at a time.
type RoutingHandler struct {
	// Apply is given the routing after each whole read (whole true) and
	// after each watch response applied to it. rt is WatchRouting's own
	// and changes after Apply returns: Apply must not keep it or change
	// it. ctx is WatchRouting's.
	Apply func(ctx context.Context, rt *Routing, whole bool)
	// Read, if not nil, is told each whole read's outcome, before Apply.
	Read func(err error)
}

// WatchRouting keeps a member's routing current until ctx ends: a whole
// read (ReadRouting, retried after routingBackoff while it fails), then one
// watch on the map and one on the route keys' prefix, both from the
// revision after the read and on the client's one gRPC stream, each event
// applied to the routing held and handed to h.Apply. It reads everything
// again when a watch fails or ends (compaction, etcd without a leader,
// ...).
func WatchRouting(ctx context.Context, cli *clientv3.Client, cluster string, h RoutingHandler) {
	failures := 0
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, RoutingReadTimeout)
		rt, err := ReadRouting(rctx, cli, cluster)
		cancel()
		if h.Read != nil && ctx.Err() == nil {
			h.Read(err)
		}
		if err != nil {
			failures++
			sleepCtx(ctx, routingBackoff(failures))
			continue
		}
		failures = 0
		h.Apply(ctx, rt, true)
		followRouting(ctx, cli, cluster, rt, h)
	}
}

// routingEvent is one watch response, or (ok false) the end of a watch.
type routingEvent struct {
	resp clientv3.WatchResponse
	ok   bool
}

// followRouting applies the watches' events to rt, which was read at
// rt.Revision, until a watch ends.
func followRouting(ctx context.Context, cli *clientv3.Client, cluster string, rt *Routing, h RoutingHandler) {
	// WithRequireLeader: a watch on an etcd member cut off from its
	// cluster's leader ends, rather than wait for events that never come.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	events := make(chan routingEvent)
	watch := func(key string, opts ...clientv3.OpOption) {
		ch := cli.Watch(wctx, key, append(opts, clientv3.WithRev(rt.Revision+1))...)
		go func() {
			for resp := range ch {
				select {
				case events <- routingEvent{resp, true}:
				case <-wctx.Done():
					return
				}
			}
			select {
			case events <- routingEvent{}:
			case <-wctx.Done():
			}
		}()
	}
	slots := SlotsKey(cluster)
	routes := routesPrefix(cluster)
	watch(slots)
	watch(routes, clientv3.WithPrefix())
	for {
		var e routingEvent
		select {
		case <-ctx.Done():
			return
		case e = <-events:
		}
		if !e.ok || e.resp.Err() != nil || e.resp.Canceled {
			return // compacted, no leader, closed: read everything again
		}
		for _, ev := range e.resp.Events {
			put := ev.Type == clientv3.EventTypePut
			if key := string(ev.Kv.Key); key == slots {
				rt.Map, rt.MapVersion = nil, 0
				if put {
					rt.Map, rt.MapVersion = ev.Kv.Value, ev.Kv.ModRevision
					if rt.Map == nil {
						rt.Map = []byte{} // as ReadRouting: an empty value is an invalid map
					}
				}
			} else if shard := strings.TrimPrefix(key, routes); shard != "" && shard != key {
				l, ok := decodeLeader(ev.Kv.Value, ev.Kv.ModRevision)
				if put && ok {
					rt.Leaders[shard] = l
				} else {
					delete(rt.Leaders, shard) // gone, or does not decode: as ReadRouting skips it
				}
			}
		}
		rt.Revision = e.resp.Header.Revision
		h.Apply(ctx, rt, false)
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
