package node

// Routing by hash slot (docs/cluster.md, "Routing (the command path)"): a
// cluster member serves only the keys of the slots its shard owns, and
// answers the rest as a Redis Cluster node does, so that Redis Cluster
// clients (go-redis ClusterClient, redis-py RedisCluster, redis-cli -c)
// find the right shard by themselves.
//
//	etcd: slots, leaders/* --watchSlots (read, then events)--> router.table (one atomic swap)
//	request --run--> misrouted -> route: table; one shard's leader: done; else key slots, owner
//	           -> serve here | -MOVED slot host:port | -CROSSSLOT | -CLUSTERDOWN
//
// The table is read with one atomic load and no lock. A plain node (no
// cluster) pays a type assertion; a member of a cluster without a slot map
// pays that, one load (the table is notSharded) and unconfirmed's one (a
// leader's two), read first and through confirmedTable, a call (its test
// hook keeps it from inlining: about 1-2 ns); the leader of a shard that owns every slot (a one-shard
// cluster) pays for a one-key command those, two compares and
// IsFollower's four loads, no CRC; any other sharded member pays one CRC
// per key, an array load and a compare. Nothing on the path that serves a
// command here allocates.

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/logkv/logkv/replicate/coord"
)

// Redis Cluster's replies, word for word (redis-server 7.0.15 with
// cluster-enabled yes).
const (
	errCrossSlot   = "CROSSSLOT Keys in request don't hash to the same slot"
	errClusterDown = "CLUSTERDOWN The cluster is down"
	errSelectMode  = "ERR SELECT is not allowed in cluster mode"
)

// router is a cluster member's slot table: nil until the member has read
// etcd once (keyed commands then answer CLUSTERDOWN, since a map may exist
// that gives their slots to another shard), notSharded when the cluster
// has no slot map (this shard owns every slot, and nothing is checked), or
// the map's table.
type router struct {
	table atomic.Pointer[slotTable]
	// loadErrors counts slot maps that failed to decode (kept the old).
	loadErrors atomic.Int64
	// applied is the map version apply last decoded (or failed to), so
	// that a leader's event does not decode the map again; the watcher's
	// goroutine's alone.
	applied int64
	// emptied reports whether the last table installed that named this
	// member's shard gave it no slot and no move into it: moves emptied
	// the shard, so a map without it is remove-shard's, and the sweep may
	// delete every row (dropUnowned). False on a member that never held
	// such a table, which keeps its rows under a map that omits its shard.
	emptied atomic.Bool
}

// notSharded is the table of a cluster without a slot map.
var notSharded = &slotTable{}

// misrouted answers a command that this node must not run here: a key of
// a slot another shard owns (MOVED), keys of two slots (CROSSSLOT), a slot
// whose shard has no leader (CLUSTERDOWN); and reports whether it did. run
// calls it before anything else checks the command. It is small enough to
// inline (go build -gcflags=-m says so), so a plain node pays a type
// assertion and no call; a member's decision is route's.
func (n *Node) misrouted(c *client, cm *command, args [][]byte) bool {
	b, ok := n.backend.(*clusterBackend)
	return ok && n.route(c, b, cm, args)
}

// route decides for a cluster member. The common cases come first, and
// cost neither a CRC nor a lookup in the table: a cluster without a slot
// map (notSharded), and a command of one key on the leader of a shard that
// owns every slot with no move in flight (a one-shard cluster: sole), once
// that leader confirmed its table. Both are what the checks below would
// decide (the slot is owned, nothing moves, the node leads); anything else
// (a follower, a multi-key command, which may still be CROSSSLOT, EXEC,
// SELECT, an unconfirmed leader) takes the whole path.
func (n *Node) route(c *client, b *clusterBackend, cm *command, args [][]byte) bool {
	t, fresh := b.confirmedTable()
	switch {
	case t == notSharded:
		if fresh {
			return false
		}
	case t != nil && t.sole >= 0 && t.sole == t.self && cm != nil && cm.first > 0 && cm.first == cm.last:
		if fresh && !b.IsFollower() {
			return false
		}
	}
	return n.routeSlow(c, b, t, fresh, cm, args)
}

