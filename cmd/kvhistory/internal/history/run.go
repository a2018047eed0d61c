package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"
)

// Fault names accepted in Config.Nemesis.
const (
	FaultKill      = "kill"
	FaultPause     = "pause"
	FaultPromote   = "promote"
	FaultPartition = "partition"
)

// Workloads accepted in Config.Workload.
const (
	WorkloadRegister = "register"
	WorkloadExpiry   = "expiry"
)

// Config describes one run.
type Config struct {
	// Kvnode is the path of a built kvnode binary.
	Kvnode string
	// Work is a scratch directory for data, certificates, logs and the
	// visualisation; it must exist.
	Work string
	// Ack is "sync" (quorum 1) or "async".
	Ack string
	// Duration of the workload.
	Duration time.Duration
	// Clients is the number of concurrent clients (default 6).
	Clients int
	// Keys is the size of the key set (default 8; 32 for the expiry
	// workload, so that keys go untouched long enough to expire).
	Keys int
	// Nemesis lists the faults to inject (FaultKill, FaultPause, FaultPromote,
	// FaultPartition).
	Nemesis []string
	// Auto makes the nodes a cluster that fails over by itself through a
	// real etcd (see auto.go): the nemesis then hurts the leader
	// (FaultKillLeader, FaultPauseLeader, FaultPartitionLeader; FaultKill
	// and FaultPause also apply) and never promotes.
	Auto bool
	// LeaseTTL is the leader lease's TTL in Auto mode (default 1s, the
	// least etcd grants as kvhistory runs it: more failovers a minute).
	LeaseTTL time.Duration
	// Failovers, in Auto mode, ends the run once it saw this many leader
	// changes (Duration still bounds it); 0: run for Duration.
	Failovers int
	// Interval is the mean time between faults (default 1.5s).
	Interval time.Duration
	// Engine is the nodes' storage engine (default lsm).
	Engine string
	// Workload is WorkloadRegister (default: GET and SET) or
	// WorkloadExpiry (GET, PTTL, SET with and without PXAT, PEXPIREAT,
	// PERSIST, with deadlines a few hundred milliseconds ahead).
	Workload string
	// Seed seeds the workload and the nemesis.
	Seed uint64
	// CheckTimeout bounds porcupine (default 60s; 0 after defaults: none).
	CheckTimeout time.Duration
	// Shards, when not 0, makes the nodes a cluster of this many shards
	// (a, b, ...) of PerShard nodes each (default 2), electing their
	// leaders through etcd (Auto is implied), with the slots spread by
	// kvnode cluster init; clients route by slot and follow MOVED and ASK
	// (shards.go).
	Shards, PerShard int
	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
}

// Result is the outcome of one run.
type Result struct {
	History []Op
	// Ops counts recorded operations; OK, Failed, Unknown split them.
	Ops, OK, Failed, Unknown int
	// Faults counts injected faults by name.
	Faults map[string]int
	// PartitionSkip says why partitions did not run ("" if they ran or
	// were not asked for).
	PartitionSkip string
	// Verdict is porcupine's verdict on the history.
	Verdict Verdict
	// LostPerFailover is the number of acknowledged writes each failover
	// lost (see LossAt).
	LostPerFailover []int
	// MaxLossWindow is the largest LossAt window over all failovers.
	MaxLossWindow time.Duration
	// Elections lists the leaderships etcd held, in order (Auto mode).
	Elections []Election
	// Cuts counts the partition-leader faults by what they cut the leader
	// off from.
	Cuts map[string]int
	// StaleReads counts reads of overwritten values (see StaleReads).
	StaleReads int
	// Redirects counts the MOVED and ASK replies clients followed (a
	// sharded run).
	Redirects int
	// ExpiredReads counts successful reads (GET, PTTL) that found a key
	// absent after a write to it had been acknowledged: in the expiry
	// workload, which deletes nothing, each saw an expiry.
	ExpiredReads int
}

// Lost is the total of LostPerFailover.
func (r *Result) Lost() int {
	n := 0
	for _, l := range r.LostPerFailover {
		n += l
	}
	return n
}

