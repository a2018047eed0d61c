package node

// CLUSTER, the Redis Cluster commands, served by cluster members (-etcd
// -cluster) from their view of etcd. A plain node answers as a redis-server
// without cluster-enabled does: every subcommand Redis knows gets "ERR This
// instance has cluster support disabled", once its arity is right.
//
//	CLUSTER KEYSLOT key  -> the key's hash slot (slots.go)
//	CLUSTER MYID         -> this member's node id (clusterNodeID)
//	CLUSTER INFO         -> cluster_state and the slot counts, from etcd
//	CLUSTER SLOTS        -> per range: the owner's leader, then its followers
//	CLUSTER SHARDS       -> per shard: its ranges, its leader and followers
//	CLUSTER NODES        -> one line per member, in Redis' text format
//	READONLY, READWRITE  -> OK; a follower serves the connection's reads of
//	                        its shard's slots, or not (route.go)
//	ASKING               -> OK
//
// ASKING changes nothing: moves are by range and never answer -ASK
// (docs/cluster.md, "Moving slots online"); Redis Cluster clients send
// it, so members accept it.
//
// The other subcommands change the slots, which kvnode cluster does
// (docs/cluster.md, "Slots"): a member refuses them with an error that
// says so.

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv/replicate/coord"
)

func init() {
	// slow: INFO reads etcd, which may take up to its timeout; the event
	// loop must not wait on it.
	register(&command{name: "cluster", arity: -2, slow: true, run: cmdCluster})
	// COMMAND DOCS and INFO as redis-server 7.0.15 answers for CLUSTER;
	// kept here rather than in cmd_command.go's table, with the command.
	commandDocs["cluster"] = commandDoc{group: "cluster", since: "3.0.0", complexity: "Depends on subcommand.",
		acl: []string{"@slow"}, summary: "A container for cluster commands"}
	for _, d := range []struct{ name, summary string }{
		{"readonly", "Enables read queries for a connection to a cluster replica node"},
		{"readwrite", "Disables read queries for a connection to a cluster replica node"},
		{"asking", "Sent by cluster clients after an -ASK redirect"},
	} {
		register(&command{name: d.name, arity: 1, run: cmdClusterConn})
		flags := []string{"loading", "stale", "fast"}
		if d.name == "asking" {
			flags = []string{"fast"}
		}
		commandDocs[d.name] = commandDoc{group: "cluster", since: "3.0.0", complexity: "O(1)",
			flags: flags, acl: []string{"@fast", "@connection"}, summary: d.summary}
	}
}

// cmdClusterConn: READONLY, READWRITE, ASKING.
func cmdClusterConn(n *Node, c *client, _ [][]byte) {
	if _, ok := n.backend.(*clusterBackend); !ok {
		c.fail("ERR This instance has cluster support disabled")
		return
	}
	switch c.cmd.name {
	case "readonly":
		c.readonly = true
	case "readwrite":
		c.readonly = false
	}
	c.conn.WriteString("OK")
}

// clusterSubArity is the arity of every CLUSTER subcommand of Redis 7.0
// (COMMAND INFO cluster), the subcommand counted as the second argument.
var clusterSubArity = map[string]int{
	"addslots": -3, "addslotsrange": -4, "bumpepoch": 2, "count-failure-reports": 3,
	"countkeysinslot": 3, "delslots": -3, "delslotsrange": -4, "failover": -2,
	"flushslots": 2, "forget": 3, "getkeysinslot": 4, "help": 2, "info": 2,
	"keyslot": 3, "links": 2, "meet": -4, "myid": 2, "nodes": 2, "replicas": 3,
	"replicate": 3, "reset": -2, "saveconfig": 2, "set-config-epoch": 3,
	"setslot": -4, "shards": 2, "slaves": 3, "slots": 2,
}

// clusterInfoTimeout bounds CLUSTER INFO's read of etcd.
const clusterInfoTimeout = 2 * time.Second

