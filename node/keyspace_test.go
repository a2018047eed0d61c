package node

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/memory"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

var engines = []string{"memory", "bitcask", "lsm"}

// forEngines runs f against a node of each engine.
func forEngines(t *testing.T, f func(t *testing.T, n *Node, c *redis.Client)) {
	for _, e := range engines {
		t.Run(e, func(t *testing.T) {
			// A password, so that FLUSH* (admin commands) may run.
			n := startNode(t, func(c *Config) { c.Engine = e; withPassword(c) })
			f(t, n, dial(t, n, withAuth))
		})
	}
}

// clock0 is a fixed start for tests' clocks.
const clock0 = int64(1_800_000_000_000)

func TestKeyspaceEncoding(t *testing.T) {
	for _, c := range []struct {
		db   int
		gen  uint32
		code []byte
	}{
		{0, 0, []byte{0x00}},
		{0, 127, []byte{0x7F}},
		{0, 128, []byte{0x80, 0x80}},
		{0, 1<<14 - 1, []byte{0xBF, 0xFF}},
		{0, 1 << 14, []byte{0xC0, 0x40, 0x00}},
		{0, maxGen, []byte{0xE0, 0xFF, 0xFF, 0xFF}},
		{1, 0, []byte{0xE1, 0, 0, 0}},
		{15, maxGen, []byte{0xEF, 0xFF, 0xFF, 0xFF}},
	} {
		k := appendDataKey(nil, c.db, c.gen, []byte("user"))
		// keySlot("user") is 5474 = 0x1562 (redis-server's CLUSTER KEYSLOT).
		require.Equal(t, append(c.code, append([]byte{0x15, 0x62}, "user"...)...), k)
		db, gen, key, ok := decodeDataKey(k)
		require.True(t, ok)
		require.Equal(t, []any{c.db, c.gen, "user"}, []any{db, gen, string(key)})
	}
	// The codes sort as (db, gen) do.
	prev := []byte(nil)
	for db := range maxDBs {
		for _, gen := range []uint32{0, 1, 127, 128, 1<<14 - 1, 1 << 14, 1<<21 - 1, 1 << 21, maxGen} {
			k := dataPrefix(db, gen)
			require.Less(t, string(prev), string(k))
			prev = k
		}
	}
	require.Less(t, string(prev), string([]byte{dataEnd}))
	_, _, _, ok := decodeDataKey([]byte{0xF0, 'k'})
	require.False(t, ok, "reserved first bytes are no data key")

	// A gen row's top byte is store XOR db: database 1 held in store 0,
	// generation 5, and database 0 in store 15, address those stores.
	require.Equal(t, dataPrefix(0, 5), dataPrefix(1, 1<<24|5))
	require.Equal(t, dataPrefix(15, maxGen), dataPrefix(0, 15<<24|maxGen))
	db, gen, _, ok := decodeDBGen(dataPrefix(1, 1<<24|5))
	require.True(t, ok)
	require.Equal(t, []any{0, uint32(5)}, []any{db, gen}, "a code decodes to its store")

	x := appendExpiryKey(nil, 1, 2, 0x0102030405060708, []byte("k"))
	require.Equal(t, []byte{tagExpiry, 0xE1, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 'k'}, x)
	db, gen, at, key, ok := decodeExpiryKey(x)
	require.True(t, ok)
	require.Equal(t, []any{1, uint32(2), int64(0x0102030405060708), "k"}, []any{db, gen, at, string(key)})

	require.Equal(t, []byte{0, 'v'}, appendValue(nil, 0, []byte("v")))
	v := appendValue(nil, 0x0102030405060708, []byte("v"))
	require.Equal(t, []byte{0x80, 1, 2, 3, 4, 5, 6, 7, 8, 'v'}, v)
	p, at, err := decodeValue(v)
	require.NoError(t, err)
	require.Equal(t, "v", string(p))
	require.Equal(t, int64(0x0102030405060708), at)
	for _, bad := range [][]byte{nil, {0x80, 1}, {0x10}, {0x01, 'x'}, {0x80, 0, 0, 0, 0, 0, 0, 0, 0}} {
		_, _, err := decodeValue(bad)
		require.ErrorIs(t, err, logkv.ErrCorrupt, "%x", bad)
	}
}

