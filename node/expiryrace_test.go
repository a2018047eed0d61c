package node

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// gatedBackend holds the next Barrier or Submit, once armed, until released:
// it stops a writing command at a chosen point while the test moves the
// clock and reads.
type gatedBackend struct {
	backend
	mu      sync.Mutex
	barrier bool // hold the next Barrier, not the next Submit
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

func (g *gatedBackend) Submit(b *logkv.Batch) error {
	g.hold(false)
	return g.backend.Submit(b)
}

// submittedSeq and readableSeq forward the backend's writeSeqs, so that a
// settle takes the path it takes on the node's own backend: without a
// Barrier once the writes made under the key's stripe are readable.
func (g *gatedBackend) submittedSeq() uint64 {
	if ws, ok := g.backend.(writeSeqs); ok {
		return ws.submittedSeq()
	}
	return 0
}

func (g *gatedBackend) readableSeq() uint64 {
	if ws, ok := g.backend.(writeSeqs); ok {
		return ws.readableSeq()
	}
	return 0
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

// TestExpirerHoldsOnlyItsBatch: while the active expirer waits for one key's
// lock, a read of another expired key, whose stripe its batch does not
// hold, answers at once. The expirer once locked the stripes of 1000 keys
// at a time (all 256), so every event loop whose GET found an expired key
// not yet removed waited for the whole batch: most of GET's p99 during mass
// expiry.
func TestExpirerHoldsOnlyItsBatch(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.stopBackground() // this test runs the expirer itself
		n.setClock(clock0)
		// first expires before every other key, so it is in the first
		// batch; its stripe is the last, so the old expirer, locking
		// stripes in order, held every other stripe while it waited.
		var first string
		for i := 0; first == ""; i++ {
			if k := fmt.Sprintf("first%d", i); n.locks.stripe([]byte(k)) == len(n.locks.stripes)-1 {
				first = k
			}
		}
		require.NoError(t, c.Set(ctx, first, "v", time.Second).Err())
		batch := map[int]bool{len(n.locks.stripes) - 1: true}
		var other string
		for i := range 1000 {
			k := fmt.Sprintf("k%04d", i)
			require.NoError(t, c.Set(ctx, k, "v", time.Duration(2+i)*time.Second).Err())
			if i < expireBatch-1 {
				batch[n.locks.stripe([]byte(k))] = true
			} else if other == "" && !batch[n.locks.stripe([]byte(k))] {
				other = k // expires after the first batch, on a stripe it does not hold
			}
		}
		require.NotEmpty(t, other)
		n.setClock(clock0 + 2000_000)

		unlock := sync.OnceFunc(n.locks.lock([]byte(first))) // a writer holds first's stripe
		defer unlock()
		expired := make(chan error, 1)
		go func() {
			_, err := n.expireDue()
			expired <- err
		}()
		// The expirer is in its first batch once it holds a stripe of it
		// (it locks in stripe order, and first's is the last).
		held := -1
		for s := range batch {
			if s != len(n.locks.stripes)-1 {
				held = s
				break
			}
		}
		require.Eventually(t, func() bool {
			if n.locks.stripes[held].TryLock() {
				n.locks.stripes[held].Unlock()
				return false
			}
			return true
		}, 10*time.Second, time.Millisecond)
		got := make(chan error, 1)
		go func() { got <- c.Get(ctx, other).Err() }()
		select {
		case err := <-got:
			require.ErrorIs(t, err, redis.Nil)
		case <-time.After(10 * time.Second):
			unlock()
			t.Fatal("GET of an expired key waited for the expirer's batch of other keys")
		}
		unlock()
		require.NoError(t, <-expired)
		require.Equal(t, 0, countData(t, n))
		require.Equal(t, 0, countExpiry(t, n))
	})
}

