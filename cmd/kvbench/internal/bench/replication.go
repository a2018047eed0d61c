package bench

// Replication benchmarks: a leader and followers of package replicate, in
// this process, over QUIC with mutual TLS on loopback (certificates made in
// memory), each node with its own engine and commit log in its own directory.
// See cmd/kvbench/README.md, "Replication".

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate"
	"github.com/logkv/logkv/replicate/transport"
)

// ReplicationBenchmarks are the replication benchmarks; "replicate" in
// Config.Benchmarks stands for all three, in this order.
var ReplicationBenchmarks = []string{"replicate-write", "replicate-lag", "replicate-catchup"}

// Replication targets of the issue, printed beside the figures.
const (
	targetWriteRatio = 0.9                   // replicated/unreplicated write throughput
	targetLagP99     = 50 * time.Millisecond // p99 of ack-to-applied lag
	targetCatchUpMBs = 100.0                 // catch-up MB/s of log
)

// replWaitTimeout bounds every wait for a follower to apply a seq: a
// follower that stops making progress fails the benchmark instead of hanging.
const replWaitTimeout = 10 * time.Minute

// expandReplicate replaces "replicate" in names by the three replication
// benchmarks.
func expandReplicate(names []string) []string {
	var out []string
	for _, n := range names {
		if n == "replicate" {
			out = append(out, ReplicationBenchmarks...)
		} else {
			out = append(out, n)
		}
	}
	return out
}

// replCluster is a leader and its followers in one process.
type replCluster struct {
	engine string
	dir    string
	// followerDir holds the followers' directories: dir, or a temporary
	// directory under Config.FollowerDir.
	followerDir string
	ca          *transport.CA
	retention   int64
	// resyncRatio is the followers' Config.ResyncBacklogRatio (0: default).
	resyncRatio float64
	leader      *replicate.Replica
	followers   []*replicate.Replica
}

// newReplCluster opens a leader of the session's engine (listening on
// loopback when withListener) under dir, with resyncRatio as every node's
// ResyncBacklogRatio. Followers go under dir too, unless the session's
// FollowerDir is set.
func (s *session) newReplCluster(dir string, retention int64, withListener bool, resyncRatio float64) (*replCluster, error) {
	ca, err := transport.NewCA("kvbench CA")
	if err != nil {
		return nil, err
	}
	c := &replCluster{engine: s.engine, dir: dir, followerDir: dir, ca: ca, retention: retention, resyncRatio: resyncRatio}
	cfg, err := c.config(leaderID)
	if err != nil {
		return nil, err
	}
	cfg.Role = replicate.Leader
	if !withListener {
		cfg.ListenAddr, cfg.Transport = "", nil
	}
	if c.leader, err = replicate.Open(cfg); err != nil {
		return nil, fmt.Errorf("open leader: %w", err)
	}
	if s.cfg.FollowerDir != "" {
		if c.followerDir, err = os.MkdirTemp(s.cfg.FollowerDir, "kvbench-followers-"); err != nil {
			return nil, errors.Join(err, c.leader.Close())
		}
	}
	return c, nil
}

// config is node id's configuration: its own QUIC identity, commit log in
// dir/id/node and engine in dir/id/engine (followerDir for followers).
// Checkpointing is on (the memory engine needs it) but never due, and
// retention exceeds any backlog, so the leader keeps its whole log and a late
// follower catches up by streaming it.
func (c *replCluster) config(id string) (replicate.Config, error) {
	ident, err := c.ca.Identity(id, "127.0.0.1")
	if err != nil {
		return replicate.Config{}, err
	}
	tr, err := transport.NewQUIC(transport.QUICOptions{Identity: ident})
	if err != nil {
		return replicate.Config{}, err
	}
	root := c.dir
	if id != leaderID {
		root = c.followerDir
	}
	engineDir := filepath.Join(root, id, "engine")
	open := func(wipe bool) (logkv.Engine, error) {
		if wipe {
			if err := os.RemoveAll(engineDir); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(engineDir, 0o755); err != nil {
			return nil, err
		}
		opts, err := logkv.NewOptions(c.engine)
		if err != nil {
			return nil, err
		}
		if ext, ok := opts.(logkv.ExternalWAL); ok {
			// As under kvnode: the commit log is the engine's WAL.
			ext.UseExternalWAL()
		}
		return logkv.Open(c.engine, engineDir, opts)
	}
	return replicate.Config{
		ID: id, Dir: filepath.Join(root, id, "node"), OpenEngine: open,
		Transport: tr, ListenAddr: "127.0.0.1:0", AckMode: replicate.Async,
		Checkpoint: true, CheckpointEvery: 1 << 50, RetentionBytes: c.retention,
		ResyncBacklogRatio: c.resyncRatio,
		Logger:             slog.New(slog.DiscardHandler),
	}, nil
}

// leaderID is the leader's node id.
const leaderID = "leader"

// startFollower opens follower i, which dials the leader.
func (c *replCluster) startFollower(i int) (*replicate.Replica, error) {
	cfg, err := c.config(fmt.Sprintf("f%d", i))
	if err != nil {
		return nil, err
	}
	cfg.Role, cfg.LeaderAddr, cfg.ListenAddr = replicate.Follower, c.leader.Addr(), ""
	f, err := replicate.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("open follower %d: %w", i, err)
	}
	c.followers = append(c.followers, f)
	return f, nil
}

