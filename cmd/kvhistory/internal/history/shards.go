package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logkv/logkv/replicate/coord"
)

// Shards (Config.Shards): the nodes form a cluster of shards, each a
// replica group of Config.PerShard nodes electing its leader through etcd,
// and kvnode cluster init spreads the 16384 hash slots over them. Clients
// route as Redis Cluster clients do, but by hand so that every outcome is
// known: a key's slot (CRC16, hash tags) picks the node last known to own
// it (CLUSTER SLOTS at the start); -MOVED updates the slot's node and
// retries, -ASK sends ASKING and the command to the named node once. The
// history is checked per key as for one group: porcupine's model is
// already partitioned by key, and a key lives in one shard at a time, so a
// per-key check across shards is the same check over every shard's
// operations. What a redirect proves: MOVED, ASK, CLUSTERDOWN and CROSSSLOT
// answer before the command runs (node/route.go checks before executing),
// so an operation redirected and retried took effect at most once, within
// the interval from its first call to its last return.

// shardName is the name of shard i: a, b, c, ...
func shardName(i int) string { return string(rune('a' + i)) }

// maxShards bounds Config.Shards: shard names are single letters.
const maxShards = 26

// startShards writes certificates, starts perShard nodes in each of shards
// shards, all joining autoCluster in etcd with -shard, runs kvnode cluster
// init, and waits until every shard has a leader that etcd names.
func startShards(ctx context.Context, bin, work, engine, ack string, etcd *etcdProc, ttl time.Duration, shards, perShard int) (*cluster, error) {
	c := &cluster{bin: bin, tls: filepath.Join(work, "tls"), engine: engine, ack: ack, etcd: etcd}
	c.config = filepath.Join(work, "cluster.yaml")
	conf := fmt.Sprintf("# kvhistory: shards through etcd\ncluster:\n  lease_ttl: %s\n", ttl)
	if err := os.WriteFile(c.config, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCluster, err)
	}
	var names, shardNames []string
	for s := range shards {
		shardNames = append(shardNames, shardName(s))
		for m := range perShard {
			names = append(names, fmt.Sprintf("%s%d", shardName(s), m+1))
		}
	}
	if out, err := exec.CommandContext(ctx, bin, "certs", "-dir", c.tls, "-node", strings.Join(names, ",")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%w: kvnode certs: %v: %s", ErrCluster, err, out)
	}
	for i, name := range names {
		n := &node{name: name, dir: filepath.Join(work, name), shard: shardNames[i/perShard]}
		var err error
		if n.listen, err = addr("tcp"); err != nil {
			return nil, err
		}
		if n.admin, err = addr("tcp"); err != nil {
			return nil, err
		}
		if n.repl, err = addr("udp"); err != nil {
			return nil, err
		}
		if n.log, err = os.Create(filepath.Join(work, n.name+".log")); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCluster, err)
		}
		n.ctl = newCtl(n.listen)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		if err := c.start(ctx, n, ""); err != nil {
			c.close()
			return nil, err
		}
	}
	init := exec.CommandContext(ctx, bin, "cluster", "init", "-shards", strings.Join(shardNames, ","), "-etcd", etcd.url, "-cluster", autoCluster)
	if out, err := init.CombinedOutput(); err != nil {
		c.close()
		return nil, fmt.Errorf("%w: kvnode cluster init: %v: %s", ErrCluster, err, out)
	}
	if err := awaitShardLeaders(ctx, etcd, shardNames, 30*time.Second); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// newCtl is a node's control connection.
func newCtl(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: clusterPassword, MaxRetries: -1, PoolSize: 2,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second})
}

// awaitShardLeaders polls etcd (the reads a kvnode routes by:
// coord.ReadRouting) until the slot map exists and every shard has a
// leader, or d passes.
func awaitShardLeaders(ctx context.Context, etcd *etcdProc, shards []string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		rt, err := coord.ReadRouting(rctx, etcd.cli, autoCluster)
		cancel()
		missing := []string{}
		if err == nil {
			for _, s := range shards {
				if _, ok := rt.Leaders[s]; !ok {
					missing = append(missing, s)
				}
			}
			if rt.Map != nil && len(missing) == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w: shards %v have no leader (or no slot map) %v after start (etcd error: %v); see the nodes' logs", ErrCluster, missing, d, err)
		}
		_ = wait(ctx, 50*time.Millisecond) // polling etcd for the condition, with a deadline
	}
}