// TestExpirerFloor: the expirer walks the index from where its last
// complete walk ended, and still finds a deadline written below that point
// afterwards (a writer whose clock was read before the walk's).
func TestExpirerFloor(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.stopBackground()
		n.setClock(clock0)
		require.NoError(t, c.Set(ctx, "a", "v", time.Second).Err())
		require.NoError(t, c.Set(ctx, "later", "v", time.Hour).Err())
		var e expirer
		n.setClock(clock0 + 2000)
		deleted, capped, err := n.expireCycle(&e, 0)
		require.NoError(t, err)
		require.Equal(t, 1, deleted)
		require.False(t, capped)
		require.Equal(t, clock0+2001, e.floor)
		require.Equal(t, clock0+3_600_000, n.ks.nextDue.Load())

		// A late writer: its deadline is below the floor.
		n.setClock(clock0)
		require.NoError(t, c.Set(ctx, "b", "v", 500*time.Millisecond).Err())
		n.setClock(clock0 + 3000)
		deleted, _, err = n.expireCycle(&e, 0)
		require.NoError(t, err)
		require.Equal(t, 1, deleted, "the deadline below the floor is found")
		require.Equal(t, 1, countData(t, n))
		require.Equal(t, 1, countExpiry(t, n))
		require.Equal(t, "v", c.Get(ctx, "later").Val())
	})
}

// TestExpireCycleBudget: a cycle stops once its budget is spent, with keys
// still due, and says so (INFO's expired_time_cap_reached_count); the next
// cycles carry on.
func TestExpireCycleBudget(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.stopBackground()
		n.setClock(clock0)
		for i := range 3 * expireBatch {
			require.NoError(t, c.Set(ctx, fmt.Sprintf("k%03d", i), "v", time.Second).Err())
		}
		n.setClock(clock0 + 2000)
		var e expirer
		deleted, capped, err := n.expireCycle(&e, time.Nanosecond)
		require.NoError(t, err)
		require.True(t, capped)
		require.Equal(t, expireBatch, deleted, "one batch, then the budget is spent")
		for range 2 {
			_, _, err = n.expireCycle(&e, time.Nanosecond)
			require.NoError(t, err)
		}
		require.Equal(t, int64(0), c.DBSize(ctx).Val())
		info := c.Info(ctx, "stats").Val()
		require.Contains(t, info, fmt.Sprintf("expired_keys:%d\r\n", 3*expireBatch))
		require.Contains(t, info, "expired_time_cap_reached_count:2\r\n")
	})
}

// TestExpirerRunsAlone: with the real clock, the node's own expirer removes
// keys soon after their deadlines, without any command touching them.
func TestExpirerRunsAlone(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	for i := range 100 {
		require.NoError(t, c.Set(ctx, fmt.Sprintf("k%03d", i), "v", 50*time.Millisecond).Err())
	}
	require.Eventually(t, func() bool { return countData(t, n) == 0 && countExpiry(t, n) == 0 },
		10*time.Second, 5*time.Millisecond)
	require.Contains(t, c.Info(ctx, "stats").Val(), "expired_keys:100\r\n")
}

// TestExpirerResumesWalk: a cycle cut short by its budget leaves its walk
// where it stopped, and the next cycle goes on from there rather than from
// the floor (on an lsm, a seek through the tombstones of every entry removed
// since the floor, each cycle). A deadline written during such a walk below
// where it stands, which its iterators do not see, is still found: the
// walk's end does not move the floor past it.
func TestExpirerResumesWalk(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.stopBackground()
		n.setClock(clock0)
		for i := range 3 * expireBatch {
			require.NoError(t, c.Set(ctx, fmt.Sprintf("k%03d", i), "v", time.Duration(1000+i)*time.Millisecond).Err())
		}
		n.setClock(clock0 + 2000)
		var e expirer
		deleted, capped, err := n.expireCycle(&e, time.Nanosecond)
		require.NoError(t, err)
		require.True(t, capped)
		require.Equal(t, expireBatch, deleted)
		require.True(t, e.walking, "the walk goes on in the next cycle")
		_, _, at, key, ok := decodeExpiryKey(e.resume)
		require.True(t, ok)
		require.Equal(t, fmt.Sprintf("k%03d", expireBatch), string(key), "it stopped at the first entry left")
		require.Equal(t, clock0+1000+expireBatch, at)

		// A late writer: due, but behind the walk (its clock was read
		// before the walk's, and its deadline is not below nextDue).
		n.setClock(clock0)
		require.NoError(t, c.Set(ctx, "late", "v", 1010*time.Millisecond).Err())
		n.setClock(clock0 + 2000)
		for capped = true; capped; {
			var d int
			d, capped, err = n.expireCycle(&e, time.Nanosecond)
			require.NoError(t, err)
			deleted += d
		}
		require.Equal(t, 3*expireBatch, deleted, "the walk's own entries")
		require.False(t, e.walking)
		deleted, _, err = n.expireCycle(&e, 0)
		require.NoError(t, err)
		require.Equal(t, 1, deleted, "the late entry is found by the next walk")
		require.Equal(t, 0, countData(t, n))
		require.Equal(t, 0, countExpiry(t, n))
	})
}

