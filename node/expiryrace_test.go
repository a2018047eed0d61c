package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// gatedBackend holds the next Barrier or Apply, once armed, until released:
// it stops a writing command at a chosen point while the test moves the
// clock and reads.
type gatedBackend struct {
	backend
	mu      sync.Mutex
	barrier bool // hold the next Barrier, not the next Apply
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedBackend) arm(barrier bool) (entered, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.barrier, g.armed = barrier, true
	g.entered, g.release = make(chan struct{}), make(chan struct{})
	return g.entered, g.release
}

func (g *gatedBackend) hold(barrier bool) {
	g.mu.Lock()
	if !g.armed || g.barrier != barrier {
		g.mu.Unlock()
		return
	}
	g.armed = false
	entered, release := g.entered, g.release
	g.mu.Unlock()
	close(entered)
	<-release
}

func (g *gatedBackend) Barrier() error {
	g.hold(true)
	return g.backend.Barrier()
}

func (g *gatedBackend) Apply(b *logkv.Batch) error {
	g.hold(false)
	return g.backend.Apply(b)
}

// TestExpiredKeyStaysExpired: once a reader saw a key expire, no write
// brings it back, and a write that found the key alive before its deadline
// is what readers see after the deadline (issue #15; keyspace.go, "Expiry
// and writes").
func TestExpiredKeyStaysExpired(t *testing.T) {
	ctx := context.Background()
	const deadline = clock0 + 1000
	// start gives a node whose backend the test gates, and two clients on
	// different event loops (gnet deals connections round robin), so one
	// can read while the other's command is held.
	start := func(t *testing.T) (*Node, *gatedBackend, *redis.Client, *redis.Client) {
		n := newNode(t, func(c *Config) { c.EventLoops = 2 })
		// The background worker reads the backend (and its expirer would
		// take the gate): stopped before the swap, and left stopped.
		n.stopBackground()
		g := &gatedBackend{backend: n.backend}
		n.backend = g
		serve(t, n)
		one := func(o *redis.Options) { o.PoolSize = 1 }
		w, r := dial(t, n, one), dial(t, n, one)
		require.NoError(t, w.Ping(ctx).Err())
		require.NoError(t, r.Ping(ctx).Err())
		n.setClock(clock0)
		require.NoError(t, w.Set(ctx, "k", "v", time.Second).Err())
		n.setClock(deadline - 1)
		return n, g, w, r
	}
	// getHeld starts a GET of k that finds k expired while the test holds
	// a writer, and returns once it either answered or waits for the
	// writer (settleExpired).
	getHeld := func(t *testing.T, n *Node, r *redis.Client) <-chan *redis.StringCmd {
		settles := n.ks.settles.Load()
		got := make(chan *redis.StringCmd, 1)
		go func() { got <- r.Get(ctx, "k") }() // getFast
		require.Eventually(t, func() bool { return len(got) > 0 || n.ks.settles.Load() > settles },
			10*time.Second, time.Millisecond)
		return got
	}

	t.Run("a writer reads the clock after it waited", func(t *testing.T) {
		n, g, w, r := start(t)
		entered, release := g.arm(true)
		persist := make(chan *redis.BoolCmd, 1)
		go func() { persist <- w.Persist(ctx, "k") }()
		<-entered // PERSIST holds k's lock and waits for earlier writes
		n.setClock(deadline)
		got := getHeld(t, n, r)
		close(release)
		require.False(t, (<-persist).Val(), "PERSIST found alive a key whose deadline had passed when it looked")
		require.Equal(t, redis.Nil, (<-got).Err())
		require.Equal(t, redis.Nil, r.Get(ctx, "k").Err(), "the key came back after it expired")
	})

	t.Run("a reader waits for a writer that found the key alive", func(t *testing.T) {
		n, g, w, r := start(t)
		entered, release := g.arm(false)
		persist := make(chan *redis.BoolCmd, 1)
		go func() { persist <- w.Persist(ctx, "k") }()
		<-entered // PERSIST found k alive and its write is on its way
		n.setClock(deadline)
		got := getHeld(t, n, r)
		close(release)
		require.True(t, (<-persist).Val())
		v, err := (<-got).Result()
		require.NoError(t, err, "a GET after the deadline said the key expired, yet the PERSIST that found it alive before the deadline took effect")
		require.Equal(t, "v", v)
		require.Equal(t, time.Duration(-1), r.TTL(ctx, "k").Val())
	})

	t.Run("a read tx waits too", func(t *testing.T) {
		n, g, w, r := start(t)
		entered, release := g.arm(false)
		expire := make(chan *redis.BoolCmd, 1)
		go func() { expire <- w.Expire(ctx, "k", time.Hour) }()
		<-entered // EXPIRE found k alive and its write is on its way
		n.setClock(deadline)
		settles := n.ks.settles.Load()
		got := make(chan *redis.IntCmd, 1)
		go func() { got <- r.Exists(ctx, "k") }() // a read tx's load
		require.Eventually(t, func() bool { return len(got) > 0 || n.ks.settles.Load() > settles },
			10*time.Second, time.Millisecond)
		close(release)
		require.True(t, (<-expire).Val())
		require.Equal(t, int64(1), (<-got).Val(), "EXISTS after the deadline said no, yet the EXPIRE that found the key alive before it took effect")
		require.Equal(t, "v", r.Get(ctx, "k").Val())
	})
}