// crc16Table is CRC-16/XMODEM's (polynomial 0x1021), Redis Cluster's key
// hash; kvhistory computes slots itself so that it checks the node's
// routing rather than trusting it.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// keySlot is Redis Cluster's slot of key: CRC16 of the key, or of its hash
// tag (the bytes between the first '{' and the first '}' after it, when
// there is at least one), mod 16384.
func keySlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var c uint16
	for i := 0; i < len(key); i++ {
		c = c<<8 ^ crc16Table[byte(c>>8)^key[i]]
	}
	return int(c & 16383)
}

// router is one client's view of the slots: the node address each slot
// was last seen served at, and a connection per address. A slot not known
// goes to a random seed, which answers MOVED if it does not serve it.
type router struct {
	slots [16384]string
	conns map[string]*redis.Client
	seeds []string
	rng   *rand.Rand
	// redirects counts the MOVED and ASK replies followed.
	moved, asked int
}

func newRouter(seeds []string, rng *rand.Rand) *router {
	return &router{conns: map[string]*redis.Client{}, seeds: seeds, rng: rng}
}

// addr is where to send a command on slot.
func (rt *router) addr(slot int) string {
	if a := rt.slots[slot]; a != "" {
		return a
	}
	return rt.seeds[rt.rng.IntN(len(rt.seeds))]
}

func (rt *router) conn(addr string) *redis.Client {
	cl := rt.conns[addr]
	if cl == nil {
		cl = redis.NewClient(&redis.Options{Addr: addr, Password: clusterPassword, MaxRetries: -1, PoolSize: 1,
			DialTimeout: 500 * time.Millisecond, ReadTimeout: 3 * time.Second, WriteTimeout: time.Second,
			ContextTimeoutEnabled: true})
		rt.conns[addr] = cl
	}
	return cl
}

func (rt *router) close() {
	for _, cl := range rt.conns {
		_ = cl.Close() // the run is over; nothing to do about a close error
	}
}

// refresh reads CLUSTER SLOTS from the first seed that answers.
func (rt *router) refresh(ctx context.Context) error {
	var last error
	for _, s := range rt.seeds {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		//lint:ignore SA1019 CLUSTER SLOTS is what most Redis Cluster clients still read; kvnode answers it as redis-server 7 does
		ranges, err := rt.conn(s).ClusterSlots(rctx).Result()
		cancel()
		if err != nil {
			last = err
			continue
		}
		for _, r := range ranges {
			if len(r.Nodes) == 0 || r.Start < 0 || r.End > 16383 || r.Start > r.End {
				continue
			}
			for sl := r.Start; sl <= r.End; sl++ {
				rt.slots[sl] = r.Nodes[0].Addr
			}
		}
		return nil
	}
	return fmt.Errorf("%w: CLUSTER SLOTS from every node failed: %v", ErrCluster, last)
}

// redirect parses a MOVED or ASK error: its kind, slot and address.
func redirect(err error) (kind string, slot int, addr string, ok bool) {
	if err == nil {
		return "", 0, "", false
	}
	f := strings.Fields(err.Error())
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return "", 0, "", false
	}
	s, perr := strconv.Atoi(f[1])
	if perr != nil || s < 0 || s > 16383 {
		return "", 0, "", false
	}
	return f[0], s, f[2], true
}

// maxRedirects bounds the MOVED and ASK replies one operation follows, as
// Redis Cluster clients bound theirs (go-redis: 3; here more, since a slot
// move and a failover may each redirect once).
const maxRedirects = 5