// syncCounter counts a backend's Syncs.
type syncCounter struct {
	backend
	syncs atomic.Int64
}

func (s *syncCounter) Sync() error {
	s.syncs.Add(1)
	return s.backend.Sync()
}

// TestExpireBatchLeavesDeletesReadable: each batch of a cycle makes its
// deletes readable once it has released its keys' locks, so a GET of a key
// it removed does not find the expired value (and take the slow path,
// settleExpired, on its event loop); nothing waits for them to be durable:
// a cycle calls no Sync (issue #15). A cycle that removed only stale index
// entries leaves them removed too; a cycle with nothing due touches
// nothing.
func TestExpireBatchLeavesDeletesReadable(t *testing.T) {
	for _, engine := range []string{"memory", "bitcask", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			n := newNode(t, func(c *Config) { c.Engine = engine })
			n.stopBackground()
			s := &syncCounter{backend: n.backend}
			n.backend = s
			serve(t, n)
			c := dial(t, n, nil)
			ctx := context.Background()
			n.setClock(clock0)
			for i := range 3 * expireBatch {
				require.NoError(t, c.Set(ctx, fmt.Sprintf("k%03d", i), "v", time.Second).Err())
			}
			require.NoError(t, c.Set(ctx, "stale", "v", time.Second).Err())
			require.NoError(t, c.Set(ctx, "stale", "v", 0).Err()) // its entry is left stale
			n.setClock(clock0 + 2000)
			gen, err := n.gen(0)
			require.NoError(t, err)

			var e expirer
			before := s.syncs.Load()
			require.NoError(t, n.startWalk(&e))
			deleted, more, err := n.expireBatch(&e)
			require.NoError(t, e.it.Close())
			e.it, e.walking = nil, false
			require.NoError(t, err)
			require.True(t, more)
			require.Equal(t, expireBatch, deleted)
			for _, d := range e.due[:deleted] {
				_, err := n.eng().Get(appendDataKey(nil, 0, gen, d.key))
				require.ErrorIs(t, err, logkv.ErrNotFound, "key %q deleted by the batch, not readable yet", d.key)
			}

			deleted, capped, err := n.expireCycle(&e, 0)
			require.NoError(t, err)
			require.False(t, capped)
			require.Equal(t, 2*expireBatch, deleted)
			require.Equal(t, int64(0), s.syncs.Load()-before, "the expirer syncs nothing")
			for i := range 3 * expireBatch {
				_, err := n.eng().Get(appendDataKey(nil, 0, gen, fmt.Appendf(nil, "k%03d", i)))
				require.ErrorIs(t, err, logkv.ErrNotFound)
			}

			require.NoError(t, c.Set(ctx, "stale2", "v", time.Second).Err())
			require.NoError(t, c.Set(ctx, "stale2", "v", 0).Err())
			n.setClock(clock0 + 4000)
			before = s.syncs.Load()
			deleted, _, err = n.expireCycle(&e, 0)
			require.NoError(t, err)
			require.Equal(t, 0, deleted)
			require.Equal(t, 0, countExpiry(t, n), "the stale entries are removed, and readable so")

			deleted, _, err = n.expireCycle(&e, 0)
			require.NoError(t, err)
			require.Equal(t, 0, deleted)
			require.Equal(t, int64(0), s.syncs.Load()-before, "the expirer syncs nothing")
		})
	}
}