// routeSlow is route's whole path, for a member that has a slot map (or has
// not read etcd yet: t is nil), or that leads an epoch whose table it has
// not confirmed yet (fresh is false: t may be notSharded). t and fresh are
// confirmedTable's, read once: a second read of either could pair a table
// with a confirmation it does not have.
func (n *Node) routeSlow(c *client, b *clusterBackend, t *slotTable, fresh bool, cm *command, args [][]byte) bool {
	// What fails these checks gets its own error from run, as in Redis,
	// where arity and authentication come before redirection.
	if cm == nil || (cm.arity > 0 && len(args) != cm.arity) || (cm.arity < 0 && len(args) < -cm.arity) ||
		(!c.authed && !cm.noAuth) {
		return false
	}
	var slot int
	readOnly := !cm.write
	switch {
	case cm == execCommand:
		m := c.ks.multi
		if m == nil || m.aborted {
			return false // EXEC answers EXEC without MULTI, or EXECABORT
		}
		slot = -1
		for _, q := range m.cmds {
			s, cross := commandSlot(q.cm, q.args)
			if cross || (s >= 0 && slot >= 0 && s != slot) {
				return n.refuseExec(c, errCrossSlot)
			}
			if s >= 0 {
				slot = s
			}
		}
		readOnly = !m.writes
	case cm == selectCommand:
		if t != nil && t != notSharded && string(args[1]) != "0" {
			c.fail(errSelectMode)
			return true
		}
		return false
	case cm.first == 0:
		return false // keyless: runs here, as in Redis Cluster
	default:
		var cross bool
		slot, cross = commandSlot(cm, args)
		if cross {
			return n.refuse(c, errCrossSlot)
		}
	}
	if slot < 0 {
		return false
	}
	if !fresh {
		// A new leader's table may predate a flip, or the map: refused,
		// reads too, until runMoves confirmed it (woken here), or reads
		// would go back in time and two shards serve one slot.
		b.moves.wakeConfirm()
		if cm == execCommand {
			return n.refuseExec(c, errTableUnconfirmedMsg)
		}
		return n.refuse(c, errTableUnconfirmedMsg)
	}
	msg := t.moveRedirect(uint16(slot), b.moves.slotPaused)
	if msg == "" {
		msg = t.redirect(uint16(slot), readOnly && c.readonly, b.IsFollower())
	}
	if msg == "" {
		return false
	}
	if cm == execCommand {
		return n.refuseExec(c, msg)
	}
	return n.refuse(c, msg)
}

// refuse answers msg to a command; in MULTI it also dooms the transaction
// (EXEC answers EXECABORT), as Redis' flagTransaction.
func (n *Node) refuse(c *client, msg string) bool {
	if c.ks.multi != nil {
		c.ks.multi.aborted = true
	}
	c.fail(msg)
	return true
}

// refuseExec answers msg to EXEC and discards the transaction, as Redis'
// discardTransaction: nothing of it runs.
func (n *Node) refuseExec(c *client, msg string) bool {
	c.ks.multi = nil
	n.unwatchAll(c)
	c.fail(msg)
	return true
}

// commandSlot returns the slot of a command's keys (the positions COMMAND
// GETKEYS reports), -1 if it names none, and whether they are of two slots
// or more. It does not allocate.
func commandSlot(cm *command, args [][]byte) (slot int, cross bool) {
	if cm == nil || cm.first == 0 || cm.first >= len(args) {
		return -1, false
	}
	last := cm.last
	if last < 0 {
		last += len(args)
	}
	last = min(last, len(args)-1)
	slot = -1
	for i := cm.first; i <= last; i += max(cm.step, 1) {
		s := int(keySlot(args[i]))
		if slot >= 0 && s != slot {
			return slot, true
		}
		slot = s
	}
	return slot, false
}