// cmdCluster: CLUSTER subcommand [arg ...].
func cmdCluster(n *Node, c *client, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	arity, known := clusterSubArity[sub]
	switch {
	case !known:
		c.fail(fmt.Sprintf("ERR unknown subcommand '%.128s'. Try CLUSTER HELP.", args[1]))
		return
	case arity > 0 && len(args) != arity, arity < 0 && len(args) < -arity:
		c.fail(fmt.Sprintf("ERR wrong number of arguments for 'cluster|%s' command", sub))
		return
	}
	b, ok := n.backend.(*clusterBackend)
	if !ok {
		c.fail("ERR This instance has cluster support disabled")
		return
	}
	switch sub {
	case "countkeysinslot":
		cmdClusterCountKeysInSlot(n, c, args) // slotkeys.go
	case "getkeysinslot":
		cmdClusterGetKeysInSlot(n, c, args)
	case "keyslot":
		c.conn.WriteInt(int(keySlot(args[2])))
	case "myid":
		c.conn.WriteBulkString(clusterNodeID(n.cfg.Cluster.Name, b.r.ID()))
	case "slots":
		v, err := b.readClusterView(n.cfg.Cluster.Name)
		if err != nil {
			c.fail("ERR " + err.Error())
			return
		}
		writeClusterSlots(c, n.cfg.Cluster.Name, v)
	case "shards", "nodes":
		v, err := b.readClusterView(n.cfg.Cluster.Name)
		if err != nil {
			c.fail("ERR " + err.Error())
			return
		}
		if sub == "shards" {
			writeClusterShards(c, n.cfg.Cluster.Name, v)
		} else {
			c.conn.WriteBulkString(clusterNodes(n.cfg.Cluster.Name, b.r.ID(), v))
		}
	case "info":
		info, err := b.clusterInfo(n.cfg.Cluster.Name)
		if err != nil {
			c.fail("ERR " + err.Error())
			return
		}
		c.conn.WriteVerbatim(info)
	default:
		c.fail(fmt.Sprintf("ERR CLUSTER %s is not served by kvnode: slots are assigned with kvnode cluster (init, and slot moves), not by CLUSTER commands", strings.ToUpper(sub)))
	}
}

// clusterNodeID is a member's Redis Cluster node id: Redis' are 40 hex
// digits, and clients and redis-cli --cluster take them as such, so a
// member's is the SHA-1 of its cluster's name and its own id (its
// certificate name), stable across restarts and distinct across clusters.
func clusterNodeID(cluster, id string) string {
	h := sha1.Sum([]byte("logkv\x00" + cluster + "\x00" + id))
	return hex.EncodeToString(h[:])
}

// clusterView is the cluster as read from etcd in one transaction: the
// slot map (absent: this member's shard owns every slot), the members and
// each shard's leader.
type clusterView struct {
	slots    *slotMap
	members  []coord.MemberInfo      // sorted by id
	leaders  map[string]coord.Leader // by shard
	progress map[string]uint64       // durable seq by member id, as reported
}

// readClusterView reads the view, or returns an error that says what to do.
func (b *clusterBackend) readClusterView(cluster string) (*clusterView, error) {
	m := b.member.Load()
	if m == nil {
		return nil, fmt.Errorf("this cluster member has not joined yet; retry")
	}
	prefix := "/logkv/" + cluster + "/"
	ctx, cancel := context.WithTimeout(context.Background(), clusterInfoTimeout)
	defer cancel()
	resp, err := b.cli.Txn(ctx).Then(
		clientv3.OpGet(slotsKey(cluster)),
		clientv3.OpGet(prefix+"members/", clientv3.WithPrefix()),
		// The leader keys, among the shards' other keys.
		clientv3.OpGet(prefix+"shards/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("cannot read the cluster from etcd (%v); retry, or check etcd", err)
	}
	v := &clusterView{leaders: map[string]coord.Leader{}, progress: map[string]uint64{}}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		v.slots, err = decodeSlotMap(kvs[0].Value, kvs[0].ModRevision)
		if err != nil {
			return nil, fmt.Errorf("%v (key %s)", err, slotsKey(cluster))
		}
	} else {
		v.slots = &slotMap{Shards: []string{m.Config().Shard}, Ranges: []slotRange{{First: 0, Last: numSlots - 1}}}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var mi coord.MemberInfo
		if json.Unmarshal(kv.Value, &mi) != nil {
			continue // another version's member; it is not counted
		}
		v.members = append(v.members, mi)
	}
	sort.Slice(v.members, func(i, j int) bool { return v.members[i].ID < v.members[j].ID })
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		// shards/<shard>/leader; a shard name holds no '/'.
		rest := strings.TrimPrefix(string(kv.Key), prefix+"shards/")
		if _, id, ok := strings.Cut(rest, "/progress/"); ok {
			var p coord.Progress
			if json.Unmarshal(kv.Value, &p) == nil {
				v.progress[id] = p.Durable
			}
			continue
		}
		shard, ok := strings.CutSuffix(rest, "/leader")
		var l coord.Leader
		if !ok || strings.Contains(shard, "/") || json.Unmarshal(kv.Value, &l) != nil {
			continue
		}
		l.Epoch = uint64(kv.CreateRevision) // the epoch is the key's CreateRevision (coord)
		v.leaders[shard] = l
	}
	return v, nil
}

