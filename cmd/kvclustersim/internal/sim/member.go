package sim

import (
	"context"
	"log/slog"
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
// election) and the slot watcher (node/route.go's watchSlots, which is
// coord.WatchRouting), each on the member's own etcd client, as each
// kvnode has its own.
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
	// reads and readErrors count whole routing reads, and those that
	// failed.
	reads, readErrors atomic.Int64
}

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
	m := &member{id: id, shard: shard, cli: cli, coord: cm, rep: rep, cancel: cancel, leaders: map[string][]seenAt{}}
	m.done.Go(func() {
		if err := cm.Run(ctx, rep); err != nil {
			log.Error("member ended", "err", err)
		}
	})
	m.done.Go(func() { m.route(ctx, cluster) })
	return m, nil
}

// route is node's watchSlots: coord.WatchRouting, one whole read and then
// each watch event applied, with the member noting what is new where node
// builds its table.
func (m *member) route(ctx context.Context, cluster string) {
	coord.WatchRouting(ctx, m.cli, cluster, coord.RoutingHandler{
		Read: func(err error) {
			m.reads.Add(1)
			if err != nil {
				m.readErrors.Add(1)
			}
		},
		Apply: func(_ context.Context, rt *coord.Routing, _ bool) { m.note(rt) },
	})
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