// waitApplied waits until every follower has applied seq.
func (c *replCluster) waitApplied(ctx context.Context, seq uint64) error {
	ctx, cancel := context.WithTimeout(ctx, replWaitTimeout)
	defer cancel()
	for _, f := range c.followers {
		if err := f.WaitApplied(ctx, seq); err != nil {
			return fmt.Errorf("follower %s: %w", f.ID(), err)
		}
	}
	return nil
}

// diverged counts, over all followers, the keys whose presence or value
// differs from the leader's.
func (c *replCluster) diverged() (int64, error) {
	var bad int64
	for _, f := range c.followers {
		n, err := diffEngines(c.leader.Engine(), f.Engine())
		if err != nil {
			return bad, fmt.Errorf("compare follower %s: %w", f.ID(), err)
		}
		bad += n
	}
	return bad, nil
}

// close closes the followers, then the leader, and removes the directory.
func (c *replCluster) close() error {
	var errs []error
	for _, f := range c.followers {
		errs = append(errs, f.Close())
	}
	errs = append(errs, c.leader.Close(), os.RemoveAll(c.dir), os.RemoveAll(c.followerDir))
	return errors.Join(errs...)
}

// diffEngines walks a and b in key order together and counts the keys one
// holds and the other does not, or with different values.
func diffEngines(a, b logkv.Engine) (n int64, err error) {
	ia, err := a.NewIter(nil)
	if err != nil {
		return 0, err
	}
	// Close reports what went wrong during the walk (a read that failed):
	// a count from a broken walk is not a count.
	defer func() { err = errors.Join(err, ia.Close()) }()
	ib, err := b.NewIter(nil)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, ib.Close()) }()
	var bad int64
	oka, okb := ia.First(), ib.First()
	for oka || okb {
		var c int
		switch {
		case !okb:
			c = -1
		case !oka:
			c = 1
		default:
			c = bytes.Compare(ia.Key(), ib.Key())
		}
		switch {
		case c < 0:
			bad++
			oka = ia.Next()
		case c > 0:
			bad++
			okb = ib.Next()
		default:
			if !bytes.Equal(ia.Value(), ib.Value()) {
				bad++
			}
			oka, okb = ia.Next(), ib.Next()
		}
	}
	return bad, errors.Join(ia.Error(), ib.Error())
}

// runReplication runs one replication benchmark in a fresh cluster under the
// session's directory, removed afterwards.
func (s *session) runReplication(ctx context.Context, b *benchRun) ([]Result, error) {
	dir := filepath.Join(s.dir, "replicate")
	switch b.name {
	case "replicate-write":
		return s.replWrite(ctx, b, dir)
	case "replicate-lag":
		return s.replLag(ctx, b, dir)
	case "replicate-catchup":
		return s.replCatchUp(ctx, b, dir)
	}
	return nil, fmt.Errorf("%w: unknown benchmark %q", ErrUsage, b.name)
}