// TestSettleDoesNotWaitForExpirer: a GET that finds an expired key whose
// stripe the active expirer holds, with the writes before it readable
// (n.ks.expiring), answers without waiting for the expirer's batch; one
// whose stripe a writer holds waits for the writer (TestExpiredKeyStaysExpired
// shows why). Most GETs of an expired key not yet removed met the expirer
// removing it, and waited on the client's event loop (issue #15).
func TestSettleDoesNotWaitForExpirer(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.stopBackground() // nothing else may take the stripes
		n.setClock(clock0)
		require.NoError(t, c.Set(ctx, "k", "v", time.Second).Err())
		n.setClock(clock0 + 2000)
		keys := [][]byte{[]byte("k")}

		unlock := sync.OnceFunc(n.locks.lock(keys[0])) // the expirer's batch holds k's stripe
		defer unlock()
		n.ks.expiring.add(&n.locks, keys)
		got := make(chan error, 1)
		go func() { got <- c.Get(ctx, "k").Err() }()
		select {
		case err := <-got:
			require.ErrorIs(t, err, redis.Nil)
			require.Equal(t, int64(1), n.ks.settlesPassed.Load())
		case <-time.After(10 * time.Second):
			unlock()
			t.Fatal("GET of an expired key waited for the expirer holding its stripe")
		}

		n.ks.expiring.remove(&n.locks, keys) // a writer holds it now
		go func() { got <- c.Get(ctx, "k").Err() }()
		select {
		case err := <-got:
			t.Fatalf("GET of an expired key answered (%v) while a writer held its stripe", err)
		case <-time.After(50 * time.Millisecond):
		}
		unlock()
		require.ErrorIs(t, <-got, redis.Nil)
	})
}

// barrierCounter counts the Barriers of a replicated backend.
type barrierCounter struct {
	*replicatedBackend
	barriers atomic.Int64
}

func (b *barrierCounter) Barrier() error {
	b.barriers.Add(1)
	return b.replicatedBackend.Barrier()
}

// TestSettleSkipsBarrier: a read that finds a key expired and not yet
// removed settles without a Barrier when every write a tx made under the
// key's stripe is readable already (stripeWritten). Before, every such
// read made every write submitted by anyone readable, on its event loop:
// during a mass expiry the expirer is behind on, a quarter of the GETs
// settled, each applying the expirer's latest deletes (issue #15). A tx's
// write under the stripe that is not readable yet is still made readable
// first (TestExpiredKeyStaysExpired shows why it must be).
func TestSettleSkipsBarrier(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, nil)
	n.stopBackground() // no expirer: k stays, expired
	rb, ok := n.backend.(*replicatedBackend)
	require.True(t, ok, "the default node logs its writes")
	require.False(t, rb.Visible(), "the default replicated backend: a submitted write is readable only after a Barrier")
	b := &barrierCounter{replicatedBackend: rb}
	n.backend = b
	serve(t, n)
	c := dial(t, n, nil)
	n.setClock(clock0)
	require.NoError(t, c.Set(ctx, "k", "v", time.Second).Err())
	require.NoError(t, c.Expire(ctx, "k", 2*time.Second).Err()) // a tx's write under k's stripe, readable once answered
	n.setClock(clock0 + 3000)

	before, settles := b.barriers.Load(), n.ks.settles.Load()
	require.Equal(t, redis.Nil, c.Get(ctx, "k").Err())
	require.Equal(t, settles+1, n.ks.settles.Load(), "the GET found k expired")
	require.Zero(t, b.barriers.Load()-before, "the settle made readable what already was")

	// A tx deletes k (lazily, as a write finding it expired does) and
	// leaves its write submitted, not applied: nothing syncs in between.
	tx := n.begin(&client{}, [][]byte{[]byte("k")})
	_, err := tx.load([]byte("k"))
	require.NoError(t, err)
	require.NoError(t, tx.apply())
	tx.close()
	require.Greater(t, rb.submittedSeq(), rb.readableSeq(), "the delete is not applied yet")
	before = b.barriers.Load()
	require.Equal(t, redis.Nil, c.Get(ctx, "k").Err())
	require.Equal(t, int64(1), b.barriers.Load()-before, "the settle waited for the tx's write under k's stripe")
	info := c.Info(ctx, "stats").Val()
	require.Contains(t, info, "expired_reads_settled:2\r\n")
	require.Contains(t, info, "expired_reads_settled_barrier:1\r\n")
}

