package replicate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/internal/netimpair"
	"github.com/logkv/logkv/replicate/transport"
	"github.com/stretchr/testify/require"
)

// impairTimeout bounds each wait for followers in TestImpairConvergence; a
// healthy run needs a few seconds in all.
const impairTimeout = 30 * time.Second

// TestImpairConvergence is the network-fault test of issue #5 without
// netem: a leader and two followers over QUIC with mutual TLS, each
// follower reaching the leader through its own netimpair proxy (user space,
// so it runs anywhere, CI included).
//
// Phase 1: both links delay 20ms±5ms, lose 2% and reorder 5% of the
// datagrams each way while the leader takes a few thousand writes; both
// followers converge. Phase 2: c's link is partitioned while writes go on;
// both ends notice (QUIC idle timeout), b keeps up meanwhile, the leader
// reports c's lag, and c's first redial times out; the link heals and c
// reconnects and catches up from its own seq, without a full resync.
func TestImpairConvergence(t *testing.T) {
	var logs lockedBuffer
	ca, err := transport.NewCA("impair CA")
	require.NoError(t, err)
	c := newCluster(t, func(cfg *Config) {
		var w io.Writer = &logs
		if testing.Verbose() {
			w = io.MultiWriter(&logs, tWriter{t})
		}
		cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
		id, err := ca.Identity(cfg.ID, "127.0.0.1")
		require.NoError(t, err)
		// A short idle timeout makes the partition show within seconds;
		// keep-alives every 300ms keep a lossy but live link up.
		tr, err := transport.NewQUIC(transport.QUICOptions{
			Identity: id, Logger: cfg.Logger,
			IdleTimeout: 2 * time.Second, KeepAlive: 300 * time.Millisecond, HandshakeTimeout: time.Second,
		})
		require.NoError(t, err)
		cfg.Transport, cfg.ListenAddr = tr, "127.0.0.1:0"
		cfg.RetryMin, cfg.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", logs.String())
		}
	})

	lossy := netimpair.Impairment{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.02, Reorder: 0.05}
	a := c.start("a", "")
	proxy := func(seed uint64) *netimpair.Proxy {
		p, err := netimpair.New(a.Addr(), &netimpair.Options{Up: lossy, Down: lossy, Seed: seed})
		require.NoError(t, err)
		t.Cleanup(func() { p.Close() })
		return p
	}
	pb, pc := proxy(1), proxy(2)
	via := func(p *netimpair.Proxy) func(*Config) {
		return func(cfg *Config) { cfg.LeaderAddr = p.Addr() }
	}
	b := c.start("b", "a", via(pb))
	cn := c.start("c", "a", via(pc))

	// Phase 0, for comparison: the same load through clean links.
	const batches, valueSize = 3000, 256
	require.NoError(t, pb.Set(netimpair.Impairment{}, netimpair.Impairment{}))
	require.NoError(t, pc.Set(netimpair.Impairment{}, netimpair.Impairment{}))
	bulk := func(phase string, from int) {
		start := time.Now()
		impairWriteRange(t, a, from, batches, 8, valueSize)
		wrote := time.Since(start)
		impairConverged(t, a, b, cn)
		took := time.Since(start)
		t.Logf("%s: %d writes of %dB values took %v on the leader; followers converged after %v (%.0f records/s, %.2f MB/s)",
			phase, batches, valueSize, wrote.Round(time.Millisecond), took.Round(time.Millisecond),
			batches/took.Seconds(), batches*valueSize/took.Seconds()/1e6)
	}
	bulk("phase 0, clean links", 0)

	// Phase 1: delay, loss and reordering.
	require.NoError(t, pb.Set(lossy, lossy))
	require.NoError(t, pc.Set(lossy, lossy))
	bulk("phase 1, lossy links", batches)
	for name, p := range map[string]*netimpair.Proxy{"b": pb, "c": pc} {
		// Phase 0 lost and reordered nothing: these are phase 1's. With
		// ~700 datagrams down and ~100 up, the chance that none is lost
		// (0.98^800) or held (0.95^800) is nil.
		s := p.Stats()
		t.Logf("phase 1, %s's link: up %+v; down %+v", name, s.Up, s.Down)
		require.NotZero(t, s.Up.Lost+s.Down.Lost, "%s's link lost datagrams", name)
		require.NotZero(t, s.Up.Reordered+s.Down.Reordered, "%s's link reordered datagrams", name)
	}
	require.Equal(t, uint64(1), b.Status().Connects, "loss and delay alone do not break b's connection")
	require.Equal(t, uint64(1), cn.Status().Connects, "loss and delay alone do not break c's connection")

	// Phase 2: partition c's link while the leader keeps taking writes.
	wctx, stopWriting := context.WithCancel(context.Background())
	writerDone := make(chan error, 1)
	go func() { writerDone <- impairWriteUntil(wctx, a, 2*batches) }()
	stopped := false
	stopWriter := func() {
		if !stopped {
			stopped = true
			stopWriting()
			require.NoError(t, <-writerDone)
		}
	}
	t.Cleanup(stopWriter)

	pc.Partition(true)
	partStart := time.Now()
	require.Eventually(t, func() bool {
		return cn.Status().State != StateStreaming && impairPeer(a, "c").State != StateStreaming
	}, impairTimeout, 5*time.Millisecond, "both ends notice the partition")
	t.Logf("phase 2: partition noticed by c and the leader after %v", time.Since(partStart).Round(time.Millisecond))
	// b, on its own lossy link, keeps up while c is cut off.
	seq := a.LastSeq()
	impairWaitApplied(t, seq, b)
	require.Less(t, cn.Status().Applied, seq, "c, partitioned, did not get the writes since")
	lag := impairPeer(a, "c").LagRecords
	require.NotZero(t, lag, "the leader reports c's lag")
	// Hold the partition past a failed redial: every dial makes a new
	// flow through the proxy, so a third flow means the second (the first
	// redial) timed out.
	require.Eventually(t, func() bool { return pc.Stats().Flows >= 3 }, impairTimeout, 5*time.Millisecond,
		"c redials through the partition")
	require.Equal(t, uint64(1), cn.Status().Connects, "no dial got through the partition")
	appliedAtHeal := cn.Status().Applied

	pc.Partition(false)
	healed := time.Now()
	// c reconnects while writes continue, and catches up past the writes
	// made before the heal.
	impairWaitApplied(t, a.LastSeq(), cn)
	t.Logf("phase 2: partitioned for %v (c %d records behind, as the leader saw it); c caught up %d records within %v of the heal",
		healed.Sub(partStart).Round(time.Millisecond), lag, a.LastSeq()-appliedAtHeal, time.Since(healed).Round(time.Millisecond))
	stopWriter()
	impairConverged(t, a, b, cn)
	leaderHearsAll(t, a)
	t.Logf("phase 2: %d writes in all; c's link: %+v", a.LastSeq(), pc.Stats())

	require.Greater(t, cn.Status().Connects, uint64(1), "c reconnected after the partition")
	require.Zero(t, cn.Status().Resyncs, "c caught up from its own seq, without a full resync")
	require.Equal(t, uint64(1), b.Status().Connects, "b's connection survived")
	for _, s := range a.Followers() {
		require.Equal(t, StateStreaming, s.State, "follower %s", s.ID)
	}
	warns := strings.Count(logs.String(), "level=WARN")
	t.Logf("%d warnings logged, %d of them redials", warns, strings.Count(logs.String(), "replication stream ended; redialing"))
}