// Summary is the one-line report printed by kvhistory.
func (r *Result) Summary(ack string) string {
	lin := fmt.Sprint(r.Verdict.Linearizable())
	if r.Verdict.Result == porcupine.Unknown {
		lin = "unknown(check timed out)"
	}
	lost := "n/a"
	if ack == "async" {
		lin = "n/a(async, porcupine=" + string(r.Verdict.Result) + ")"
		lost = fmt.Sprintf("%d(per-failover=%v,max-window=%s)", r.Lost(), r.LostPerFailover, r.MaxLossWindow.Round(time.Microsecond))
	}
	var faults []string
	for _, f := range []string{FaultKill, FaultPause, FaultPromote, FaultPartition, FaultKillLeader, FaultPauseLeader, FaultPartitionLeader, FaultMoveSlots, FaultMoveSlots + "-failed"} {
		if n, ok := r.Faults[f]; ok || f == FaultKill || f == FaultPause || f == FaultPromote || f == FaultPartition {
			faults = append(faults, fmt.Sprintf("%s:%d", f, n))
		}
	}
	s := fmt.Sprintf("runs=1 ops=%d ok=%d failed=%d unknown=%d checked=%d linearizable=%s faults=%s async_lost_acked=%s",
		r.Ops, r.OK, r.Failed, r.Unknown, r.Verdict.Checked, lin, strings.Join(faults, ","), lost)
	if len(r.Elections) > 0 {
		perFailover := "n/a"
		if n := r.LeaderChanges(); n > 0 && ack == "async" {
			perFailover = fmt.Sprintf("%.3f", float64(r.Lost())/float64(n))
		}
		s += fmt.Sprintf(" elections=%d leader_changes=%d lost_per_leader_change=%s measured_failovers=%d",
			len(r.Elections)-1, r.LeaderChanges(), perFailover, len(r.LostPerFailover))
		if len(r.Cuts) > 0 {
			s += fmt.Sprintf(" cuts=%v", r.Cuts)
		}
	}
	if ack == "sync" {
		s += fmt.Sprintf(" sync_lost_acked=%d", r.Lost())
	}
	return s + fmt.Sprintf(" stale_reads=%d expired_reads=%d", r.StaleReads, r.ExpiredReads)
}

// expiredReads counts the successful reads that found a key absent after
// a write to it was acknowledged.
func expiredReads(h []Op) int {
	written := map[string]int64{} // key -> earliest acknowledged write's return
	for _, o := range h {
		if o.Kind == Set && o.Outcome == OK {
			if t, ok := written[o.Key]; !ok || o.Return < t {
				written[o.Key] = o.Return
			}
		}
	}
	n := 0
	for _, o := range h {
		t, ok := written[o.Key]
		if !ok || o.Outcome != OK || o.Call < t {
			continue
		}
		if o.Kind == Get && o.Value == "" || o.Kind == TTL && o.N == -2 {
			n++
		}
	}
	return n
}