// redirect is the reply for a command on slot s at this node, "" if the
// node serves it: its shard owns s and it leads the shard, or it is a
// follower, the client sent READONLY and the command only reads (readOK).
// Otherwise a Redis Cluster replica's answer: MOVED to the owner's leader
// (its own leader for its own slots), CLUSTERDOWN while that shard has
// none. t nil (etcd not read yet) is CLUSTERDOWN.
func (t *slotTable) redirect(s uint16, readOK, follower bool) string {
	if t == nil {
		return errClusterDown
	}
	owner := int(t.owner[s])
	if owner == t.self {
		// A node that etcd names leader but that has not taken over yet
		// is not sent to itself: it answers as it does (READONLY or
		// TRYAGAIN, which clients retry) until it leads.
		if !follower || readOK || t.leaders[owner] == t.selfAddr {
			return ""
		}
	}
	addr := t.leaders[owner]
	if addr == "" {
		return errClusterDown
	}
	return "MOVED " + strconv.Itoa(int(s)) + " " + addr
}

// selectCommand is SELECT's table entry. Set in init, once commands.go's
// init registered it (a file's init runs after those of files before it by
// name).
var selectCommand *command

func init() {
	if selectCommand = commandTable["select"]; selectCommand == nil {
		panic("node: route.go's init ran before SELECT was registered")
	}
}

// Watching etcd (coord.WatchRouting): one whole read of the slot map and
// every shard's route key (leaders/<shard>, which each election writes
// beside its leader key), in one revision, then two watches from that
// revision on, the map's key and the leaders/ prefix, and each event is
// applied to the table held: a new map version is decoded and becomes a
// new table, a route key's put or delete changes that shard's address in a
// copy of the table held. A change thus costs each member one watch event;
// the whole read again happens only when a watch fails (etcd compacted
// past it, or lost its leader). Re-reading everything on every event, as
// this did first, and then watching every shard's leader key, made every
// change anywhere cost every member a read of the whole shards/ prefix,
// and then S + 1 watches a member: docs/cluster-scale.md measures each.

// watchSlots keeps b.route's table current until ctx ends.
func (b *clusterBackend) watchSlots(ctx context.Context) {
	failing := false // logged once per outage, not every retry
	name := b.n.cfg.Cluster.Name
	coord.WatchRouting(ctx, b.cli, name, coord.RoutingHandler{
		Read: func(err error) {
			switch {
			case err != nil && !failing:
				b.n.log.Warn("cluster: cannot read the slot map from etcd; routing by the table held, retrying", "err", err)
				failing = true
			case err == nil && failing:
				b.n.log.Info("cluster: slot map read again from etcd")
				failing = false
			}
		},
		Apply: func(ctx context.Context, rt *coord.Routing, _ bool) {
			moveStage(ctx, "route-read")
			if err := b.route.apply(rt, b.myShard(), b.n.Addr()); err != nil {
				b.route.loadErrors.Add(1)
				// Keep the table held: a map that does not decode is never
				// partly used. The next change of the key is the fix.
				b.n.log.Error("cluster: the slot map in etcd is invalid; routing by the one held until it is fixed",
					"key", slotsKey(name), "err", err)
			}
		},
	})
}

// myShard is the shard this member joined.
func (b *clusterBackend) myShard() string {
	if s := b.n.cfg.Cluster.Shard; s != "" {
		return s
	}
	return "0" // coord's default
}

// apply makes the table reflect rt, for a member of shard at selfAddr: no
// map is notSharded; a map version not seen before is decoded and becomes
// the table (unless a newer one is held: installFlip's); then the leaders
// of the table held are made rt's. It returns the map's decoding error,
// the table held kept. Only the watcher calls it (r.applied is its own).
func (r *router) apply(rt *coord.Routing, shard, selfAddr string) error {
	if rt.Map == nil {
		r.applied = 0
		r.table.Store(notSharded)
		return nil
	}
	var err error
	if rt.MapVersion != r.applied {
		r.applied = rt.MapVersion
		var m *slotMap
		if m, err = decodeSlotMap(rt.Map, rt.MapVersion); err == nil {
			t := m.table()
			t.self = slices.Index(m.Shards, shard)
			t.selfAddr = selfAddr
			t.leaders = leaderAddrs(m.Shards, rt.Leaders)
			// A map older than the one held is one a flip installed first
			// (installFlip) while this one was on its way: keep the newer.
			if r.install(t, func(old *slotTable) bool { return old.version <= t.version }) && t.self >= 0 {
				r.emptied.Store(t.holdsNothing())
			}
		}
	}
	r.setLeaders(rt.Leaders)
	return err
}

