package coord

import (
	"context"
	"encoding/json"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// What a member routes by, as etcd holds it: the slot map (its value is
// node's to decode: node/slots.go) and each shard's leader. A member reads
// both in one revision (ReadRouting), then waits for the map or a leader key
// of the map's shards to change after that revision (AwaitRoutingChange),
// and reads again whole. Changes are rare (a map change, a failover), and a
// whole read is simpler to get right than applying events one by one.
//
// These two are the etcd half of node's slot watcher (node/route.go), here
// so that cmd/kvclustersim runs the very requests a kvnode makes without a
// whole kvnode. docs/cluster-scale.md measures what they cost etcd.

// SlotsKey is the slot map's key: /logkv/<cluster>/slots.
func SlotsKey(cluster string) string { return Prefix(cluster) + "slots" }

// LeaderKey is shard's leader key: /logkv/<cluster>/shards/<shard>/leader.
func LeaderKey(cluster, shard string) string {
	return Prefix(cluster) + "shards/" + shard + "/leader"
}

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
	// one is absent. A leader key that does not decode is skipped.
	Leaders map[string]Leader
}

// ReadRouting reads the slot map and the shards' leader keys of cluster in
// one transaction. It reads the whole shards/ prefix, progress reports
// included, since etcd cannot select keys by suffix (what that costs at
// scale: docs/cluster-scale.md).
func ReadRouting(ctx context.Context, cli *clientv3.Client, cluster string) (*Routing, error) {
	shards := Prefix(cluster) + "shards/"
	resp, err := cli.Txn(ctx).Then(
		clientv3.OpGet(SlotsKey(cluster)),
		clientv3.OpGet(shards, clientv3.WithPrefix()),
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
		shard, ok := strings.CutSuffix(strings.TrimPrefix(string(kv.Key), shards), "/leader")
		var l Leader
		if !ok || strings.Contains(shard, "/") || json.Unmarshal(kv.Value, &l) != nil {
			continue
		}
		l.Epoch = uint64(kv.CreateRevision)
		r.Leaders[shard] = l
	}
	return r, nil
}

// AwaitRoutingChange returns once the slot map or the leader key of one of
// shards changes after rev, a watch fails, or ctx ends: one watch per key,
// from rev+1, all on one gRPC stream, cancelled on return.
func AwaitRoutingChange(ctx context.Context, cli *clientv3.Client, cluster string, rev int64, shards []string) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	changed := make(chan struct{}, 1)
	watch := func(key string) {
		for range cli.Watch(wctx, key, clientv3.WithRev(rev+1)) {
			break // any event, or an error: read everything again
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	go watch(SlotsKey(cluster))
	for _, s := range shards {
		go watch(LeaderKey(cluster, s))
	}
	select {
	case <-ctx.Done():
	case <-changed:
	}
}