func (c *Config) defaults() error {
	if c.Engine == "" {
		c.Engine = "lsm"
	}
	if c.Workload == "" {
		c.Workload = WorkloadRegister
	}
	if c.Clients <= 0 {
		c.Clients = 6
	}
	if c.Keys <= 0 {
		c.Keys = 8
		if c.Workload == WorkloadExpiry {
			c.Keys = 32 // each key written less often, so more expire
		}
	}
	if c.Interval <= 0 {
		c.Interval = 1500 * time.Millisecond
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = time.Minute
	}
	if c.Workload != WorkloadRegister && c.Workload != WorkloadExpiry {
		return fmt.Errorf("history: workload must be %s or %s, not %q", WorkloadRegister, WorkloadExpiry, c.Workload)
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Ack != "sync" && c.Ack != "async" {
		return fmt.Errorf("history: ack must be sync or async, not %q", c.Ack)
	}
	if c.Shards < 0 || c.Shards > maxShards {
		return fmt.Errorf("history: %d shards: want 0 (one replica group) to %d", c.Shards, maxShards)
	}
	if c.Shards > 0 {
		c.Auto = true // shards elect their leaders through etcd
		if c.PerShard <= 0 {
			c.PerShard = 2
		}
		if c.Workload != WorkloadRegister {
			return fmt.Errorf("history: a sharded run has the %s workload only", WorkloadRegister)
		}
		for _, f := range c.Nemesis {
			if f != FaultKillLeader && f != FaultMoveSlots {
				return fmt.Errorf("history: a sharded run's nemesis kills leaders (%s) and moves slots (%s), not %q", FaultKillLeader, FaultMoveSlots, f)
			}
		}
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = time.Second
	}
	if c.LeaseTTL%time.Second != 0 {
		return fmt.Errorf("history: lease TTL %s is not whole seconds, as etcd's leases are", c.LeaseTTL)
	}
	for _, f := range c.Nemesis {
		switch f {
		case FaultKill, FaultPause:
		case FaultPromote, FaultPartition:
			if c.Auto {
				return fmt.Errorf("history: fault %q is for manual failover; with automatic failover use %s, %s, %s", f, FaultKillLeader, FaultPauseLeader, FaultPartitionLeader)
			}
		case FaultMoveSlots:
			if c.Shards == 0 {
				return fmt.Errorf("history: fault %q needs shards (-shards)", f)
			}
		case FaultKillLeader, FaultPauseLeader, FaultPartitionLeader:
			if !c.Auto {
				return fmt.Errorf("history: fault %q needs automatic failover (-auto)", f)
			}
		default:
			return fmt.Errorf("history: unknown fault %q", f)
		}
	}
	return nil
}

// run is the shared state of one run.
type run struct {
	cfg   Config
	c     *cluster
	start time.Time

	mu      sync.Mutex
	history []Op
	faults  map[string]int
	// samples are the new leaders' keys after each failover; LossAt runs
	// on them once the run ended, when every operation in flight at the
	// failover has its outcome (the value a new leader holds may be from a
	// write that had not returned yet).
	samples []lossSample
	// Auto mode: the leaderships etcd held, a wake-up for each, and the
	// partition-leader faults by what they cut.
	elections []election
	electedCh chan struct{}
	cuts      map[string]int
	// redirects sums the clients' MOVED and ASK replies (sharded runs).
	redirects int
}

func (r *run) now() int64 { return time.Since(r.start).Nanoseconds() }

func (r *run) record(o Op) {
	r.mu.Lock()
	r.history = append(r.history, o)
	r.mu.Unlock()
}

func (r *run) snapshot() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.history...)
}