// shardRead runs a GET or PTTL as read does (between two ROLEs in one
// pipeline) at the slot's node, following redirects.
func (r *run) shardRead(ctx context.Context, rt *router, o *Op) {
	r.begin(o)
	slot := keySlot(o.Key)
	addr, asking := rt.addr(slot), false
	for hop := 0; ; hop++ {
		o.Node = addr
		cmds, _ := rt.conn(addr).Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Do(ctx, "ROLE")
			if asking {
				p.Do(ctx, "ASKING")
			}
			if o.Kind == TTL {
				p.Do(ctx, "PTTL", o.Key)
			} else {
				p.Get(ctx, o.Key)
			}
			p.Do(ctx, "ROLE")
			return nil
		})
		o.Return = r.now()
		o.Outcome, o.Err = OK, ""
		if asking && len(cmds) == 4 {
			cmds = []redis.Cmder{cmds[0], cmds[2], cmds[3]} // ASKING's OK says nothing
		}
		if len(cmds) != 3 {
			o.Outcome, o.Err = Failed, "pipeline cut short"
			return
		}
		if kind, s, to, ok := redirect(cmds[1].Err()); ok && hop < maxRedirects {
			if kind == "MOVED" {
				rt.slots[s], rt.moved = to, rt.moved+1
				addr, asking = to, false
			} else {
				addr, asking, rt.asked = to, true, rt.asked+1
			}
			continue
		}
		if !isMaster(cmds[0]) || !isMaster(cmds[2]) {
			// Served by a node that was not leader throughout (one that
			// etcd names but has not taken over yet): proves nothing.
			o.Outcome, o.Err = Failed, "not master or error"
			if err := cmds[1].Err(); err != nil && !errors.Is(err, redis.Nil) {
				o.Err += ": " + err.Error()
			}
			return
		}
		readResult(o, cmds[1])
		return
	}
}

// shardWrite runs a SET at the slot's node, following redirects, and
// classifies its outcome: a redirect or CLUSTERDOWN proves the command did
// not run there.
func (r *run) shardWrite(ctx context.Context, rt *router, o *Op) {
	r.begin(o)
	slot := keySlot(o.Key)
	addr, asking := rt.addr(slot), false
	for hop := 0; ; hop++ {
		o.Node = addr
		var err error
		if asking {
			cmds, _ := rt.conn(addr).Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Do(ctx, "ASKING")
				p.Do(ctx, "SET", o.Key, o.Value)
				return nil
			})
			err = errors.New("pipeline cut short")
			if len(cmds) == 2 {
				err = cmds[1].Err()
			}
		} else {
			err = rt.conn(addr).Do(ctx, "SET", o.Key, o.Value).Err()
		}
		o.Return = r.now()
		if kind, s, to, ok := redirect(err); ok && hop < maxRedirects {
			if kind == "MOVED" {
				rt.slots[s], rt.moved = to, rt.moved+1
				addr, asking = to, false
			} else {
				addr, asking, rt.asked = to, true, rt.asked+1
			}
			continue
		}
		o.Outcome, o.Err = classifyShard(err), ""
		if err != nil {
			o.Err = err.Error()
		}
		return
	}
}

// classifyShard is classify with the cluster's refusals: MOVED, ASK (past
// maxRedirects), CLUSTERDOWN and CROSSSLOT are answered before the command
// runs.
func classifyShard(err error) Outcome {
	if err != nil {
		for _, p := range []string{"MOVED ", "ASK ", "CLUSTERDOWN", "CROSSSLOT"} {
			if strings.HasPrefix(err.Error(), p) {
				return Failed
			}
		}
	}
	return classify(err)
}

// shardClient runs random GETs and SETs across the shards until ctx ends.
func (r *run) shardClient(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(id)+1))
	var seeds []string
	for _, n := range r.c.nodes {
		seeds = append(seeds, n.listen)
	}
	rt := newRouter(seeds, rng)
	defer rt.close()
	// Even clients learn the slots from CLUSTER SLOTS (go-redis'
	// ClusterClient); odd ones from MOVED replies alone (a slot they do not
	// know goes to a random node), so that every run follows redirects.
	lazy := id%2 == 1
	stale := !lazy
	for seq := 0; ctx.Err() == nil; seq++ {
		if stale {
			if err := rt.refresh(ctx); err != nil {
				_ = wait(ctx, 100*time.Millisecond) // every node down: retry soon
				continue
			}
			stale = false
		}
		o := Op{Client: id, Key: fmt.Sprintf("k%d", rng.IntN(r.cfg.Keys))}
		octx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
		if rng.IntN(2) == 0 {
			o.Kind = Get
			r.shardRead(octx, rt, &o)
		} else {
			o.Kind = Set
			o.Value = fmt.Sprintf("c%d-%d", id, seq)
			r.shardWrite(octx, rt, &o)
		}
		cancel()
		r.record(o)
		if o.Outcome != OK {
			// A node down or a leader gone: ask again who serves what, as
			// go-redis does after an error (a lazy client forgets the slot).
			stale = !lazy
			rt.slots[keySlot(o.Key)] = ""
			if strings.HasPrefix(o.Err, "TRYAGAIN") || strings.HasPrefix(o.Err, "CLUSTERDOWN") {
				_ = wait(ctx, 50*time.Millisecond)
			}
		}
	}
	r.mu.Lock()
	r.redirects += rt.moved + rt.asked
	r.mu.Unlock()
}