// impairWriteRange commits n single-key batches with values of valueSize
// bytes, keys from "key" from on, to leader from w writers.
func impairWriteRange(t testing.TB, leader *Replica, from, n, writers, valueSize int) {
	errs := make(chan error, writers)
	per := (n + writers - 1) / writers
	for w := range writers {
		go func() {
			var b logkv.Batch
			value := make([]byte, valueSize)
			for i := from + w*per; i < from+min((w+1)*per, n); i++ {
				b.Reset()
				copy(value, fmt.Appendf(nil, "value-%d-", i))
				b.Set(fmt.Appendf(nil, "key%08d", i), value)
				if _, err := leader.Write(&b); err != nil {
					errs <- fmt.Errorf("write %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		require.NoError(t, <-errs)
	}
}

// impairWriteUntil writes single-key batches to leader, keys from "key"
// from on, about one a millisecond (a steady load rather than a flood the
// lossy links would take long to carry), until ctx is done.
func impairWriteUntil(ctx context.Context, leader *Replica, from int) error {
	pace := time.NewTicker(time.Millisecond)
	defer pace.Stop()
	var b logkv.Batch
	for i := from; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-pace.C:
		}
		b.Reset()
		b.Set(fmt.Appendf(nil, "key%08d", i), fmt.Appendf(nil, "value-%d-%d", i, i*7))
		if _, err := leader.Write(&b); err != nil {
			return fmt.Errorf("write %d: %w", i, err)
		}
	}
}

// impairPeer is the leader's view of follower id (zero if it never
// connected).
func impairPeer(leader *Replica, id string) FollowerStatus {
	for _, s := range leader.Followers() {
		if s.ID == id {
			return s
		}
	}
	return FollowerStatus{}
}

// impairWaitApplied waits, at most impairTimeout, until every node has
// applied seq.
func impairWaitApplied(t testing.TB, seq uint64, nodes ...*Replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), impairTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.WaitApplied(ctx, seq) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "node %s applying seq %d (at %d)", nodes[i].ID(), seq, nodes[i].Status().Applied)
	}
}

// impairConverged waits, at most impairTimeout, for the followers to apply
// the leader's last seq, and checks their full scans equal the leader's.
func impairConverged(t testing.TB, leader *Replica, followers ...*Replica) {
	t.Helper()
	impairWaitApplied(t, leader.LastSeq(), followers...)
	requireConverged(t, leader, followers...)
}