// Run starts the cluster, runs the workload and the nemesis for
// cfg.Duration, stops everything and checks the history.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	res := &Result{Faults: map[string]int{}, Cuts: map[string]int{}}
	faults := cfg.Nemesis
	var lab *netlab
	for i, f := range faults {
		if f != FaultPartition && f != FaultPartitionLeader {
			continue
		}
		var err error
		n := 3
		if cfg.Auto {
			n = 4 // etcd gets a namespace of its own
		}
		if lab, err = newNetlab(n); err != nil {
			res.PartitionSkip = err.Error()
			faults = append(append([]string(nil), faults[:i]...), faults[i+1:]...)
		} else {
			defer lab.close()
		}
		break
	}
	var etcd *etcdProc
	if cfg.Auto {
		var err error
		if etcd, err = startEtcd(ctx, cfg.Work, lab); err != nil {
			return nil, err
		}
		defer etcd.close()
	}
	var c *cluster
	var err error
	if cfg.Shards > 0 {
		c, err = startShards(ctx, cfg.Kvnode, cfg.Work, cfg.Engine, cfg.Ack, etcd, cfg.LeaseTTL, cfg.Shards, cfg.PerShard)
	} else {
		c, err = startCluster(ctx, cfg.Kvnode, cfg.Work, cfg.Engine, cfg.Ack, lab, etcd, cfg.LeaseTTL)
	}
	if err != nil {
		return nil, err
	}
	defer c.close()
	r := &run{cfg: cfg, c: c, start: time.Now(), faults: res.Faults, cuts: res.Cuts, electedCh: make(chan struct{}, 1)}
	wctx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	if cfg.Auto && cfg.Shards == 0 {
		watchCtx, endWatch := context.WithCancel(context.Background())
		watched := make(chan struct{})
		go func() { defer close(watched); r.watchLeaders(watchCtx) }()
		defer func() { endWatch(); <-watched }()
		if r.awaitElection(0, 20*time.Second) < 0 {
			return nil, fmt.Errorf("%w: no node led within 20s of starting (see the logs in %s)", ErrCluster, cfg.Work)
		}
	}

	var wg sync.WaitGroup
	for id := range cfg.Clients {
		wg.Add(1)
		if cfg.Shards > 0 {
			go func() { defer wg.Done(); r.shardClient(wctx, id) }()
		} else {
			go func() { defer wg.Done(); r.client(wctx, id) }()
		}
	}
	nemErr := make(chan error, 1)
	go func() {
		if cfg.Shards > 0 {
			nemErr <- r.shardNemesis(wctx, faults)
		} else if cfg.Auto {
			nemErr <- r.autoNemesis(wctx, faults)
		} else {
			nemErr <- r.nemesis(wctx, faults)
		}
	}()
	err = <-nemErr
	stop() // the nemesis is done (or saw its failovers): so is the workload
	wg.Wait()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return nil, err
	}

	res.History = r.snapshot()
	r.mu.Lock()
	res.Redirects = r.redirects
	for _, e := range r.elections {
		res.Elections = append(res.Elections, Election{At: time.Duration(e.at), ID: e.id, Epoch: e.epoch})
	}
	r.mu.Unlock()
	for _, smp := range r.samples {
		h := res.History
		if smp.keys != nil {
			h = nil
			for _, o := range res.History {
				if smp.keys[o.Key] {
					h = append(h, o)
				}
			}
		}
		lost, window := LossAt(h, smp.cut, smp.held)
		res.LostPerFailover = append(res.LostPerFailover, lost)
		res.MaxLossWindow = max(res.MaxLossWindow, window)
		if lost > 0 {
			cfg.Logf("failover to %s at %s lost %d acknowledged writes (oldest acked %s before)", smp.leader, time.Duration(smp.cut), lost, window)
		}
	}
	res.ExpiredReads = expiredReads(res.History)
	res.StaleReads = StaleReads(res.History)
	for _, o := range res.History {
		res.Ops++
		switch o.Outcome {
		case OK:
			res.OK++
		case Failed:
			res.Failed++
		default:
			res.Unknown++
		}
	}
	if err := writeHistory(filepath.Join(cfg.Work, "history.jsonl"), res); err != nil {
		cfg.Logf("%v", err)
	}
	cfg.Logf("checking %d operations", res.Ops)
	res.Verdict, err = Check(res.History, cfg.CheckTimeout, cfg.Work)
	return res, err
}

// writeHistory keeps a run's history (one JSON object per operation, in
// the order recorded) and its elections, for reading after a failed check.
func writeHistory(path string, res *Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("history: keep the history: %w", err)
	}
	enc := json.NewEncoder(f)
	for _, e := range res.Elections {
		_ = enc.Encode(map[string]any{"election": e.ID, "epoch": e.Epoch, "at": int64(e.At)})
	}
	for _, o := range res.History {
		_ = enc.Encode(o)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("history: keep the history: %w", err)
	}
	return nil
}