func TestExpiry(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.setClock(clock0)
		require.NoError(t, c.Set(ctx, "a", "1", 10*time.Second).Err())
		require.Equal(t, 10*time.Second, c.TTL(ctx, "a").Val())
		require.Equal(t, 10*time.Second, c.PTTL(ctx, "a").Val())
		require.Equal(t, clock0+10_000, c.Do(ctx, "pexpiretime", "a").Val())
		require.Equal(t, (clock0+10_000)/1000, c.Do(ctx, "expiretime", "a").Val())
		require.NoError(t, c.Set(ctx, "r", "v", 0).Err())
		require.Equal(t, int64(1), c.Do(ctx, "pexpireat", "r", clock0+9_700).Val())
		require.Equal(t, (clock0+10_000)/1000, c.Do(ctx, "expiretime", "r").Val(), "rounded, as Redis")
		require.ErrorIs(t, c.Do(ctx, "getex", "missing", "ex", "0").Err(), redis.Nil, "a missing key before the time is checked")
		require.Equal(t, int64(-2), c.Do(ctx, "ttl", "nope").Val())

		// INCR keeps the TTL, SET clears it, KEEPTTL keeps it.
		require.NoError(t, c.Set(ctx, "n", "1", time.Minute).Err())
		require.Equal(t, int64(2), c.Incr(ctx, "n").Val())
		require.Equal(t, time.Minute, c.TTL(ctx, "n").Val())
		require.NoError(t, c.SetArgs(ctx, "n", "5", redis.SetArgs{KeepTTL: true}).Err())
		require.Equal(t, time.Minute, c.TTL(ctx, "n").Val())
		require.NoError(t, c.Set(ctx, "n", "5", 0).Err())
		require.Equal(t, int64(-1), c.Do(ctx, "ttl", "n").Val())

		// EXPIRE's flags.
		require.Equal(t, int64(0), c.Do(ctx, "expire", "n", "100", "xx").Val())
		require.Equal(t, int64(1), c.Do(ctx, "expire", "n", "100", "nx").Val())
		require.Equal(t, int64(0), c.Do(ctx, "expire", "n", "50", "gt").Val())
		require.Equal(t, int64(1), c.Do(ctx, "expire", "n", "200", "gt").Val())
		require.Equal(t, int64(1), c.Do(ctx, "expire", "n", "50", "lt").Val())
		require.Equal(t, int64(50), c.Do(ctx, "ttl", "n").Val())
		require.Equal(t, int64(0), c.Do(ctx, "expire", "missing", "5").Val())
		require.True(t, c.Persist(ctx, "n").Val())
		require.False(t, c.Persist(ctx, "n").Val())

		// Time passes: a is gone for every command, before any delete.
		n.setClock(clock0 + 10_000)
		require.ErrorIs(t, c.Get(ctx, "a").Err(), redis.Nil)
		require.Equal(t, int64(0), c.Exists(ctx, "a").Val())
		require.Equal(t, int64(-2), c.Do(ctx, "ttl", "a").Val())
		require.Equal(t, "none", c.Type(ctx, "a").Val())
		keys, _ := c.Scan(ctx, 0, "*", 100).Val()
		require.ElementsMatch(t, []string{"n"}, keys)
		require.Equal(t, int64(1), c.DBSize(ctx).Val())

		// SETEX, PSETEX, GETEX.
		require.Equal(t, "OK", c.Do(ctx, "setex", "s", "5", "v").Val())
		require.Equal(t, "v", c.GetEx(ctx, "s", 0).Val())
		require.Equal(t, "v", c.Do(ctx, "getex", "s", "px", "2500").Val())
		require.Equal(t, int64(2500), c.Do(ctx, "pttl", "s").Val())
		require.Equal(t, "v", c.Do(ctx, "getex", "s", "persist").Val())
		require.Equal(t, int64(-1), c.Do(ctx, "ttl", "s").Val())
		require.ErrorContains(t, c.Do(ctx, "setex", "s", "0", "v").Err(), "invalid expire time in 'setex' command")
		require.ErrorContains(t, c.Do(ctx, "set", "s", "v", "ex", "10", "px", "5").Err(), "syntax error")
		require.ErrorContains(t, c.Do(ctx, "expire", "s", "10", "nx", "xx").Err(), "NX and XX, GT or LT options at the same time are not compatible")

		// A deadline in the past deletes at once.
		require.Equal(t, int64(1), c.Do(ctx, "expire", "s", "-1").Val())
		require.Equal(t, int64(0), c.Exists(ctx, "s").Val())
	})
}

