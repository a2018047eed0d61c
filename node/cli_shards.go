package node

// kvnode cluster init and the slot map in kvnode cluster status
// (docs/cluster.md, "Slots").

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv/replicate/coord"
)

// clusterInit is `kvnode cluster init -shards a,b,c`: it writes the first
// slot map, the slots spread evenly over the shards in the order named,
// in one etcd transaction that fails if a map exists (CreateRevision 0),
// so two operators never both initialize, and a map is never overwritten
// (changing it is moving slots, next).
//
// It refuses while a live member is in a shard the map does not name: that
// member's data would be unreachable (its shard owns no slot).
func clusterInit(ctx context.Context, cli *clientv3.Client, cluster, shardList string, stdout, stderr io.Writer) int {
	if shardList == "" {
		fmt.Fprintln(stderr, "kvnode cluster init: name the shards: -shards a,b,c (the slots are spread evenly over them, in that order)")
		return 2
	}
	shards := strings.Split(shardList, ",")
	m, err := evenSlotMap(shards)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster init: %v\n", err)
		return 2
	}
	val, err := m.encode()
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster init: %v\n", err)
		return 2
	}
	key := slotsKey(cluster)
	if old, err := readSlotMap(ctx, cli, cluster); err != nil || old != nil {
		if err == nil {
			err = fmt.Errorf("cluster %s has a slot map already (%s); see it with kvnode cluster status", cluster, key)
		}
		fmt.Fprintf(stderr, "kvnode cluster init: %v\n", err)
		return 1
	}
	members, err := cli.Get(ctx, "/logkv/"+cluster+"/members/", clientv3.WithPrefix())
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster init: read the members from etcd: %v\n", err)
		return 1
	}
	named := map[string]bool{}
	for _, s := range shards {
		named[s] = true
	}
	var stray []string
	for _, kv := range members.Kvs {
		var mi coord.MemberInfo
		if json.Unmarshal(kv.Value, &mi) == nil && !named[mi.Shard] {
			stray = append(stray, mi.ID+" (shard "+mi.Shard+")")
		}
	}
	if len(stray) > 0 {
		sort.Strings(stray)
		fmt.Fprintf(stderr, "kvnode cluster init: members %s are in shards the map would not name, so their data would be unreachable: "+
			"name their shards in -shards, or stop them first\n", strings.Join(stray, ", "))
		return 1
	}
	// The transaction, not the read above, is what makes init happen once.
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).Commit()
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster init: write %s: %v\n", key, err)
		return 1
	}
	if !resp.Succeeded {
		fmt.Fprintf(stderr, "kvnode cluster init: cluster %s has a slot map already (%s); see it with kvnode cluster status\n", cluster, key)
		return 1
	}
	fmt.Fprintf(stdout, "slot map of cluster %s written (version %d):\n", cluster, resp.Header.Revision)
	m.Version = resp.Header.Revision
	writeSlotMap(stdout, m, nil)
	return 0
}

// readSlotMap reads cluster's slot map, nil if it has none.
func readSlotMap(ctx context.Context, cli *clientv3.Client, cluster string) (*slotMap, error) {
	resp, err := cli.Get(ctx, slotsKey(cluster))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", slotsKey(cluster), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	m, err := decodeSlotMap(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	if err != nil {
		return nil, fmt.Errorf("%w (key %s)", err, slotsKey(cluster))
	}
	return m, nil
}

// writeSlotMap prints each shard's slot count and ranges, and its leader
// when leaders has it.
func writeSlotMap(w io.Writer, m *slotMap, leaders map[string]*coord.Leader) {
	fmt.Fprintf(w, "slot map version %d, %d shards\n", m.Version, len(m.Shards))
	count := make([]int, len(m.Shards))
	ranges := make([][]string, len(m.Shards))
	for _, r := range m.Ranges {
		count[r.Shard] += int(r.Last) - int(r.First) + 1
		ranges[r.Shard] = append(ranges[r.Shard], fmt.Sprintf("%d-%d", r.First, r.Last))
	}
	fmt.Fprintf(w, "%-16s %6s  %-24s %s\n", "SHARD", "SLOTS", "LEADER", "RANGES")
	for i, s := range m.Shards {
		leader := "-"
		if l := leaders[s]; l != nil {
			leader = l.ID + " " + l.RESP
		} else if leaders != nil {
			leader = "none"
		}
		fmt.Fprintf(w, "%-16s %6d  %-24s %s\n", s, count[i], leader, strings.Join(ranges[i], ","))
	}
	for _, mv := range m.Moves {
		fmt.Fprintf(w, "moving %d-%d from %s to %s: %s\n", mv.First, mv.Last, m.Shards[mv.From], m.Shards[mv.To], mv.State)
	}
}

// clusterStatus prints the slot map, if the cluster has one, then each
// shard's members (only shard's with -shard; shard "0", the default, when
// the cluster has no map).
func clusterStatus(ctx context.Context, cli *clientv3.Client, cluster, shard string, stdout, stderr io.Writer) int {
	m, err := readSlotMap(ctx, cli, cluster)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode cluster status: %v\n", err)
		return 1
	}
	shards := []string{shard}
	if m != nil && shard == "" {
		shards = m.Shards
	}
	states := map[string]*coord.Shard{}
	leaders := map[string]*coord.Leader{}
	for _, s := range shards {
		st, err := coord.ReadShard(ctx, cli, cluster, s)
		if err != nil {
			fmt.Fprintf(stderr, "kvnode cluster status: %v\n", err)
			return 1
		}
		states[s] = st
		leaders[s] = st.Leader
	}
	if m != nil {
		writeSlotMap(stdout, m, leaders)
		writeMoveProgress(ctx, cli, cluster, m, stdout)
		fmt.Fprintln(stdout)
	}
	for i, s := range shards {
		if m != nil || s != "" {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "shard %s: ", coordShard(s))
		}
		writeStatus(stdout, cluster, states[s])
	}
	return 0
}

// coordShard is coord's name for shard s ("" is "0").
func coordShard(s string) string {
	if s == "" {
		return "0"
	}
	return s
}
