package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv/replicate/coord"
)

// Config is one simulation.
type Config struct {
	// Endpoint is the etcd to run against; empty starts one (EtcdBin, in
	// Dir) and stops it at the end.
	Endpoint string
	// Pid is Endpoint's etcd process, for its CPU and RSS; 0 measures
	// neither. Ignored when the simulation starts etcd.
	Pid int
	// EtcdBin is the etcd binary to start; "etcd" on PATH when empty.
	EtcdBin string
	// Dir holds the started etcd's data and log.
	Dir string
	// Cluster names the cluster: keys under /logkv/<Cluster>/.
	Cluster string
	// Shards and Members: Shards replica groups of Members members each.
	Shards, Members int
	// StartRate is how many members start a second; 0 starts all at once.
	StartRate int
	// TTL is each member's lease TTL (coord.DefaultTTL when 0).
	TTL time.Duration
	// SyncQuorum is coord's sync quorum; 0 is async mode.
	SyncQuorum int
	// Busy makes each member's log grow between progress reports, as on
	// shards taking writes: every member then writes its progress key
	// every coord.DefaultReportEvery.
	Busy bool
	// Steady is how long the quiet phase (no map change, no kill) is
	// measured.
	Steady time.Duration
	// MapUpdates is how many slot map changes to make, each waited for
	// until every member has read it, MapGap apart.
	MapUpdates int
	MapGap     time.Duration
	// Kills is how many rounds of leader kills to make, KillBatch shards'
	// leaders at once in each (1 when 0).
	Kills, KillBatch int
	// Converge bounds each wait for the members to agree (60 s when 0).
	Converge time.Duration
	// Seed seeds the choice of slots to move and leaders to kill.
	Seed uint64
	// Progress receives a line per phase; nil is silent.
	Progress io.Writer
}

// Report is what a simulation measured.
type Report struct {
	Shards, Members int
	TTL             time.Duration
	Busy            bool
	StartRate       int
	// Start is from the first member's start until every shard has one
	// leader and every member's router knows them all.
	Start time.Duration
	// StartCost is the start's cost, to convergence or to the wait that
	// failed.
	StartCost Cost
	// Steady is the cost of the quiet phase.
	Steady Cost
	// Map is the cost of the map-update phase; MapSeen the latency from a
	// map write until a member's router read it, over every member and
	// update; MapAll the latency until all members had, per update.
	Map            Cost
	MapUpdates     int
	MapSeen        Latency
	MapAll         Latency
	EventsPerMap   float64 // watch events etcd sent per map update
	WatchReqPerMap float64 // watch create/cancel requests per map update
	ReadsPerMap    float64 // Txn requests (routing reads) per map update
	// Kill: ElectAfterKill is from a leader's kill until its successor
	// led; SeenAfterKill until every member's router read the successor.
	// ElectionsPerSec is the rate at which a batch of killed shards got
	// new leaders (batch / time to the last).
	Kill            Cost
	Kills           int
	ElectAfterKill  Latency
	SeenAfterKill   Latency
	ElectionsPerSec float64
	// DBSize and DBInUse are etcd's backend file size and its part in use,
	// at the end.
	DBSize, DBInUse float64
	// Watchers and WatchStreams are etcd's gauges at the end of the quiet
	// phase.
	Watchers, WatchStreams float64
	// Warnings counts the members' coordination warnings by message (lease
	// renewals failed, elections that failed, ...): a member under an
	// overloaded etcd says so here.
	Warnings map[string]int
	// RoutingReadErrors counts failed routing reads.
	RoutingReadErrors int64
	// SimCPU is the simulator's own CPU time over the whole run: it shares
	// the machine with etcd.
	SimCPU time.Duration
}

// Cost is what a phase cost etcd, per second of it.
type Cost struct {
	Seconds        float64
	KeepAlivesPerS float64 // lease keep-alive requests
	PutsPerS       float64 // Put requests (progress reports)
	TxnsPerS       float64 // Txn requests (routing reads, elections)
	RangesPerS     float64 // Range requests
	WatchReqPerS   float64 // watch create and cancel requests
	EventsPerS     float64 // watch events sent
	ProposalsPerS  float64 // raft proposals committed (writes)
	FsyncMeanMs    float64 // WAL fsync, mean
	CPUPercent     float64 // etcd's CPU, % of one core
	RSS            int64   // etcd's resident memory at the end, bytes
	SlowWatchers   float64 // etcd's slow watchers at the end
	// Renew is the probe's lease renewals: latency, and (Timeouts) how
	// many failed within coord's TTL/3.
	Renew Latency
}