// setLeaders gives the table held rt's leaders (by shard name), in a copy
// swapped in by compare-and-swap, when one differs.
func (r *router) setLeaders(leaders map[string]coord.Leader) {
	for {
		old := r.table.Load()
		if old == nil || old == notSharded {
			return
		}
		addrs := leaderAddrs(old.shards, leaders)
		if slices.Equal(addrs, old.leaders) {
			return
		}
		t := *old // 32 KiB: a leader changes at a failover, rarely
		t.leaders = addrs
		if r.table.CompareAndSwap(old, &t) {
			return
		}
	}
}

// leaderAddrs returns the RESP address of each shard's leader, "" for a
// shard without one.
func leaderAddrs(shards []string, leaders map[string]coord.Leader) []string {
	addrs := make([]string, len(shards))
	for i, s := range shards {
		addrs[i] = leaders[s].RESP
	}
	return addrs
}

// install swaps t in unless the table held is a sharded one that newer
// does not accept, and reports whether it did. Two goroutines install
// tables (the watcher, and a target after its flip), so the check and the
// swap are one compare-and-swap: a table never goes back in time.
func (r *router) install(t *slotTable, newer func(old *slotTable) bool) bool {
	for {
		old := r.table.Load()
		if old != nil && old != notSharded && !newer(old) {
			return false
		}
		if r.table.CompareAndSwap(old, t) {
			return true
		}
	}
}

// installFlip swaps in the map a flip of this node's has just written, at
// once, rather than when the watch brings it back. Until this node's table
// shows the flip, the source (which may see it first) answers MOVED here
// and this node, still seeing the move switching, answers TRYAGAIN: a
// Redis Cluster client follows MOVED at once and backs off only on
// TRYAGAIN, so a slow watch here used up a client's redirects
// (go-redis's default is 3) and failed its command. The leaders are the
// held table's: a flip changes no shard and no leader key. When the held
// table names other shards (it lags an added shard), the watch brings both.
// The leaders are taken again if the swap loses to the watcher (a leader's
// event applied meanwhile), so that they are never older than the held.
func (b *clusterBackend) installFlip(m *slotMap) {
	for {
		old := b.route.table.Load()
		if old == nil || old == notSharded || !slices.Equal(old.shards, m.Shards) || old.version >= m.Version {
			return
		}
		t := m.table()
		t.self, t.selfAddr, t.leaders = old.self, old.selfAddr, old.leaders
		if b.route.table.CompareAndSwap(old, t) {
			if t.self >= 0 {
				b.route.emptied.Store(t.holdsNothing())
			}
			return
		}
	}
}

// clusterInfoSection is INFO's Cluster section: cluster_enabled is 1 on a
// cluster member (it answers CLUSTER and routes by the slot map), 0 on a
// plain node, as a redis-server without cluster-enabled says.
func (n *Node) clusterInfoSection(add func(string, any)) {
	b, ok := n.backend.(*clusterBackend)
	if !ok {
		add("cluster_enabled", 0)
		return
	}
	add("cluster_enabled", 1)
	add("cluster_shard", b.myShard())
	switch t := b.route.table.Load(); t {
	case nil:
		add("cluster_slot_map", "unknown")
	case notSharded:
		add("cluster_slot_map", "none")
	default:
		add("cluster_slot_map", "yes")
		add("cluster_slot_map_version", t.version)
		owned := 0
		for _, o := range t.owner {
			if int(o) == t.self {
				owned++
			}
		}
		add("cluster_slots_owned", owned)
	}
	add("cluster_slot_map_errors", b.route.loadErrors.Load())
	b.moveStats.info(add)
}
