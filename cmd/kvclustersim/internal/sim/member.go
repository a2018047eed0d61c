package sim

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logkv/logkv/replicate/coord"
)

// replica is a member's stand-in for a replicated node: coord.Member drives
// it as it drives kvnode's (node/cluster.go's clusterReplica), with a log
// that is a counter. busy makes every progress sample newer than the last,
// as on a shard taking writes, so that each member reports progress every
// ReportEvery as a busy kvnode does; idle, a member reports once.
type replica struct {
	busy    bool
	durable atomic.Uint64
	epoch   atomic.Uint64
	// leadAt is when Lead last ran, for the election's latency.
	leadAt atomic.Pointer[time.Time]
}

func (r *replica) Progress() (durable, epoch uint64) {
	if r.busy {
		return r.durable.Add(1), r.epoch.Load()
	}
	return r.durable.Load(), r.epoch.Load()
}

func (r *replica) Lead(epoch uint64) error {
	r.epoch.Store(epoch)
	now := time.Now()
	r.leadAt.Store(&now)
	return nil
}

func (r *replica) Follow(l coord.Leader) error {
	// A follower's log holds the leader's epoch once it replicated the
	// leader's first record: at once, here.
	if l.Epoch > r.epoch.Load() {
		r.epoch.Store(l.Epoch)
	}
	return nil
}

func (r *replica) SetSyncSet([]string)              {}
func (r *replica) SyncDurable([]string, int) uint64 { return r.durable.Load() }
func (r *replica) StepDown()                        {}

// leadTime returns when Lead last ran, false if never.
func (r *replica) leadTime() (time.Time, bool) {
	if p := r.leadAt.Load(); p != nil {
		return *p, true
	}
	return time.Time{}, false
}

// zapNop silences the etcd clients: a member's view of etcd is what the
// simulation counts, and 300 clients logging reconnects drown the report.
var zapNop = zap.NewNop()

// seenAt is a value a member's router first read, and when.
type seenAt struct {
	v  int64 // a map version, or a leader's epoch
	at time.Time
}

// member is one simulated kvnode: a coord.Member (lease, progress reports,
// election) and the slot watcher's loop (node/route.go's watchSlots) over
// coord.ReadRouting and coord.AwaitRoutingChange, each on the member's own
// etcd client, as each kvnode has its own.
type member struct {
	id, shard string
	cli       *clientv3.Client
	coord     *coord.Member
	rep       *replica
	cancel    context.CancelFunc
	done      sync.WaitGroup

	mu sync.Mutex
	// maps holds each slot map version the router read, in order;
	// leaders each shard's leader epochs, in order.
	maps    []seenAt
	leaders map[string][]seenAt
	// events selects routeEvents over node's re-reading router.
	events bool
	// reads and readErrors count routing reads, and those that failed.
	reads, readErrors atomic.Int64
}

// slotsRetry is node/route.go's: how long the router waits after etcd
// failed a read.
const slotsRetry = 500 * time.Millisecond

// routingTimeout is node's clusterInfoTimeout, the bound on one read.
const routingTimeout = 5 * time.Second

func startMember(endpoint, cluster, shard, id string, cfg *Config, log *slog.Logger) (*member, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second,
		Logger: zapNop})
	if err != nil {
		return nil, err
	}
	rep := &replica{busy: cfg.Busy}
	cm, err := coord.New(coord.Config{Client: cli, Cluster: cluster, Shard: shard, ID: id,
		RESPAddr: "sim:" + id, ReplAddr: "sim:" + id, TTL: cfg.TTL, SyncQuorum: cfg.SyncQuorum, Logger: log})
	if err != nil {
		ignore(cli.Close)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{id: id, shard: shard, cli: cli, coord: cm, rep: rep, cancel: cancel, leaders: map[string][]seenAt{}, events: cfg.Events}
	m.done.Go(func() {
		if err := cm.Run(ctx, rep); err != nil {
			log.Error("member ended", "err", err)
		}
	})
	m.done.Go(func() { m.route(ctx, cluster) })
	return m, nil
}

// route is node's watchSlots: read the map and the leaders, note what is
// new, wait for a change of the map or of a leader key of the map's shards.
// With events (Config.Events), it is the alternative docs/cluster-scale.md
// proposes instead: read once, then apply each watch event.
func (m *member) route(ctx context.Context, cluster string) {
	if m.events {
		m.routeEvents(ctx, cluster)
		return
	}
	for ctx.Err() == nil {
		rt, ok := m.readRouting(ctx, cluster)
		if !ok {
			continue
		}
		m.note(rt)
		coord.AwaitRoutingChange(ctx, m.cli, cluster, rt.Revision, mapShards(rt.Map))
	}
}

// readRouting is one whole read of the map and the leaders, as node's
// router makes it, counted; after a failure it waits slotsRetry (as node
// does) and reports false.
func (m *member) readRouting(ctx context.Context, cluster string) (*coord.Routing, bool) {
	rctx, cancel := context.WithTimeout(ctx, routingTimeout)
	rt, err := coord.ReadRouting(rctx, m.cli, cluster)
	cancel()
	m.reads.Add(1)
	if err == nil {
		return rt, true
	}
	if ctx.Err() == nil {
		m.readErrors.Add(1)
	}
	select {
	case <-ctx.Done():
	case <-time.After(slotsRetry):
	}
	return nil, false
}