// clusterInfo is CLUSTER INFO's text. A slot is ok while its shard has a
// leader; the cluster is ok while every slot is.
func (b *clusterBackend) clusterInfo(cluster string) (string, error) {
	v, err := b.readClusterView(cluster)
	if err != nil {
		return "", err
	}
	owning := map[uint16]bool{}
	ok := 0
	for _, r := range v.slots.Ranges {
		owning[r.Shard] = true
		if _, led := v.leaders[v.slots.Shards[r.Shard]]; led {
			ok += int(r.Last) - int(r.First) + 1
		}
	}
	state := "ok"
	if ok != numSlots {
		state = "fail"
	}
	var epoch uint64
	if m := b.member.Load(); m != nil {
		if l := m.Leader(); l != nil {
			epoch = l.Epoch
		}
	}
	var s strings.Builder
	for _, f := range []struct {
		name string
		v    any
	}{
		{"cluster_state", state},
		{"cluster_slots_assigned", numSlots},
		{"cluster_slots_ok", ok},
		{"cluster_slots_pfail", 0},
		{"cluster_slots_fail", numSlots - ok},
		{"cluster_known_nodes", len(v.members)},
		{"cluster_size", len(owning)},
		// Redis' config epochs; ours are the leader keys' etcd revisions
		// (docs/cluster.md, "Election"), ordered the same way.
		{"cluster_current_epoch", epoch},
		{"cluster_my_epoch", epoch},
		{"cluster_stats_messages_sent", 0},
		{"cluster_stats_messages_received", 0},
		{"total_cluster_links_buffer_limit_exceeded", 0},
	} {
		fmt.Fprintf(&s, "%s:%v\r\n", f.name, f.v)
	}
	return s.String(), nil
}

// writeClusterSlots writes CLUSTER SLOTS: per range of the map, its first
// and last slot, then its shard's leader and the shard's other members,
// each as [ip, port, node id, {}] (Redis 7's shape; the last element is
// the networking metadata, empty here). A range whose shard has no leader
// is left out, as Redis leaves out unserved slots.
func writeClusterSlots(c *client, cluster string, v *clusterView) {
	type entry struct {
		r     slotRange
		nodes []coord.MemberInfo
	}
	var out []entry
	for _, r := range v.slots.Ranges {
		shard := v.slots.Shards[r.Shard]
		l, ok := v.leaders[shard]
		if !ok {
			continue
		}
		nodes := []coord.MemberInfo{{ID: l.ID, RESP: l.RESP}}
		for _, mi := range v.members {
			if mi.Shard == shard && mi.ID != l.ID {
				nodes = append(nodes, mi)
			}
		}
		out = append(out, entry{r, nodes})
	}
	c.conn.WriteArray(len(out))
	for _, e := range out {
		c.conn.WriteArray(2 + len(e.nodes))
		c.conn.WriteInt(int(e.r.First))
		c.conn.WriteInt(int(e.r.Last))
		for _, mi := range e.nodes {
			host, port, err := net.SplitHostPort(mi.RESP)
			p, perr := strconv.Atoi(port)
			if err != nil || perr != nil {
				host, p = "", 0 // Redis' answer for a node it cannot reach
			}
			c.conn.WriteArray(4)
			c.conn.WriteBulkString(host)
			c.conn.WriteInt(p)
			c.conn.WriteBulkString(clusterNodeID(cluster, mi.ID))
			c.conn.WriteMap(0)
		}
	}
}

// shardMembers returns a shard's members for CLUSTER SHARDS and NODES: its
// leader first (named by its leader key, as in CLUSTER SLOTS), then its
// other live members by id.
func (v *clusterView) shardMembers(shard string) (leader *coord.MemberInfo, followers []coord.MemberInfo) {
	if l, ok := v.leaders[shard]; ok {
		leader = &coord.MemberInfo{ID: l.ID, Shard: shard, RESP: l.RESP}
	}
	for _, mi := range v.members {
		if mi.Shard == shard && (leader == nil || mi.ID != leader.ID) {
			followers = append(followers, mi)
		}
	}
	return leader, followers
}

// allShards is the map's shards, then the shards live members name that
// the map does not (they own no slot), sorted.
func (v *clusterView) allShards() []string {
	shards := append([]string(nil), v.slots.Shards...)
	seen := map[string]bool{}
	for _, s := range shards {
		seen[s] = true
	}
	var extra []string
	for _, mi := range v.members {
		if !seen[mi.Shard] {
			seen[mi.Shard] = true
			extra = append(extra, mi.Shard)
		}
	}
	sort.Strings(extra)
	return append(shards, extra...)
}