// replWrite measures write throughput through a leader with no followers
// (unreplicated-write: the same commit log, group fsync and engine, nothing
// shipped) and then through a leader with Followers followers
// (replicate-write), each with Threads writers and Num writes in groups of
// Batch, keys in fillrandom's order (odd rounds in the other order). The
// replicated result carries the ratio.
// The writers' wall time is measured (async ack: the leader's fsync); the
// time for the followers to apply everything after the last ack is noted.
func (s *session) replWrite(ctx context.Context, b *benchRun, dir string) ([]Result, error) {
	// Odd rounds run the replicated case first, so that neither gains from
	// going second (a warmer page cache, a disk still flushing the other).
	order := []int{0, s.cfg.Followers}
	if s.round%2 == 1 {
		slices.Reverse(order)
	}
	byFollowers := map[int]Result{}
	for _, followers := range order {
		name := "unreplicated-write"
		if followers > 0 {
			name = "replicate-write"
		}
		c, err := s.newReplCluster(dir, 1<<50, followers > 0, 0)
		if err != nil {
			return nil, err
		}
		r, err := s.replWriteOnce(ctx, b, c, name, followers)
		if cerr := c.close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		byFollowers[followers] = r
	}
	base, repl := byFollowers[0], byFollowers[s.cfg.Followers]
	if base.OpsPerSec > 0 {
		repl.Ratio = repl.OpsPerSec / base.OpsPerSec
	}
	repl.Note = fmt.Sprintf("%.2fx unreplicated-write, target >= %.1fx: %s; %s", repl.Ratio, targetWriteRatio, metOrNot(repl.Ratio >= targetWriteRatio), repl.Note)
	return []Result{base, repl}, nil
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (s *session) replWriteOnce(ctx context.Context, b *benchRun, c *replCluster, name string, followers int) (Result, error) {
	cfg := s.cfg
	for i := range followers {
		if _, err := c.startFollower(i); err != nil {
			return Result{}, err
		}
	}
	n := cfg.Num
	perm := newPermutation(uint64(n), cfg.Seed)
	perOp := cfg.KeySize + cfg.ValueSize
	var last atomic.Uint64
	rb := *b
	rb.name = name
	rb.expected = int64(n)
	cpu0, wall0 := ProcessCPU(), time.Now()
	t, err := runWorkers(ctx, &rb, nil, func(ctx context.Context, w *worker) error {
		h := w.hist("write")
		lo, hi := share(n, cfg.Threads, w.id)
		var batch logkv.Batch
		for i := lo; i < hi; {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			batch.Reset()
			end := min(i+cfg.Batch, hi)
			for j := i; j < end; j++ {
				k := perm.at(uint64(j))
				w.kbuf = appendKey(w.kbuf[:0], k, cfg.KeySize)
				batch.Set(w.kbuf, w.vals.value(k))
			}
			t0 := time.Now()
			seq, err := c.leader.Write(&batch)
			d := time.Since(t0)
			if err != nil {
				return err
			}
			maxSeq(&last, seq)
			w.did(h, d, end-i, perOp*(end-i))
			i = end
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	acked := time.Now()
	// The CPU the whole process (leader and followers) used while the
	// writers ran, in cores: how much of the machine replication took.
	cores := (ProcessCPU() - cpu0).Seconds() / acked.Sub(wall0).Seconds()
	if err := c.waitApplied(ctx, last.Load()); err != nil {
		return Result{}, err
	}
	drain := time.Since(acked)
	bad, err := c.diverged()
	if err != nil {
		return Result{}, err
	}
	r := rb.result(t, "all", t.ops["write"], t.bytes, summarize(t.hists["write"]))
	r.Benchmark, r.Followers, r.Errors = name, followers, bad
	r.Note = fmt.Sprintf("process CPU %.2f of %d cores", cores, runtime.GOMAXPROCS(0))
	if followers > 0 {
		r.Note += fmt.Sprintf("; %d followers applied all %.2fs after the last ack", followers, drain.Seconds())
	}
	return r, nil
}

// maxSeq raises m to seq.
func maxSeq(m *atomic.Uint64, seq uint64) {
	for {
		l := m.Load()
		if seq <= l || m.CompareAndSwap(l, seq) {
			return
		}
	}
}

// lagSample is a write to time on a follower: its seq and when the leader
// acknowledged it.
type lagSample struct {
	seq   uint64
	acked time.Time
}

// lagWriters is the number of writers of replicate-lag: at least Threads,
// and Rate/50 within 32..1024. Each write waits for the leader's group fsync
// (a few ms on a loaded disk), so the writers in flight must cover the rate
// times that wait, or the offered load would be bound by the fsync, not Rate.
func lagWriters(cfg *Config) int {
	return max(cfg.Threads, min(1024, max(32, cfg.Rate/50)))
}

// replLag writes Num writes (or for Duration) paced at Rate writes/s from
// lagWriters writers with Followers followers streaming, and samples
// about 2000 writes a second: for each, a sampler goroutine per follower
// waits (Node.WaitApplied) until the follower applied it and records the
// time since the leader acknowledged it.
func (s *session) replLag(ctx context.Context, b *benchRun, dir string) (_ []Result, err error) {
	cfg := s.cfg
	c, err := s.newReplCluster(dir, 1<<50, true, 0)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := c.close(); err == nil {
			err = cerr
		}
	}()
	for i := range cfg.Followers {
		if _, err := c.startFollower(i); err != nil {
			return nil, err
		}
	}
	// The followers are connected before the clock starts.
	if seq, err := c.leader.Write(&logkv.Batch{}); err == nil && seq > 0 {
		if err := c.waitApplied(ctx, seq); err != nil {
			return nil, err
		}
	}
	interval := time.Second / time.Duration(cfg.Rate)
	n := int64(cfg.Num)
	if cfg.Duration > 0 {
		n = int64(cfg.Duration / interval)
	}
	sampleEvery := int64(max(1, cfg.Rate/2000))
	perOp := cfg.KeySize + cfg.ValueSize
	perm := newPermutation(uint64(max(n, 1)), cfg.Seed)

	wctx, cancel := context.WithTimeout(ctx, replWaitTimeout)
	defer cancel()
	hists := make([]*hdrhistogram.Histogram, len(c.followers))
	queues := make([]chan lagSample, len(c.followers))
	var samplers sync.WaitGroup
	var samplerErr atomic.Pointer[error]
	for i, f := range c.followers {
		hists[i], queues[i] = newHist(), make(chan lagSample, 1<<16)
		samplers.Go(func() {
			for smp := range queues[i] {
				if err := f.WaitApplied(wctx, smp.seq); err != nil {
					samplerErr.CompareAndSwap(nil, &err)
					cancel()
					for range queues[i] { // drain so writers never block
					}
					return
				}
				record(hists[i], time.Since(smp.acked))
			}
		})
	}
	var next, dropped atomic.Int64
	rb := *b
	rb.expected = n
	lb := rb
	lb.cfg = &Config{}
	*lb.cfg = *cfg
	lb.cfg.Threads = lagWriters(cfg)
	begin := time.Now() // the workers' setup is empty: their clock starts now
	t, werr := runWorkers(wctx, &lb, func(w *worker) error { return nil }, func(ctx context.Context, w *worker) error {
		h := w.hist("write")
		var batch logkv.Batch
		for {
			i := next.Add(1) - 1
			if i >= n || ctx.Err() != nil {
				return ctx.Err()
			}
			// Open loop: write i is due at i*interval from the start; a
			// late writer writes at once (the achieved rate is reported).
			if d := time.Duration(i) * interval; d > 0 {
				if wait := time.Until(begin.Add(d)); wait > 0 {
					time.Sleep(wait) // pacing, not synchronisation
				}
			}
			batch.Reset()
			k := perm.at(uint64(i))
			w.kbuf = appendKey(w.kbuf[:0], k, cfg.KeySize)
			batch.Set(w.kbuf, w.vals.value(k))
			t0 := time.Now()
			seq, err := c.leader.Write(&batch)
			acked := time.Now()
			if err != nil {
				return err
			}
			w.did(h, acked.Sub(t0), 1, perOp)
			if i%sampleEvery == 0 {
				for _, q := range queues {
					select {
					case q <- lagSample{seq: seq, acked: acked}:
					default:
						dropped.Add(1)
					}
				}
			}
		}
	})
	for _, q := range queues {
		close(q)
	}
	samplers.Wait()
	if werr != nil {
		return nil, werr
	}
	if p := samplerErr.Load(); p != nil {
		return nil, *p
	}
	if err := c.waitApplied(ctx, c.leader.LastSeq()); err != nil {
		return nil, err
	}
	bad, err := c.diverged()
	if err != nil {
		return nil, err
	}
	all := newHist()
	for _, h := range hists {
		all.Merge(h)
	}
	lat := summarize(all)
	p99 := time.Duration(all.ValueAtQuantile(99))
	mk := func(op string, h *hdrhistogram.Histogram, note string) Result {
		r := lb.result(t, op, t.ops["write"], t.bytes, summarize(h))
		r.Threads, r.Followers, r.Rate = lb.cfg.Threads, cfg.Followers, cfg.Rate
		r.Samples = h.TotalCount()
		r.Note = note
		return r
	}
	total := mk("all", all, fmt.Sprintf("lag ack->applied, %d samples on %d followers, %d dropped; offered %d/s; p99 %.2f ms, target < %v: %s",
		all.TotalCount(), len(hists), dropped.Load(), cfg.Rate, float64(p99)/1e6, targetLagP99, metOrNot(p99 < targetLagP99)))
	total.Latency, total.Errors = lat, bad
	out := []Result{total}
	for i, f := range c.followers {
		out = append(out, mk("lag-"+f.ID(), hists[i], "lag on "+f.ID()))
	}
	out = append(out, mk("write", t.hists["write"], "leader write latency (ack)"))
	return out, nil
}

// replCatchUp writes a backlog of about BacklogBytes of keys and values to a
// leader with no follower running (max(Threads, 4) writers, 64 keys a batch),
// then starts one follower with an empty log and engine and times until it
// has applied the last seq. MB/s is the leader's log bytes over that time.
// The note says whether the follower streamed the log or needed a full
// resync (its Status().Resyncs); the followers' keys are then compared with
// the leader's.
func (s *session) replCatchUp(ctx context.Context, b *benchRun, dir string) (_ []Result, err error) {
	cfg := s.cfg
	ratio := 0.0 // the leader's choice
	if cfg.CatchUp == "log" {
		ratio = -1
	}
	c, err := s.newReplCluster(dir, max(4<<30, 2*cfg.BacklogBytes), true, ratio)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := c.close(); err == nil {
			err = cerr
		}
	}()
	perOp := cfg.KeySize + cfg.ValueSize
	n := int(max(1, cfg.BacklogBytes/int64(perOp)))
	const per = 64
	perm := newPermutation(uint64(n), cfg.Seed)
	var last atomic.Uint64
	fb := *b
	fb.name, fb.expected = "replicate-backlog", int64(n)
	fb.cfg = &Config{}
	*fb.cfg = *cfg
	fb.cfg.Threads = max(cfg.Threads, 4)
	fill, err := runWorkers(ctx, &fb, nil, func(ctx context.Context, w *worker) error {
		lo, hi := share(n, fb.cfg.Threads, w.id)
		var batch logkv.Batch
		for i := lo; i < hi; i += per {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			batch.Reset()
			for j := i; j < min(i+per, hi); j++ {
				k := perm.at(uint64(j))
				w.kbuf = appendKey(w.kbuf[:0], k, cfg.KeySize)
				batch.Set(w.kbuf, w.vals.value(k))
			}
			seq, err := c.leader.Write(&batch)
			if err != nil {
				return err
			}
			maxSeq(&last, seq)
			w.done.Add(int64(min(per, hi-i)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backlog: %w", err)
	}
	logBytes := c.leader.Log().Size()
	t0 := time.Now()
	f, err := c.startFollower(0)
	if err != nil {
		return nil, err
	}
	// The follower's log (Status().LastSeq) and its engine (WaitApplied)
	// advance separately: poll the log so the note can tell shipping from
	// applying.
	received := make(chan time.Duration, 1)
	pollCtx, stopPoll := context.WithCancel(ctx)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if f.Status().LastSeq >= last.Load() {
				received <- time.Since(t0)
				return
			}
			select {
			case <-pollCtx.Done():
				received <- 0
				return
			case <-tick.C:
			}
		}
	}()
	err = c.waitApplied(ctx, last.Load())
	elapsed := time.Since(t0)
	stopPoll()
	logDone := <-received
	if err != nil {
		return nil, err
	}
	bad, err := c.diverged()
	if err != nil {
		return nil, err
	}
	st := f.Status()
	mode := "log streaming"
	if st.Resyncs > 0 {
		mode = fmt.Sprintf("full resync (%d)", st.Resyncs)
	}
	r := b.result(tally{elapsed: elapsed}, "all", int64(n), logBytes, Latency{})
	r.Followers, r.CatchUp = 1, mode
	r.Errors = bad
	shipped := "the log arrived with the last apply"
	if logDone > 0 {
		shipped = fmt.Sprintf("the whole log was in the follower's log after %.2fs (%.1f MB/s)", logDone.Seconds(), float64(logBytes)/logDone.Seconds()/1e6)
	}
	r.Note = fmt.Sprintf("caught up %.1f MB of log (%d keys, written at %.1f MB/s) by %s, %s; target >= %.0f MB/s: %s",
		float64(logBytes)/1e6, n, float64(logBytes)/fill.elapsed.Seconds()/1e6, mode, shipped, targetCatchUpMBs, metOrNot(r.MBPerSec >= targetCatchUpMBs))
	return []Result{r}, nil
}

// isReplication reports whether name is a replication benchmark.
func isReplication(name string) bool { return slices.Contains(ReplicationBenchmarks, name) }