// shardNemesis is a sharded run's nemesis: every betweenFaults, one of
// faults: FaultKillLeader kills a random shard's leader (SIGKILL), waits
// for the shard to elect another, measures the failover's loss and
// restarts the killed node (it rejoins as a follower by itself);
// FaultMoveSlots moves slots holding a key to another shard.
func (r *run) shardNemesis(ctx context.Context, faults []string) error {
	if len(faults) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0x54a2d))
	for {
		if err := r.betweenFaults(ctx, rng); err != nil {
			return err
		}
		if f := faults[rng.IntN(len(faults))]; f == FaultMoveSlots {
			if err := r.moveSlots(ctx, rng); err != nil {
				return err
			}
			continue
		}
		shard := shardName(rng.IntN(r.cfg.Shards))
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		rt, err := coord.ReadRouting(rctx, r.c.etcd.cli, autoCluster)
		cancel()
		if err != nil {
			continue // etcd busy: try again at the next fault
		}
		l, ok := rt.Leaders[shard]
		if !ok {
			continue // an election in progress
		}
		var old *node
		for _, n := range r.c.nodes {
			if n.shard == shard && n.listen == l.RESP {
				old = n
			}
		}
		if old == nil {
			return fmt.Errorf("%w: shard %s's leader key names %s at %s, which is none of its nodes", ErrCluster, shard, l.ID, l.RESP)
		}
		r.cfg.Logf("nemesis: kill leader %s of shard %s", old.name, shard)
		// The killed leadership, then its successor's (awaitShardElection):
		// Result.LeaderChanges counts each pair.
		r.mu.Lock()
		r.elections = append(r.elections, election{at: r.now(), id: l.ID, epoch: int64(l.Epoch)})
		r.mu.Unlock()
		old.kill()
		r.count(FaultKillLeader)
		nl, elected := r.awaitShardElection(ctx, shard, l.Epoch)
		if !elected {
			r.cfg.Logf("nemesis: shard %s elected no other leader within %s of killing %s", shard, r.electionWait(), old.name)
		}
		_ = wait(context.Background(), time.Duration(rng.Int64N(int64(500*time.Millisecond))))
		if err := r.c.start(context.Background(), old, ""); err != nil {
			return err
		}
		// Measured once the killed node is back: in a shard of two in
		// sync mode, the new leader serves nothing until a follower holds
		// its epoch's first record (Raft's rule, docs/cluster.md).
		if elected {
			r.afterShardFailover(shard, nl)
		}
	}
}

// awaitShardElection polls etcd until shard has a leader of an epoch after
// epoch, or electionWait passes.
func (r *run) awaitShardElection(ctx context.Context, shard string, epoch uint64) (coord.Leader, bool) {
	deadline := time.Now().Add(r.electionWait())
	for time.Now().Before(deadline) && ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		rt, err := coord.ReadRouting(rctx, r.c.etcd.cli, autoCluster)
		cancel()
		if err != nil {
			_ = wait(ctx, 50*time.Millisecond)
			continue
		}
		if l, ok := rt.Leaders[shard]; ok && l.Epoch > epoch {
			r.mu.Lock()
			r.elections = append(r.elections, election{at: r.now(), id: l.ID, epoch: int64(l.Epoch)})
			r.mu.Unlock()
			return l, true
		}
		_ = wait(ctx, 50*time.Millisecond) // polling etcd for the condition, with a deadline
	}
	return coord.Leader{}, false
}

// FaultMoveSlots moves a range of slots holding one of the workload's keys
// to another shard with kvnode cluster move-slots (sharded runs), waiting
// for the move to complete or fail.
const FaultMoveSlots = "move-slots"

// slotMap is the part of the slot map (node/slots.go's format) the
// nemesis reads: the shards, and each range's owner.
type slotMap struct {
	Shards []string    `json:"shards"`
	Ranges [][3]uint16 `json:"ranges"`
}