// shardRanges returns the map's ranges owned by shard index i.
func (v *clusterView) shardRanges(i int) []slotRange {
	var out []slotRange
	for _, r := range v.slots.Ranges {
		if int(r.Shard) == i {
			out = append(out, r)
		}
	}
	return out
}

// splitAddr is a member's RESP address as Redis gives a node's: ip and
// port, "" and 0 if it cannot be read.
func splitAddr(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil {
		return "", 0
	}
	return host, p
}

// writeClusterShards writes CLUSTER SHARDS as redis-server 7.0.15 shapes
// it: per shard a map {slots: [first, last, ...], nodes: [node, ...]},
// each node a map of id, port, ip, endpoint, role (master or replica),
// replication-offset (here the member's durable seq as it last reported)
// and health (online: a live member; a shard's leader is named by its key
// and a follower by its lease, both gone once they die). RESP2 gets the
// maps as flat arrays, as from Redis.
func writeClusterShards(c *client, cluster string, v *clusterView) {
	shards := v.allShards()
	c.conn.WriteArray(len(shards))
	for i, s := range shards {
		var ranges []slotRange
		if i < len(v.slots.Shards) {
			ranges = v.shardRanges(i)
		}
		leader, followers := v.shardMembers(s)
		c.conn.WriteMap(2)
		c.conn.WriteBulkString("slots")
		c.conn.WriteArray(2 * len(ranges))
		for _, r := range ranges {
			c.conn.WriteInt(int(r.First))
			c.conn.WriteInt(int(r.Last))
		}
		c.conn.WriteBulkString("nodes")
		n := len(followers)
		if leader != nil {
			n++
		}
		c.conn.WriteArray(n)
		node := func(mi coord.MemberInfo, role string) {
			host, port := splitAddr(mi.RESP)
			c.conn.WriteMap(7)
			c.conn.WriteBulkString("id")
			c.conn.WriteBulkString(clusterNodeID(cluster, mi.ID))
			c.conn.WriteBulkString("port")
			c.conn.WriteInt(port)
			c.conn.WriteBulkString("ip")
			c.conn.WriteBulkString(host)
			c.conn.WriteBulkString("endpoint")
			c.conn.WriteBulkString(host)
			c.conn.WriteBulkString("role")
			c.conn.WriteBulkString(role)
			c.conn.WriteBulkString("replication-offset")
			c.conn.WriteInt64(int64(v.progress[mi.ID]))
			c.conn.WriteBulkString("health")
			c.conn.WriteBulkString("online")
		}
		if leader != nil {
			node(*leader, "master")
		}
		for _, f := range followers {
			node(f, "replica")
		}
	}
}

// clusterNodes is CLUSTER NODES' text: one line per member, as Redis
// writes them:
//
//	<id> <ip:port@cport> <flags> <master id|-> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot range> ...
//
// The cluster bus port is 0 (members talk through etcd, not a bus);
// ping-sent and pong-recv are 0; the config epoch is the shard leader's
// epoch. A shard's leader is a master with the shard's ranges; its other
// members are slaves of it; members of a shard without a leader are
// masters with no slots, as Redis shows a node no one replicates.
func clusterNodes(cluster, myID string, v *clusterView) string {
	var s strings.Builder
	line := func(mi coord.MemberInfo, flags, master string, epoch uint64, ranges []slotRange) {
		if mi.ID == myID {
			flags = "myself," + flags
		}
		host, port := splitAddr(mi.RESP)
		fmt.Fprintf(&s, "%s %s:%d@0 %s %s 0 0 %d connected", clusterNodeID(cluster, mi.ID), host, port, flags, master, epoch)
		for _, r := range ranges {
			if r.First == r.Last {
				fmt.Fprintf(&s, " %d", r.First)
			} else {
				fmt.Fprintf(&s, " %d-%d", r.First, r.Last)
			}
		}
		s.WriteByte('\n')
	}
	for i, sh := range v.allShards() {
		var ranges []slotRange
		if i < len(v.slots.Shards) {
			ranges = v.shardRanges(i)
		}
		leader, followers := v.shardMembers(sh)
		master := "-"
		var epoch uint64
		if leader != nil {
			epoch = v.leaders[sh].Epoch
			master = clusterNodeID(cluster, leader.ID)
			line(*leader, "master", "-", epoch, ranges)
		}
		for _, f := range followers {
			if leader == nil {
				line(f, "master", "-", 0, nil)
			} else {
				line(f, "slave", master, epoch, nil)
			}
		}
	}
	return s.String()
}
