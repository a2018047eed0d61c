package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// A pipeline's plain SETs and MSETs reach the engine as a few batches, not
// one per command.
func TestPipelinedWritesShareABatch(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n, nil)
	ctx := context.Background()
	before := n.eng().Metrics().Writes
	const sets = 200
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range sets {
			p.Set(ctx, fmt.Sprintf("k%03d", i), i, 0)
		}
		p.MSet(ctx, "m1", "a", "m2", "b")
		p.Set(ctx, "k000", "last", 0) // a later write of a key in the same batch wins
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, sets+2)
	for _, cmd := range cmds {
		require.Equal(t, "OK", cmd.(*redis.StatusCmd).Val())
	}
	batches := n.eng().Metrics().Writes - before
	require.LessOrEqual(t, batches, uint64(10), "%d commands took %d engine batches", sets+2, batches)
	require.Equal(t, "last", c.Get(ctx, "k000").Val())
	require.Equal(t, "199", c.Get(ctx, "k199").Val())
	require.Equal(t, []any{"a", "b"}, c.MGet(ctx, "m1", "m2").Val())
	require.Equal(t, int64(sets+2), c.DBSize(ctx).Val())
}

// Replies leave in command order even when a queued run of writes is
// interrupted by errors and by other commands.
func TestPendingRepliesInOrder(t *testing.T) {
	n := startNode(t, func(c *Config) { c.Limits.MaxValueSize = 100 })
	c := dial(t, n, nil)
	ctx := context.Background()
	cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", "1", 0)                        // 0 OK
		p.Set(ctx, "", "x", 0)                         // 1 empty key
		p.Set(ctx, "b", "2", 0)                        // 2 OK
		p.Do(ctx, "mset", "c", "3", "d")               // 3 wrong arity
		p.Get(ctx, "a")                                // 4 "1"
		p.Set(ctx, "big", strings.Repeat("v", 101), 0) // 5 value too large
		p.Set(ctx, "e", "5", 0)                        // 6 OK
		p.Do(ctx, "nosuchcmd")                         // 7 unknown
		p.Set(ctx, "f", "6", 0)                        // 8 OK
		p.Incr(ctx, "counter")                         // 9 1
		p.Set(ctx, "g", "7", 0)                        // 10 OK
		return nil
	})
	require.Len(t, cmds, 11)
	ok := func(i int) { require.Equal(t, "OK", cmds[i].(*redis.StatusCmd).Val(), "command %d", i) }
	ok(0)
	require.ErrorContains(t, cmds[1].Err(), "empty keys are not allowed")
	ok(2)
	require.ErrorContains(t, cmds[3].Err(), "wrong number of arguments for 'mset'")
	require.Equal(t, "1", cmds[4].(*redis.StringCmd).Val())
	require.ErrorContains(t, cmds[5].Err(), "value too large")
	ok(6)
	require.ErrorContains(t, cmds[7].Err(), "unknown command")
	ok(8)
	require.Equal(t, int64(1), cmds[9].(*redis.IntCmd).Val())
	ok(10)
	require.Equal(t, []any{"1", "2", nil, "5", "6", "7", nil}, c.MGet(ctx, "a", "b", "c", "e", "f", "g", "big").Val())
}

// A pipeline of writes larger than maxRunBytes goes to the backend in
// pieces, and all of it arrives.
func TestLongWritePipeline(t *testing.T) {
	n := startNode(t, nil)
	// 3 MB of replies-to-be under -race on a loaded machine outlasted
	// go-redis' 3 s read timeout once: slow is not what this test checks.
	c := dial(t, n, func(o *redis.Options) { o.ReadTimeout = time.Minute })
	ctx := context.Background()
	before := n.eng().Metrics().Writes
	val := strings.Repeat("x", 10<<10)
	const sets = 300 // 3 MB
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range sets {
			p.Set(ctx, fmt.Sprintf("k%03d", i), val, 0)
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, n.eng().Metrics().Writes-before, uint64(2), "submitted at about maxRunBytes")
	require.Equal(t, int64(sets), c.DBSize(ctx).Val())

	// An MSET over maxRunBytes goes on its own, after the run before
	// it, and its reply keeps its place.
	big := strings.Repeat("b", 600<<10)
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "k000", "small", 0)
		p.MSet(ctx, "m1", big, "m2", big, "k000", "after")
		p.Get(ctx, "k000")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, "OK", cmds[0].(*redis.StatusCmd).Val())
	require.Equal(t, "OK", cmds[1].(*redis.StatusCmd).Val())
	require.Equal(t, "after", cmds[2].(*redis.StringCmd).Val(), "the MSET came after the SET before it")
	require.Equal(t, big, c.Get(ctx, "m2").Val())
}

// failingBackend refuses writes while fail is set.
type failingBackend struct {
	backend
	fail  atomic.Bool
	calls atomic.Int64
}

var errInjected = errors.New("injected write failure")

func (f *failingBackend) Submit(b *logkv.Batch) error {
	f.calls.Add(1)
	if f.fail.Load() {
		return errInjected
	}
	return f.backend.Submit(b)
}