// Latency is a distribution's p50, p99 and max, and how many samples and
// how many waits timed out.
type Latency struct {
	N, Timeouts   int
	P50, P99, Max time.Duration
}

func latency(d []time.Duration, timeouts int) Latency {
	l := Latency{N: len(d), Timeouts: timeouts}
	if len(d) == 0 {
		return l
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	l.P50, l.P99, l.Max = at(0.5), at(0.99), d[len(d)-1]
	return l
}

// warnCounter is the members' slog handler: it counts warnings and errors
// by message and drops the rest.
type warnCounter struct {
	mu *sync.Mutex
	n  map[string]int
}

func (w warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w warnCounter) Handle(_ context.Context, r slog.Record) error {
	key := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			// The error's kind, not its instance: a lease id or an
			// address would make each warning a key of its own.
			e := a.Value.String()
			if i := strings.LastIndex(e, ": "); i >= 0 {
				e = e[i+2:]
			}
			key += ": " + e
		}
		return true
	})
	w.mu.Lock()
	w.n[key]++
	w.mu.Unlock()
	return nil
}
func (w warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w warnCounter) WithGroup(string) slog.Handler      { return w }

// sim is one run's state.
type sim struct {
	cfg      Config
	etcd     *Etcd
	cli      *clientv3.Client
	log      *slog.Logger
	warns    warnCounter
	rng      *rand.Rand
	members  []*member // shard-major: shard i's members at i*Members...
	shards   []string
	owner    [16384]uint16 // the map as last written
	mapVer   int64
	progress io.Writer
	probe    *probe
}

// Run runs a simulation: start etcd (or use Endpoint), start the members,
// wait for every shard to elect, then measure the quiet phase, the slot
// map's updates and leader kills, and stop everything.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Shards < 1 || cfg.Members < 1 || cfg.Shards > 16384 {
		return nil, fmt.Errorf("sim: %d shards of %d members: want 1 to 16384 shards of at least 1", cfg.Shards, cfg.Members)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "sim"
	}
	if cfg.TTL == 0 {
		cfg.TTL = coord.DefaultTTL
	}
	if cfg.Converge == 0 {
		cfg.Converge = time.Minute
	}
	if cfg.KillBatch <= 0 {
		cfg.KillBatch = 1
	}
	cfg.KillBatch = min(cfg.KillBatch, cfg.Shards)
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	s := &sim{cfg: cfg, progress: cfg.Progress, rng: rand.New(rand.NewPCG(cfg.Seed, 20))}
	s.warns = warnCounter{mu: new(sync.Mutex), n: map[string]int{}}
	s.log = slog.New(s.warns)
	simCPU0, _ := ReadProc(os.Getpid())
	if cfg.Endpoint == "" {
		bin := cfg.EtcdBin
		if bin == "" {
			bin = "etcd"
		}
		e, err := StartEtcd(ctx, bin, cfg.Dir)
		if err != nil {
			return nil, err
		}
		defer e.Stop()
		s.etcd = e
	} else {
		s.etcd = &Etcd{Endpoint: cfg.Endpoint, Pid: cfg.Pid}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.etcd.Endpoint}, DialTimeout: 5 * time.Second, Logger: zapNop})
	if err != nil {
		return nil, err
	}
	defer ignore(cli.Close)
	s.cli = cli
	s.probe = startProbe(cli, cfg.TTL)
	defer s.probe.stop()
	defer s.stopAll()
	rep := &Report{Shards: cfg.Shards, Members: cfg.Members, TTL: cfg.TTL, Busy: cfg.Busy, StartRate: cfg.StartRate}
	err = s.run(ctx, rep)
	// What the members saw, whether or not the run got to its end: a run
	// that failed to converge says why here.
	rep.Warnings = s.warns.counts()
	for _, m := range s.members {
		rep.RoutingReadErrors += m.readErrors.Load()
	}
	if p, err := ReadProc(os.Getpid()); err == nil {
		rep.SimCPU = p.CPU - simCPU0.CPU
	}
	return rep, err
}

func (w warnCounter) counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.n))
	for k, v := range w.n {
		out[k] = v
	}
	return out
}
