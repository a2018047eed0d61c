package replicate

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/logkv/logkv"
	_ "github.com/logkv/logkv/memory"
	"github.com/logkv/logkv/replicate/transport"
	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

func openMemory(bool) (logkv.Engine, error) { return logkv.Open("memory", "", nil) }

// testLogger logs to t when -v, and is silent otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// cluster is a set of nodes on one in-memory network, each with its own
// MemFS.
type cluster struct {
	t     *testing.T
	net   *transport.MemNetwork
	fs    map[string]*vfs.MemFS
	nodes map[string]*Replica
	addr  map[string]string // where each node listens when it leads
	base  func(id string) Config
}

func newCluster(t *testing.T, base func(c *Config)) *cluster {
	c := &cluster{t: t, net: transport.NewMemNetwork(256 << 10), fs: map[string]*vfs.MemFS{}, nodes: map[string]*Replica{}, addr: map[string]string{}}
	c.base = func(id string) Config {
		cfg := Config{
			ID: id, Dir: "node", OpenEngine: openMemory, Checkpoint: true,
			Transport: c.net.Transport(id), ListenAddr: id, MaintainEvery: -1,
			RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond,
			Heartbeat: 50 * time.Millisecond, Logger: testLogger(t).With("node", id),
		}
		if base != nil {
			base(&cfg)
		}
		return cfg
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.Close()
		}
	})
	return c
}

// start opens node id as leader (leader == "") or as a follower of leader.
func (c *cluster) start(id, leader string, mod ...func(*Config)) *Replica {
	cfg := c.base(id)
	if c.fs[id] == nil {
		c.fs[id] = vfs.NewMem()
	}
	cfg.FS = c.fs[id]
	cfg.Role = Leader
	if leader != "" {
		cfg.Role, cfg.LeaderAddr = Follower, c.addrOf(leader)
	}
	for _, m := range mod {
		m(&cfg)
	}
	n, err := Open(cfg)
	require.NoError(c.t, err)
	c.nodes[id] = n
	if a := n.Addr(); a != "" {
		c.addr[id] = a
	}
	return n
}

func (c *cluster) addrOf(id string) string {
	if a, ok := c.addr[id]; ok {
		return a
	}
	return id
}

func (c *cluster) stop(id string) {
	require.NoError(c.t, c.nodes[id].Close())
	delete(c.nodes, id)
}

func (c *cluster) wipe(id string) { delete(c.fs, id) }

// write commits n single-key batches to leader from w writers and returns
// the last seq.
func write(t testing.TB, leader *Replica, from, n, writers int) uint64 {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last uint64
	per := (n + writers - 1) / writers
	for w := range writers {
		wg.Go(func() {
			var b logkv.Batch
			for i := from + w*per; i < from+min((w+1)*per, n); i++ {
				b.Reset()
				b.Set(fmt.Appendf(nil, "key%08d", i), fmt.Appendf(nil, "value-%d-%d", i, i*7))
				if i%10 == 9 {
					b.Delete(fmt.Appendf(nil, "key%08d", i-5))
				}
				seq, err := leader.Write(&b)
				require.NoError(t, err)
				mu.Lock()
				last = max(last, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return last
}

func scan(t testing.TB, e logkv.Reader) map[string]string {
	it, err := e.NewIter(nil)
	require.NoError(t, err)
	m := map[string]string{}
	for k, v := range logkv.All(it) {
		m[string(k)] = string(v)
	}
	require.NoError(t, it.Close())
	return m
}

func waitApplied(t testing.TB, seq uint64, nodes ...*Replica) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range nodes {
		require.NoError(t, n.WaitApplied(ctx, seq), "node %s", n.ID())
	}
}

func requireConverged(t testing.TB, leader *Replica, followers ...*Replica) {
	last := leader.LastSeq()
	waitApplied(t, last, followers...)
	want := scan(t, leader.Engine())
	for _, f := range followers {
		require.Equal(t, last, f.Engine().LastSeq(), "node %s", f.ID())
		got := scan(t, f.Engine())
		require.Equal(t, len(want), len(got), "node %s", f.ID())
		require.Equal(t, want, got, "node %s", f.ID())
	}
}

func vfsDrop() vfs.CrashOptions { return vfs.CrashOptions{} }

// leaderHearsAll waits until the leader has every follower's ack, applied
// and durable, for its last seq (a follower acks after it applies and syncs,
// so its own WaitApplied returns first); only then does the leader's
// retention let the log go.
func leaderHearsAll(t testing.TB, leader *Replica) {
	last := leader.LastSeq()
	require.Eventually(t, func() bool {
		for _, s := range leader.Followers() {
			if s.Applied < last || s.Durable < last {
				return false
			}
		}
		return true
	}, 30*time.Second, time.Millisecond, "the leader hears every follower's ack")
}
