package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// format1Keys is how many keys writeFormat1 puts in database 0: more than
// two conversion batches.
const format1Keys = 2*convertBatchKeys + 100

// writeFormat1 writes a keyspace of format 1 into cfg's data_dir, as a
// kvnode before format 2 left it: database 0 at generation 0 with
// format1Keys keys (every tenth with a deadline an hour away, and one past
// its deadline), database 3 at generation 5 with two keys, and a stale key
// of database 3's generation 4 that the sweeper owes.
func writeFormat1(t *testing.T, cfg Config) (deadline int64) {
	t.Helper()
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	deadline = time.Now().Add(time.Hour).UnixMilli()
	f1 := func(db int, gen uint32, key string) []byte { // format 1: dbgen key
		return append(appendDBGen(nil, db, gen), key...)
	}
	var b logkv.Batch
	b.Set(metaFormatKey, []byte{1})
	b.Set(metaGenKey(3), binary.BigEndian.AppendUint32(nil, 5))
	for i := range format1Keys {
		k := fmt.Sprintf("key:%05d", i)
		at := int64(0)
		if i%10 == 0 {
			at = deadline
			b.Set(appendExpiryKey(nil, 0, 0, at, []byte(k)), nil)
		}
		b.Set(f1(0, 0, k), appendValue(nil, at, []byte("v"+k)))
	}
	b.Set(f1(0, 0, "gone"), appendValue(nil, 1000, []byte("x")))
	b.Set(appendExpiryKey(nil, 0, 0, 1000, []byte("gone")), nil)
	b.Set(f1(3, 5, "x"), appendValue(nil, 0, []byte("1")))
	b.Set(f1(3, 5, "y"), appendValue(nil, 0, []byte("2")))
	b.Set(f1(3, 4, "stale"), appendValue(nil, 0, []byte("old")))
	require.NoError(t, errors.Join(n.backend.Submit(&b), n.backend.Sync()))
	require.NoError(t, n.Shutdown(context.Background()))
	return deadline
}

// checkConverted checks that n serves writeFormat1's keyspace in format 2,
// exactly: every key, value and deadline, nothing more.
func checkConverted(t *testing.T, n *Node, deadline int64) {
	t.Helper()
	ctx := context.Background()
	c := dial(t, n, withAuth)
	v, err := n.eng().Get(metaFormatKey)
	require.NoError(t, err)
	require.Equal(t, []byte{keyspaceFormat}, v)
	_, err = n.eng().Get(metaConvertKey)
	require.ErrorIs(t, err, logkv.ErrNotFound, "the conversion is finished")
	require.Equal(t, int64(format1Keys), c.DBSize(ctx).Val())
	for _, i := range []int{0, 1, 17, convertBatchKeys, format1Keys - 1} {
		k := fmt.Sprintf("key:%05d", i)
		require.Equal(t, "v"+k, c.Get(ctx, k).Val())
		if i%10 == 0 {
			require.Equal(t, deadline, c.PExpireTime(ctx, k).Val().Milliseconds(), k)
		} else {
			require.Equal(t, time.Duration(-1), c.TTL(ctx, k).Val(), k)
		}
	}
	require.Zero(t, c.Exists(ctx, "gone").Val(), "past its deadline")
	keys, err := c.Keys(ctx, "key:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, format1Keys)
	c3 := dial(t, n, func(o *redis.Options) { withAuth(o); o.DB = 3 })
	require.Equal(t, int64(2), c3.DBSize(ctx).Val())
	require.Equal(t, "2", c3.Get(ctx, "y").Val())
	// The old generations go in the background.
	require.Eventually(t, func() bool {
		return countRange(t, n, dataPrefix(0, 0), prefixEnd(dataPrefix(0, 0))) == 0 &&
			countRange(t, n, dataPrefix(3, 0), dataPrefix(3, 6)) == 0 &&
			countRange(t, n, expiryPrefix(0, 0), expiryPrefix(0, 1)) == 0
	}, 20*time.Second, 20*time.Millisecond, "the sweeper deletes format 1's keys")
	require.Equal(t, int64(format1Keys), c.DBSize(ctx).Val())
}

// A leader converts a keyspace of format 1 at start, on every engine.
func TestConvertFormat1(t *testing.T) {
	for _, e := range engines {
		t.Run(e, func(t *testing.T) {
			cfg := testConfig(t, e)
			deadline := writeFormat1(t, cfg)
			n, err := New(cfg, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			serve(t, n)
			checkConverted(t, n, deadline)
		})
	}
}

// A conversion that stops half-way (a crash after its second batch) is
// finished by the next start: every key once, nothing left over.
func TestConvertFormat1Interrupted(t *testing.T) {
	cfg := testConfig(t, "bitcask")
	deadline := writeFormat1(t, cfg)
	convertHook = func(batches int) error {
		if batches == 2 {
			return errors.New("simulated crash")
		}
		return nil
	}
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	convertHook = nil
	require.ErrorContains(t, err, "start the node again to finish the conversion")

	n, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	serve(t, n)
	checkConverted(t, n, deadline)
}

// A keyspace of a format this kvnode does not know is refused, saying so.
func TestFutureFormatRefused(t *testing.T) {
	cfg := testConfig(t, "memory")
	n, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, errors.Join(n.backend.Set(metaFormatKey, []byte{3}), n.backend.Sync()))
	require.NoError(t, n.Shutdown(context.Background()))
	_, err = New(cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "keyspace format [3]")
}

// testConfig is newNode's configuration with engine e, a password and a
// data_dir that outlives one node.
func testConfig(t *testing.T, e string) Config {
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin, cfg.Replication.Listen = e, t.TempDir(), "127.0.0.1:0", "off", "127.0.0.1:0"
	withPassword(&cfg)
	return cfg
}

// A follower gets its leader's conversion through the log: while its data
// is format 1 it refuses reads, saying why, and once the conversion arrives
// it serves the keys in format 2.
func TestConvertReachesFollower(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	var out bytes.Buffer
	require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir}, &out, &out), out.String())
	ctx := context.Background()
	leader := replNode(t, tlsDir, "memory", "", withPassword)
	// The leader's data as a kvnode of format 1 left it (replicated).
	var b logkv.Batch
	b.Set(metaFormatKey, []byte{1})
	for i := range 100 {
		k := fmt.Sprintf("key:%03d", i)
		b.Set(append(appendDBGen(nil, 0, 0), k...), appendValue(nil, 0, []byte("v"+k)))
	}
	require.NoError(t, errors.Join(leader.backend.Submit(&b), leader.backend.Sync()))

	f := replNode(t, tlsDir, "bitcask", leader.rep(t).Addr(), withPassword)
	caughtUp(t, leader, f)
	fc := dial(t, f, withAuth)
	require.ErrorContains(t, fc.Get(ctx, "key:001").Err(), "keyspace format 1")

	require.NoError(t, leader.convertFormat1()) // as its next start would
	leader.ks.gensLoaded.Store(false)
	caughtUp(t, leader, f)
	require.Equal(t, "vkey:001", fc.Get(ctx, "key:001").Val())
	require.Equal(t, int64(100), fc.DBSize(ctx).Val())
	require.Equal(t, "vkey:099", dial(t, leader, withAuth).Get(ctx, "key:099").Val())
}