// When the backend refuses a queued run, every command of the run answers
// with the error, in its place, and nothing of the run is written.
func TestPendingRunFailsWhole(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir = "memory", t.TempDir()
	cfg.Listen, cfg.Admin, cfg.Replication.Listen = "127.0.0.1:0", "off", "off"
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	fb := &failingBackend{backend: n.backend}
	// New started the background worker, which reads n.backend: stop it
	// around the swap (go test -race saw the race).
	n.stopBackground()
	n.backend = fb
	n.startBackground()
	serve(t, n)
	c := dial(t, n, nil)
	ctx := context.Background()
	fb.fail.Store(true)
	cmds, _ := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "a", "1", 0)
		p.MSet(ctx, "b", "2", "c", "3")
		p.Ping(ctx)
		p.Set(ctx, "d", "4", 0)
		return nil
	})
	require.Len(t, cmds, 4)
	for _, i := range []int{0, 1, 3} {
		require.ErrorContains(t, cmds[i].Err(), errInjected.Error(), "command %d", i)
	}
	require.Equal(t, "PONG", cmds[2].(*redis.StatusCmd).Val())
	require.Equal(t, int64(2), fb.calls.Load(), "one Submit per run: before PING, and at the end")
	fb.fail.Store(false)
	require.Zero(t, c.DBSize(ctx).Val())
	require.NoError(t, c.Set(ctx, "a", "1", 0).Err())
	require.Equal(t, "1", c.Get(ctx, "a").Val())
}

// A pipeline's SETs with EX or PX are queued as plain SETs are: a few
// batches, not a tx each (a read, a lock round and a commit record per
// key made loading keys with TTLs 6x slower). Each still writes its
// deadline and its index entry, so TTL reports it and the expirer finds
// it; a later blind write in the run clears the TTL and leaves the old
// entry stale.
func TestPipelinedSetsWithTTLShareABatch(t *testing.T) {
	n := startNode(t, nil)
	// The test runs the expire cycle itself (expireDue): the background
	// expirer, once the clock moves, deleted some of the due keys first
	// and expireDue counted 158 and 190 of 198 in go test -race -count=5.
	n.stopBackground()
	n.setClock(clock0)
	c := dial(t, n, nil)
	ctx := context.Background()
	before := n.eng().Metrics().Writes
	const sets = 200
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range sets {
			p.Do(ctx, "set", fmt.Sprintf("k%03d", i), i, "px", 1000+i) // due at clock0+1000..1199
		}
		p.Do(ctx, "set", "ex", "v", "EX", 3)          // due at clock0+3000
		p.Do(ctx, "set", "k000", "v", "ex", "0")      // refused, and k000 keeps its TTL
		p.Do(ctx, "set", "k001", "kept")              // a blind SET clears the TTL
		p.Do(ctx, "set", "k002", "later", "px", 5000) // a new deadline: the old entry is stale
		return nil
	})
	require.Error(t, err) // the EX 0
	require.Len(t, cmds, sets+4)
	for i, cmd := range cmds {
		if i == sets+1 {
			require.ErrorContains(t, cmd.Err(), "invalid expire time in 'set' command")
			continue
		}
		require.NoError(t, cmd.Err(), "command %d", i)
		require.Equal(t, "OK", cmd.(*redis.Cmd).Val(), "command %d", i)
	}
	batches := n.eng().Metrics().Writes - before
	require.LessOrEqual(t, batches, uint64(10), "%d commands took %d engine batches", sets+4, batches)
	require.Equal(t, 1000*time.Millisecond, c.PTTL(ctx, "k000").Val())
	require.Equal(t, 1199*time.Millisecond, c.PTTL(ctx, "k199").Val())
	require.Equal(t, 3*time.Second, c.TTL(ctx, "ex").Val())
	require.Equal(t, time.Duration(-1), c.TTL(ctx, "k001").Val())
	require.Equal(t, 5*time.Second, c.PTTL(ctx, "k002").Val())
	require.Equal(t, sets+2, countExpiry(t, n), "every deadline written has its entry, k001 and k002 their old ones")

	n.setClock(clock0 + 1199)
	deleted, err := n.expireDue()
	require.NoError(t, err)
	require.Equal(t, sets-2, deleted, "every k with its PX deadline, not k001 nor k002")
	require.Equal(t, int64(3), c.DBSize(ctx).Val())
	require.Equal(t, []any{nil, "kept", "later", nil, "v"}, c.MGet(ctx, "k000", "k001", "k002", "k199", "ex").Val())
	require.Equal(t, 2, countExpiry(t, n), "the entries of ex and k002's new deadline are left")

	n.setClock(clock0 + 5000)
	deleted, err = n.expireDue()
	require.NoError(t, err)
	require.Equal(t, 2, deleted)
	require.Equal(t, 0, countExpiry(t, n))
	require.Equal(t, []string{"k001"}, c.Keys(ctx, "*").Val())
}