// TestActiveExpiry checks that the expirer deletes exactly the keys due,
// index entries included, and that a key whose TTL was cleared by a blind
// SET survives its stale index entry.
func TestActiveExpiry(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		n.setClock(clock0)
		for i := range 50 {
			require.NoError(t, c.Set(ctx, "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), "v", time.Duration(i+1)*time.Second).Err())
		}
		require.NoError(t, c.Set(ctx, "stays", "v", time.Second).Err())
		require.NoError(t, c.Set(ctx, "stays", "v2", 0).Err()) // clears the TTL
		n.setClock(clock0 + 25_000)
		deleted, err := n.expireDue()
		require.NoError(t, err)
		require.Equal(t, 25, deleted)
		require.Equal(t, 26, countData(t, n), "25 of 50 keys are left, and stays")
		require.Equal(t, 25, countExpiry(t, n), "due index entries, the stale one included, are gone")
		require.Equal(t, "v2", c.Get(ctx, "stays").Val())
		require.Equal(t, int64(26), c.DBSize(ctx).Val())
	})
}

// countData and countExpiry count the engine keys of the data range and of
// the expiry index.
func countData(t *testing.T, n *Node) int {
	return countRange(t, n, dataPrefix(0, 0), prefixEnd(dataPrefix(0, 0))) // db 0, before any flush
}
func countExpiry(t *testing.T, n *Node) int {
	return countRange(t, n, []byte{tagExpiry}, []byte{tagMeta})
}

// countRange counts the engine keys in [lower, upper).
func countRange(t *testing.T, n *Node, lower, upper []byte) int {
	it, err := n.eng().NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: upper})
	require.NoError(t, err)
	defer it.Close()
	count := 0
	for ok := it.First(); ok; ok = it.Next() {
		count++
	}
	require.NoError(t, it.Error())
	return count
}

func TestMultiExec(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		// Commands read the transaction's own writes; a runtime error is
		// its command's reply and the others apply.
		cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "a", "1", 0)
			p.Incr(ctx, "a")
			p.Set(ctx, "s", "x", 0)
			p.Incr(ctx, "s")
			p.Get(ctx, "a")
			return nil
		})
		require.ErrorContains(t, err, "not an integer")
		require.Equal(t, int64(2), cmds[1].(*redis.IntCmd).Val())
		require.Error(t, cmds[3].Err())
		require.Equal(t, "2", cmds[4].(*redis.StringCmd).Val())
		require.Equal(t, "2", c.Get(ctx, "a").Val())

		// A queue-time error aborts all of it.
		conn := c.Conn()
		defer conn.Close()
		require.Equal(t, "OK", conn.Do(ctx, "multi").Val())
		require.Equal(t, "QUEUED", conn.Do(ctx, "set", "a", "9").Val())
		require.ErrorContains(t, conn.Do(ctx, "set", "a").Err(), "wrong number of arguments")
		require.ErrorContains(t, conn.Do(ctx, "nosuch").Err(), "unknown command")
		require.EqualError(t, conn.Do(ctx, "exec").Err(), "EXECABORT Transaction discarded because of previous errors.")
		require.Equal(t, "2", c.Get(ctx, "a").Val())
		require.EqualError(t, conn.Do(ctx, "exec").Err(), "ERR EXEC without MULTI")
		require.EqualError(t, conn.Do(ctx, "discard").Err(), "ERR DISCARD without MULTI")
		require.Equal(t, "OK", conn.Do(ctx, "multi").Val())
		require.EqualError(t, conn.Do(ctx, "multi").Err(), "ERR MULTI calls can not be nested")
		require.EqualError(t, conn.Do(ctx, "watch", "a").Err(), "ERR WATCH inside MULTI is not allowed")
		require.Equal(t, "QUEUED", conn.Do(ctx, "set", "b", "1").Val())
		require.Equal(t, "OK", conn.Do(ctx, "discard").Val())
		require.Equal(t, int64(0), c.Exists(ctx, "b").Val())
	})
}