// mapShards returns the shard names of an encoded slot map (node/slots.go's
// format), nil without one or when it does not decode (node then watches
// only the map, as here).
func mapShards(b []byte) []string {
	if b == nil {
		return nil
	}
	var j struct {
		Shards []string `json:"shards"`
	}
	if json.Unmarshal(b, &j) != nil {
		return nil
	}
	return j.Shards
}

func (m *member) note(rt *coord.Routing) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.maps); rt.MapVersion != 0 && (n == 0 || m.maps[n-1].v < rt.MapVersion) {
		m.maps = append(m.maps, seenAt{rt.MapVersion, now})
	}
	for s, l := range rt.Leaders {
		h := m.leaders[s]
		if n := len(h); n == 0 || h[n-1].v < int64(l.Epoch) {
			m.leaders[s] = append(h, seenAt{int64(l.Epoch), now})
		}
	}
}

// firstSeen returns when the router first read a value at least v in h.
func firstSeen(h []seenAt, v int64) (time.Time, bool) {
	for _, s := range h {
		if s.v >= v {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// mapSeen returns when the member first read map version v or newer.
func (m *member) mapSeen(v int64) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return firstSeen(m.maps, v)
}

// leaderSeen returns when the member first read a leader of shard with an
// epoch above epoch.
func (m *member) leaderSeen(shard string, epoch uint64) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return firstSeen(m.leaders[shard], int64(epoch)+1)
}

// stop ends the member. kill leaves its lease to expire, as a SIGKILLed
// kvnode does: the client is closed before Run's revocation can reach
// etcd. Otherwise Run revokes it, as a kvnode shutting down does.
func (m *member) stop(kill bool) {
	if kill {
		ignore(m.cli.Close)
	}
	m.cancel()
	m.done.Wait()
	if !kill {
		ignore(m.cli.Close)
	}
}

// watchEvent is one watch response, or (ok false) a watch's end.
type watchEvent struct {
	resp clientv3.WatchResponse
	ok   bool
}

// routeEvents is the router docs/cluster-scale.md proposes: one read, then
// the map's and every leader key's watches stay open and each event is
// applied as it comes (a leader key's new value and CreateRevision, the
// map's new version), so a change costs each member one event and no read
// and no watch request. A failed watch (etcd compacted past it, or lost
// its leader) falls back to a whole read, as node's router does on any
// event. Not built into node: the simulation measures what it would save.
func (m *member) routeEvents(ctx context.Context, cluster string) {
	for ctx.Err() == nil {
		rt, ok := m.readRouting(ctx, cluster)
		if !ok {
			continue
		}
		m.note(rt)
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		events := make(chan watchEvent)
		watched := map[string]bool{}
		watch := func(key string, from int64) {
			watched[key] = true
			go func() {
				for resp := range m.cli.Watch(wctx, key, clientv3.WithRev(from)) {
					select {
					case events <- watchEvent{resp, true}:
					case <-wctx.Done():
						return
					}
				}
				select {
				case events <- watchEvent{}:
				case <-wctx.Done():
				}
			}()
		}
		slots := coord.SlotsKey(cluster)
		watch(slots, rt.Revision+1)
		for _, sh := range mapShards(rt.Map) {
			watch(coord.LeaderKey(cluster, sh), rt.Revision+1)
		}
		m.applyEvents(wctx, cluster, slots, events, watched)
		wcancel()
	}
}

// applyEvents applies watch events until a watch fails or ctx ends.
func (m *member) applyEvents(ctx context.Context, cluster, slots string, events <-chan watchEvent, watched map[string]bool) {
	for {
		var e watchEvent
		select {
		case <-ctx.Done():
			return
		case e = <-events:
		}
		if !e.ok || e.resp.Err() != nil {
			return // read everything again
		}
		now := time.Now()
		for _, ev := range e.resp.Events {
			key := string(ev.Kv.Key)
			if key == slots {
				if ev.Type != clientv3.EventTypePut {
					return // the map deleted: read again
				}
				m.mu.Lock()
				if n := len(m.maps); n == 0 || m.maps[n-1].v < ev.Kv.ModRevision {
					m.maps = append(m.maps, seenAt{ev.Kv.ModRevision, now})
				}
				m.mu.Unlock()
				for _, sh := range mapShards(ev.Kv.Value) {
					if !watched[coord.LeaderKey(cluster, sh)] {
						// A shard new to the map: its leader may predate
						// the event, so read everything (rare: the map's
						// shards change when one is added).
						return
					}
				}
				continue
			}
			if ev.Type != clientv3.EventTypePut {
				continue // a leader gone: the shard has none until the next put
			}
			shard := strings.TrimSuffix(strings.TrimPrefix(key, coord.Prefix(cluster)+"shards/"), "/leader")
			m.mu.Lock()
			h := m.leaders[shard]
			if n := len(h); n == 0 || h[n-1].v < ev.Kv.CreateRevision {
				m.leaders[shard] = append(h, seenAt{ev.Kv.CreateRevision, now})
			}
			m.mu.Unlock()
		}
	}
}