// owner returns the range holding slot and its shard's name.
func (m *slotMap) owner(slot int) (first, last int, shard string, ok bool) {
	for _, rg := range m.Ranges {
		if int(rg[0]) <= slot && slot <= int(rg[1]) && int(rg[2]) < len(m.Shards) {
			return int(rg[0]), int(rg[1]), m.Shards[rg[2]], true
		}
	}
	return 0, 0, "", false
}

// readMap reads the slot map from etcd.
func (r *run) readMap(ctx context.Context) (*slotMap, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rt, err := coord.ReadRouting(rctx, r.c.etcd.cli, autoCluster)
	if err != nil {
		return nil, err
	}
	var m slotMap
	if err := json.Unmarshal(rt.Map, &m); err != nil {
		return nil, fmt.Errorf("%w: the slot map does not decode: %v", ErrCluster, err)
	}
	return &m, nil
}

// moveSlots moves the slots around a random key's slot (up to 16 on either
// side, within its owner's range) to another shard, so that the key changes
// shards under the clients. A move that fails (the nodes roll it back) is
// counted apart: the check still requires the history to be linearizable.
func (r *run) moveSlots(ctx context.Context, rng *rand.Rand) error {
	m, err := r.readMap(ctx)
	if err != nil {
		r.cfg.Logf("nemesis: read the slot map: %v (no move this time)", err)
		return nil
	}
	slot := keySlot(fmt.Sprintf("k%d", rng.IntN(r.cfg.Keys)))
	first, last, from, ok := m.owner(slot)
	if !ok {
		return fmt.Errorf("%w: slot %d has no owner in the map", ErrCluster, slot)
	}
	first, last = max(first, slot-rng.IntN(17)), min(last, slot+rng.IntN(17))
	to := from
	for to == from {
		to = shardName(rng.IntN(r.cfg.Shards))
	}
	rng2 := fmt.Sprintf("%d-%d", first, last)
	r.cfg.Logf("nemesis: move slots %s from %s to %s", rng2, from, to)
	r.count(FaultMoveSlots)
	mctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(mctx, r.cfg.Kvnode, "cluster", "move-slots", from, to, rng2,
		"-etcd", r.c.etcd.url, "-cluster", autoCluster).CombinedOutput()
	if err != nil {
		r.count(FaultMoveSlots + "-failed")
		r.cfg.Logf("nemesis: move of %s from %s to %s failed: %v: %s", rng2, from, to, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// afterShardFailover measures what a shard's failover lost, as
// afterFailover does for one group: once the new leader says it is
// master, it reads the keys its shard owns; LossAt later counts the
// writes to them acknowledged before the read which it lacks. Faults are
// serialised, so no move changes the shard's keys meanwhile.
func (r *run) afterShardFailover(shard string, l coord.Leader) {
	var n *node
	for _, x := range r.c.nodes {
		if x.shard == shard && x.listen == l.RESP {
			n = x
		}
	}
	if n == nil {
		r.cfg.Logf("nemesis: shard %s's new leader %s is none of its nodes (loss not measured)", shard, l.ID)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if m, _, err := role(ctx, n.ctl); err == nil && m {
			break
		}
		if err := wait(ctx, 10*time.Millisecond); err != nil {
			r.cfg.Logf("nemesis: new leader %s did not say master within 10s (loss not measured for this failover)", n.name)
			return
		}
	}
	m, err := r.readMap(ctx)
	if err != nil {
		r.cfg.Logf("nemesis: %v (loss not measured for this failover)", err)
		return
	}
	var keys []string
	for i := range r.cfg.Keys {
		k := fmt.Sprintf("k%d", i)
		if _, _, owner, ok := m.owner(keySlot(k)); ok && owner == shard {
			keys = append(keys, k)
		}
	}
	cut := r.now()
	cmds, err := n.ctl.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		r.cfg.Logf("nemesis: GETs on new leader %s: %v (loss not measured for this failover)", n.name, err)
		return
	}
	held, owned := map[string]string{}, map[string]bool{}
	for i, c := range cmds {
		owned[keys[i]] = true
		if v, err := c.(*redis.StringCmd).Result(); err == nil {
			held[keys[i]] = v
		}
	}
	r.mu.Lock()
	r.samples = append(r.samples, lossSample{cut: cut, leader: n.name, held: held, keys: owned})
	r.mu.Unlock()
	r.cfg.Logf("nemesis: %s leads shard %s", n.name, shard)
}