// client runs random operations against the leader until ctx ends.
func (r *run) client(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(id)+1))
	conns := make([]*redis.Client, len(r.c.nodes))
	for i, n := range r.c.nodes {
		conns[i] = redis.NewClient(&redis.Options{Addr: n.listen, Password: clusterPassword, MaxRetries: -1, PoolSize: 1,
			DialTimeout: 500 * time.Millisecond, ReadTimeout: 3 * time.Second, WriteTimeout: time.Second,
			ContextTimeoutEnabled: true})
		defer conns[i].Close()
	}
	leader := -1
	for seq := 0; ctx.Err() == nil; seq++ {
		if leader < 0 && r.cfg.Auto {
			leader = r.discoverAuto(ctx, conns, rng)
			if leader < 0 {
				continue
			}
		}
		if leader < 0 {
			leader = r.discover(ctx, conns)
			if leader < 0 {
				continue
			}
		}
		cl := conns[leader]
		o := Op{Client: id, Key: fmt.Sprintf("k%d", rng.IntN(r.cfg.Keys)), Node: r.c.nodes[leader].name}
		// Each op gets its own deadline, independent of the run's end, so
		// an op in flight at the end still finishes with a known outcome.
		octx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
		if r.cfg.Workload == WorkloadExpiry {
			r.expiryOp(octx, cl, rng, &o, seq)
		} else if rng.IntN(2) == 0 {
			o.Kind = Get
			r.read(octx, cl, &o)
		} else {
			o.Kind = Set
			o.Value = fmt.Sprintf("c%d-%d", id, seq)
			r.write(octx, cl, &o)
		}
		cancel()
		r.record(o)
		if o.Outcome != OK {
			leader = -1
		}
		if strings.HasPrefix(o.Err, "TRYAGAIN") {
			// As Redis clients do: a leader that cannot prove its lease
			// answers TRYAGAIN until it renews or another takes over.
			_ = wait(ctx, 50*time.Millisecond)
		}
	}
}

// begin stamps o's call time on both clocks: the monotonic timeline and
// the wall clock deadlines are given in.
func (r *run) begin(o *Op) {
	now := time.Now()
	o.Call, o.Wall = now.Sub(r.start).Nanoseconds(), now.UnixNano()
}

// read runs a GET or PTTL between two ROLEs in one pipeline: its result
// counts only if the node said it was master before and after, so a read
// served by a follower (which may lag) is not taken for the leader's.
func (r *run) read(ctx context.Context, cl *redis.Client, o *Op) {
	r.begin(o)
	cmds, _ := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "ROLE")
		if o.Kind == TTL {
			p.Do(ctx, "PTTL", o.Key)
		} else {
			p.Get(ctx, o.Key)
		}
		p.Do(ctx, "ROLE")
		return nil
	})
	o.Return = r.now()
	o.Outcome = OK
	if len(cmds) != 3 || !isMaster(cmds[0]) || !isMaster(cmds[2]) {
		o.Outcome, o.Err = Failed, "not master or error"
		return
	}
	readResult(o, cmds[1])
}

// readResult records a read's reply in o: a GET's value (nil: absent), or
// a PTTL's integer; any other error fails it.
func readResult(o *Op, c redis.Cmder) {
	switch c := c.(type) {
	case *redis.StringCmd:
		if v, err := c.Result(); err == nil {
			o.Value = v
		} else if !errors.Is(err, redis.Nil) {
			o.Outcome, o.Err = Failed, err.Error()
		}
	case *redis.Cmd:
		var err error
		if o.N, err = c.Int64(); err != nil {
			o.Outcome, o.Err = Failed, err.Error()
		}
	}
}

// write runs a Set, ExpireAt or Persist and classifies its outcome.
func (r *run) write(ctx context.Context, cl *redis.Client, o *Op) {
	r.begin(o)
	var err error
	switch o.Kind {
	case Set:
		args := []any{"SET", o.Key, o.Value}
		if o.Deadline != 0 {
			args = append(args, "PXAT", o.Deadline)
		}
		err = cl.Do(ctx, args...).Err()
	case ExpireAt:
		o.N, err = cl.Do(ctx, "PEXPIREAT", o.Key, o.Deadline).Int64()
	case Persist:
		o.N, err = cl.Do(ctx, "PERSIST", o.Key).Int64()
	}
	o.Return = r.now()
	o.Outcome = classify(err)
	if err != nil {
		o.Err = err.Error()
	}
}