func TestWatch(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		other := dial(t, n, withAuth)
		require.NoError(t, c.Set(ctx, "w", "1", 0).Err())
		tryIncr := func(between func()) error {
			return c.Watch(ctx, func(tx *redis.Tx) error {
				v, err := tx.Get(ctx, "w").Int()
				if err != nil {
					return err
				}
				between()
				_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, "w", v+10, 0)
					return nil
				})
				return err
			}, "w")
		}
		require.NoError(t, tryIncr(func() {}))
		require.Equal(t, "11", c.Get(ctx, "w").Val())
		for name, touch := range map[string]func(){
			"set":      func() { other.Set(ctx, "w", "5", 0) },
			"incr":     func() { other.Incr(ctx, "w") },
			"expire":   func() { other.Expire(ctx, "w", time.Hour) },
			"mset":     func() { other.MSet(ctx, "w", "7", "x", "1") },
			"flushall": func() { other.FlushAll(ctx); other.Set(ctx, "w", "1", 0) },
		} {
			require.ErrorIs(t, tryIncr(touch), redis.TxFailedErr, name)
		}
		// Expiry counts as a modification.
		require.NoError(t, c.Set(ctx, "w", "1", 0).Err())
		n.setClock(clock0)
		require.NoError(t, c.Set(ctx, "w", "1", time.Second).Err())
		require.ErrorIs(t, tryIncr(func() { n.setClock(clock0 + 1000) }), redis.TxFailedErr)
		n.setClock(0)
		// Untouched keys do not fail it.
		require.NoError(t, c.Set(ctx, "w", "1", 0).Err())
		require.NoError(t, tryIncr(func() { other.Set(ctx, "unrelated", "1", 0) }))
		// A flush modifies the watched keys it removes, and only those, as
		// in Redis 7: a watched key that did not exist is untouched.
		require.ErrorIs(t, tryIncr(func() { other.FlushAll(ctx) }), redis.TxFailedErr, "flush of a watched key")
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			require.NoError(t, other.Set(ctx, "present", "1", 0).Err())
			require.NoError(t, other.FlushAll(ctx).Err())
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, "w", "after", 0)
				return nil
			})
			return err
		}, "w")
		require.NoError(t, err, "a flush that removed no watched key")
		require.Equal(t, "after", c.Get(ctx, "w").Val())
	})
}

func TestFlushAndSelect(t *testing.T) {
	forEngines(t, func(t *testing.T, n *Node, c *redis.Client) {
		ctx := context.Background()
		conn := c.Conn()
		defer conn.Close()
		for i := range 100 {
			require.NoError(t, conn.Set(ctx, "k"+string(rune('0'+i%10))+string(rune('0'+i/10)), "v", 0).Err())
		}
		require.NoError(t, conn.Select(ctx, 1).Err())
		require.NoError(t, conn.Set(ctx, "one", "1", 0).Err())
		require.Equal(t, int64(1), conn.DBSize(ctx).Val())
		require.NoError(t, conn.Select(ctx, 0).Err())
		require.Equal(t, int64(100), conn.DBSize(ctx).Val())
		require.ErrorIs(t, conn.Get(ctx, "one").Err(), redis.Nil, "databases are apart")
		info := c.Info(ctx, "keyspace").Val()
		require.Contains(t, info, "db0:keys=100,expires=0,avg_ttl=0")
		require.Contains(t, info, "db1:keys=1,expires=0,avg_ttl=0")

		require.NoError(t, conn.FlushDB(ctx).Err())
		require.Equal(t, int64(0), conn.DBSize(ctx).Val())
		require.NoError(t, conn.Select(ctx, 1).Err())
		require.Equal(t, "1", conn.Get(ctx, "one").Val(), "FLUSHDB empties one database")
		require.NoError(t, conn.FlushAll(ctx).Err())
		require.Equal(t, int64(0), conn.DBSize(ctx).Val())
		// The sweeper deletes the old generations' keys in the background.
		deadline := time.Now().Add(10 * time.Second)
		for countRange(t, n, nil, []byte{dataEnd}) > 0 { // every database and generation
			require.True(t, time.Now().Before(deadline), "old generations not swept")
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// walkOrder is keys in the order SCAN and KEYS walk a database (keyspace
// format 2): by hash slot, then by key.
func walkOrder(keys ...string) []any {
	s := slices.Clone(keys)
	slices.SortFunc(s, func(a, b string) int {
		if sa, sb := keySlot([]byte(a)), keySlot([]byte(b)); sa != sb {
			return cmp.Compare(sa, sb)
		}
		return strings.Compare(a, b)
	})
	out := make([]any, len(s))
	for i, k := range s {
		out[i] = k
	}
	return out
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, k := range s {
		out[i] = k
	}
	return out
}

// TestGenRowStore: a gen row's top byte is its database's store XOR the
// database; one naming a store past the last is corrupt, not a key range
// to read and write.
func TestGenRowStore(t *testing.T) {
	e, err := memory.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.Set(metaGenKey(3), []byte{3 ^ 1, 0, 0, 9}, nil))
	gen, err := readGenFrom(e, 3)
	require.NoError(t, err)
	require.Equal(t, dataPrefix(1, 9), dataPrefix(3, gen), "database 3 lives in store 1")
	require.NoError(t, e.Set(metaGenKey(3), []byte{maxDBs, 0, 0, 9}, nil))
	_, err = readGenFrom(e, 3)
	require.ErrorIs(t, err, logkv.ErrCorrupt)
}