// TestExpireBatchBarriersOnce: an expiry batch makes its own deletes
// readable (one Barrier, after it released its keys' locks) and calls no
// Barrier before, holding its keys' stripes, when nothing is pending: a
// replicated Barrier with nothing to do still yielded the CPU there, and a
// GET that met one of the batch's keys expired, its stripe not yet marked
// expiring, waited for the batch, yield included (issue #15). Nor does a
// walk's start call one then. A write pending is still made readable first.
func TestExpireBatchBarriersOnce(t *testing.T) {
	ctx := context.Background()
	n := newNode(t, nil)
	n.stopBackground()
	rb, ok := n.backend.(*replicatedBackend)
	require.True(t, ok, "the default node logs its writes")
	b := &barrierCounter{replicatedBackend: rb}
	n.backend = b
	serve(t, n)
	c := dial(t, n, nil)
	n.setClock(clock0)
	for i := range 2 * expireBatch {
		require.NoError(t, c.Set(ctx, fmt.Sprintf("k%03d", i), "v", time.Second).Err())
	}
	n.setClock(clock0 + 2000)

	var e expirer
	before := b.barriers.Load()
	require.NoError(t, n.startWalk(&e))
	deleted, more, err := n.expireBatch(&e)
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, expireBatch, deleted)
	require.Equal(t, int64(1), b.barriers.Load()-before, "the batch's own deletes, and nothing before")

	// A write pending (submitted, not applied) when the next batch starts.
	gen, err := n.gen(0)
	require.NoError(t, err)
	var wb logkv.Batch
	wb.Set(appendDataKey(nil, 0, gen, []byte("pending")), appendValue(nil, 0, []byte("v")))
	require.NoError(t, n.backend.Submit(&wb))
	require.Greater(t, rb.submittedSeq(), rb.readableSeq())
	before = b.barriers.Load()
	deleted, _, err = n.expireBatch(&e)
	require.NoError(t, err)
	require.Equal(t, expireBatch, deleted)
	require.NoError(t, e.it.Close())
	require.Equal(t, int64(2), b.barriers.Load()-before, "the pending write before the batch, then the batch's deletes")
}

// TestExpirerWalksWithoutSnapshot: the expirer lists due keys from the live
// tree (keyLister), not through an iterator, whose snapshot made nearly
// every delete of a mass expiry copy its tree path. On memory that shows as
// memory_node_copies_total: removing 5,000 due keys in many small cycles
// copies no node (it copied thousands with the walk's snapshot).
func TestExpirerWalksWithoutSnapshot(t *testing.T) {
	for _, engine := range []string{"memory", "bitcask"} {
		n := newNode(t, func(c *Config) { c.Engine = engine })
		_, ok := n.eng().(keyLister)
		require.True(t, ok, "%s: the expirer would walk with an iterator", engine)
		require.NoError(t, n.Shutdown(context.Background()))
	}

	n := newNode(t, func(c *Config) { c.Engine = "memory" })
	n.stopBackground()
	n.setClock(clock0)
	runPiped(n, writerClient(n), 5000, func(i int) [][]byte {
		return [][]byte{[]byte("SET"), fmt.Appendf(nil, "k%05d", i), []byte("v"), []byte("PX"), []byte("1000")}
	})
	const copies = "memory_node_copies_total"
	before := engineMetric(t, n, copies)
	n.setClock(clock0 + 2000)
	var e expirer
	for capped := true; capped; {
		var err error
		_, capped, err = n.expireCycle(&e, 1) // a tiny budget: many cycles, many walks
		require.NoError(t, err)
	}
	due, err := n.expireDue()
	require.NoError(t, err)
	require.Zero(t, due, "every key past its deadline is removed")
	require.Equal(t, before, engineMetric(t, n, copies), "the walk held a snapshot: deletes copied tree nodes")
}