// expiryOp runs one operation of the expiry workload: reads (GET, PTTL)
// and writes that set, move and clear deadlines a few hundred
// milliseconds ahead, so that keys expire during the run, on the leader
// and its followers and across failovers. Deadlines are absolute (PXAT,
// PEXPIREAT), so the model need not know when the node received a write.
func (r *run) expiryOp(ctx context.Context, cl *redis.Client, rng *rand.Rand, o *Op, seq int) {
	ahead := func() int64 {
		return time.Now().Add(50*time.Millisecond + time.Duration(rng.Int64N(int64(450*time.Millisecond)))).UnixMilli()
	}
	// Reads outnumber writes, so that a key often goes untouched past its
	// deadline and reads see it expire.
	switch p := rng.IntN(20); {
	case p < 9:
		o.Kind = Get
		r.read(ctx, cl, o)
	case p < 12:
		o.Kind = TTL
		r.read(ctx, cl, o)
	case p < 17:
		o.Kind, o.Value = Set, fmt.Sprintf("c%d-%d", o.Client, seq)
		if p < 16 {
			o.Deadline = ahead()
		}
		r.write(ctx, cl, o)
	case p < 19:
		o.Kind, o.Deadline = ExpireAt, ahead()
		r.write(ctx, cl, o)
	default:
		o.Kind = Persist
		r.write(ctx, cl, o)
	}
}

func isMaster(c redis.Cmder) bool {
	cmd, ok := c.(*redis.Cmd)
	if !ok || cmd.Err() != nil {
		return false
	}
	v, err := cmd.Slice()
	return err == nil && len(v) > 0 && v[0] == "master"
}

// classify says what a SET's error proves about whether it applied.
func classify(err error) Outcome {
	if err == nil {
		return OK
	}
	if strings.HasPrefix(err.Error(), "READONLY") {
		return Failed
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return Failed
	}
	return Unknown
}

// discover asks every node for its ROLE and returns the master's index, or
// -1 after a short wait if there is none.
func (r *run) discover(ctx context.Context, conns []*redis.Client) int {
	for i, cl := range conns {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		m, _, err := role(dctx, cl)
		cancel()
		if err == nil && m {
			return i
		}
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return -1
}

// wait waits d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// betweenFaults waits a random time before the next fault: Interval/2 to
// 3*Interval/2.
func (r *run) betweenFaults(ctx context.Context, rng *rand.Rand) error {
	return wait(ctx, r.cfg.Interval/2+time.Duration(rng.Int64N(int64(r.cfg.Interval))))
}

// nemesis injects one fault at a time from faults until ctx ends. Faults
// are serialised: each is healed before the next starts.
func (r *run) nemesis(ctx context.Context, faults []string) error {
	if len(faults) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0xfa017))
	for {
		if err := r.betweenFaults(ctx, rng); err != nil {
			return err
		}
		f := faults[rng.IntN(len(faults))]
		var err error
		switch f {
		case FaultKill:
			err = r.killFollower(ctx, rng)
		case FaultPause:
			err = r.pause(ctx, rng)
		case FaultPromote:
			err = r.failover(ctx)
		case FaultPartition:
			err = r.partition(ctx, rng)
		}
		if err != nil {
			return err
		}
	}
}

// lossSample is a new leader's keys (held) just after a failover whose
// fault began at cut.
type lossSample struct {
	cut    int64
	leader string
	held   map[string]string
	// keys are the keys the new leader's shard owned (a sharded run's
	// failover); nil: every key.
	keys map[string]bool
}

func (r *run) sample(cut int64, leader string, held map[string]string) {
	r.mu.Lock()
	r.samples = append(r.samples, lossSample{cut: cut, leader: leader, held: held})
	r.mu.Unlock()
}

func (r *run) count(f string) {
	r.mu.Lock()
	r.faults[f]++
	r.mu.Unlock()
}

func (r *run) followers() []int {
	leader := r.c.leader
	if r.cfg.Auto {
		leader, _ = r.currentLeader()
	}
	var fs []int
	for i := range r.c.nodes {
		if i != leader {
			fs = append(fs, i)
		}
	}
	return fs
}

// killFollower SIGKILLs a follower and restarts it after a while. The
// restart is not cut short by ctx, so the cluster stays whole.
func (r *run) killFollower(ctx context.Context, rng *rand.Rand) error {
	fs := r.followers()
	n := r.c.nodes[fs[rng.IntN(len(fs))]]
	r.cfg.Logf("nemesis: kill %s", n.name)
	n.kill()
	r.count(FaultKill)
	_ = wait(ctx, 300*time.Millisecond+time.Duration(rng.Int64N(int64(700*time.Millisecond))))
	if r.cfg.Auto {
		return r.c.start(context.Background(), n, "") // etcd tells it whom to follow
	}
	return r.c.start(context.Background(), n, r.c.nodes[r.c.leader].repl)
}

// pause SIGSTOPs any node for about a second, then SIGCONTs it.
func (r *run) pause(ctx context.Context, rng *rand.Rand) error {
	n := r.c.nodes[rng.IntN(len(r.c.nodes))]
	r.cfg.Logf("nemesis: pause %s", n.name)
	n.signal(syscall.SIGSTOP)
	r.count(FaultPause)
	_ = wait(ctx, 500*time.Millisecond+time.Duration(rng.Int64N(int64(time.Second))))
	n.signal(syscall.SIGCONT)
	return nil
}

// partition cuts a random node off the network (other nodes and clients)
// for about a second, then heals it.
func (r *run) partition(ctx context.Context, rng *rand.Rand) error {
	i := rng.IntN(len(r.c.nodes))
	r.cfg.Logf("nemesis: isolate %s", r.c.nodes[i].name)
	if err := r.c.lab.isolate(i, true); err != nil {
		return fmt.Errorf("%w: partition: %v", ErrCluster, err)
	}
	r.count(FaultPartition)
	_ = wait(ctx, 500*time.Millisecond+time.Duration(rng.Int64N(int64(time.Second))))
	if err := r.c.lab.isolate(i, false); err != nil {
		return fmt.Errorf("%w: heal partition: %v", ErrCluster, err)
	}
	return nil
}

// failover kills the leader, waits until both followers stop advancing,
// promotes the one with the highest applied sequence, points the other at
// it and restarts the old leader as its follower. The new leader's state
// just before promotion feeds LossAt.
func (r *run) failover(_ context.Context) error {
	ctx := context.Background() // a failover always completes
	old := r.c.nodes[r.c.leader]
	fs := r.followers()
	cut := r.now()
	r.cfg.Logf("nemesis: failover from %s", old.name)
	old.kill()
	r.count(FaultPromote)

	// Wait until both followers' applied sequences hold still for 300 ms
	// (at most 5 s): nothing more can arrive from the dead leader.
	seqs := make([]int64, len(fs))
	stable, deadline := 0, time.Now().Add(5*time.Second)
	for stable < 6 && time.Now().Before(deadline) {
		changed := false
		for i, f := range fs {
			_, s, err := role(ctx, r.c.nodes[f].ctl)
			if err != nil {
				return fmt.Errorf("%w: failover: ROLE on %s: %v", ErrCluster, r.c.nodes[f].name, err)
			}
			if s != seqs[i] {
				seqs[i], changed = s, true
			}
		}
		if changed {
			stable = 0
		} else {
			stable++
		}
		_ = wait(ctx, 50*time.Millisecond)
	}
	best := 0
	for i := range fs {
		if seqs[i] > seqs[best] {
			best = i
		}
	}
	nl, other := r.c.nodes[fs[best]], r.c.nodes[fs[1-best]]

	state := map[string]string{}
	keys := make([]string, r.cfg.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	vals, err := nl.ctl.MGet(ctx, keys...).Result()
	if err != nil {
		return fmt.Errorf("%w: failover: MGET on %s: %v", ErrCluster, nl.name, err)
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			state[keys[i]] = s
		}
	}
	if err := replicaOf(ctx, nl, ""); err != nil {
		return err
	}
	r.c.leader = fs[best]
	r.sample(cut, nl.name, state)
	r.cfg.Logf("nemesis: promoted %s (applied %v)", nl.name, seqs)
	if err := replicaOf(ctx, other, nl.repl); err != nil {
		return err
	}
	if err := r.c.start(ctx, old, nl.repl); err != nil {
		return err
	}
	return nil
}
