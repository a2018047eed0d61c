package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logkv/logkv/replicate"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// replNodes numbers the nodes replNode starts: each gets its own
// certificate, as every node of a cluster must.
var replNodes atomic.Int64

// replNode starts a replicated node with a certificate of its own issued by
// the CA in tlsDir.
func replNode(t *testing.T, tlsDir, engine, replicaOf string, edit ...func(*Config)) *Node {
	name := fmt.Sprintf("n%d", replNodes.Add(1))
	var out bytes.Buffer
	require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir, "-node", name}, &out, &out), out.String())
	return startNode(t, func(c *Config) {
		c.Engine = engine
		c.Admin = "off"
		c.TLS.Dir = filepath.Join(tlsDir, name)
		c.Replication.Listen = "127.0.0.1:0"
		c.Replication.ReplicaOf = replicaOf
		for _, e := range edit {
			e(c)
		}
	})
}

func (n *Node) rep(t *testing.T) *replicate.Replica {
	b, ok := n.backend.(*replicatedBackend)
	require.True(t, ok, "node is not replicated")
	return b.r
}

// caughtUp waits until follower has applied everything leader has.
func caughtUp(t *testing.T, leader, follower *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, follower.rep(t).WaitApplied(ctx, leader.rep(t).LastSeq()))
}

func scanAll(t *testing.T, c *redis.Client) map[string]string {
	ctx := context.Background()
	out := map[string]string{}
	it := c.Scan(ctx, 0, "", 500).Iterator()
	for it.Next(ctx) {
		out[it.Val()] = c.Get(ctx, it.Val()).Val()
	}
	require.NoError(t, it.Err())
	return out
}

func TestReplicationThroughRESP(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	var out bytes.Buffer
	require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir}, &out, &out), out.String())
	ctx := context.Background()

	// REPLICAOF is an admin command: the nodes have a password.
	leader := replNode(t, tlsDir, "lsm", "", withPassword)
	laddr := leader.rep(t).Addr()
	f1 := replNode(t, tlsDir, "bitcask", laddr, withPassword)
	f2 := replNode(t, tlsDir, "memory", laddr, withPassword)
	lc := dial(t, leader, withAuth)
	c1, c2 := dial(t, f1, withAuth), dial(t, f2, withAuth)

	_, err := lc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 1000 {
			p.Set(ctx, fmt.Sprintf("k%04d", i), i, 0)
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, lc.MSet(ctx, "a", "1", "b", "2").Err())
	require.Equal(t, int64(1), lc.Del(ctx, "k0000").Val())
	caughtUp(t, leader, f1)
	caughtUp(t, leader, f2)
	want := scanAll(t, lc)
	require.Len(t, want, 1001)
	require.Equal(t, want, scanAll(t, c1), "bitcask follower equals the leader")
	require.Equal(t, want, scanAll(t, c2), "memory follower equals the leader")

	require.EqualError(t, c1.Set(ctx, "x", "1", 0).Err(), errReadOnly)
	require.Contains(t, c1.Info(ctx, "replication").Val(), "role:slave")
	info := lc.Info(ctx, "replication").Val()
	require.Contains(t, info, "role:master")
	require.Contains(t, info, "connected_slaves:2")
	require.Equal(t, "slave", c1.Do(ctx, "role").Val().([]any)[0])
	require.Equal(t, int64(2), lc.Do(ctx, "wait", "2", "5000").Val(), "both followers hold every write")
	var prom strings.Builder

	families, err := leader.metrics.reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		prom.WriteString(mf.GetName() + "\n")
	}
	for _, name := range []string{"logkv_replication_follower_lag_records", "logkv_replication_follower_lag_seconds", "logkv_replication_follower_apply_rate", "logkv_replication_follower_sent_frames_total", "logkv_replication_seq", "logkv_replication_leader"} {
		require.Contains(t, prom.String(), name)
	}

	// Promote f1; the old leader and f2 follow it; all converge.
	require.NoError(t, c1.Do(ctx, "replicaof", "no", "one").Err())
	require.NoError(t, c1.Set(ctx, "after", "promotion", 0).Err())
	host, port := splitHostPort(t, f1.rep(t).Addr())
	require.NoError(t, lc.Do(ctx, "replicaof", host, port).Err())
	require.NoError(t, c2.Do(ctx, "replicaof", host, port).Err())
	require.EqualError(t, lc.Set(ctx, "y", "1", 0).Err(), errReadOnly, "the old leader now refuses writes")
	caughtUp(t, f1, leader)
	caughtUp(t, f1, f2)
	want = scanAll(t, c1)
	require.Equal(t, "promotion", want["after"])
	require.Equal(t, want, scanAll(t, lc))
	require.Equal(t, want, scanAll(t, c2))
}

func TestReplicationNeedsCertificates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Engine, cfg.DataDir, cfg.Listen, cfg.Admin = "memory", t.TempDir(), "127.0.0.1:0", "off"
	cfg.Replication.ReplicaOf = "127.0.0.1:7380"
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "kvnode certs -dir DIR")
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return h, p
}

// With writes submitted and awaited at the pipeline's end, a client still
// reads its own writes within a pipeline, and read-modify-write commands
// see every earlier write: concurrent INCRs lose no update. So in both
// appendfsync modes, and a follower receives everything.
func TestReplicatedWriteVisibility(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	var out bytes.Buffer
	require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir}, &out, &out), out.String())
	for _, mode := range []string{"always", "everysec"} {
		t.Run(mode, func(t *testing.T) {
			leader := replNode(t, tlsDir, "lsm", "", func(c *Config) { c.AppendFsync = mode })
			follower := replNode(t, tlsDir, "bitcask", leader.rep(t).Addr())
			writeVisibility(t, leader)
			pipelineInOrder(t, leader)
			caughtUp(t, leader, follower)
			require.Equal(t, scanAll(t, dial(t, leader, nil)), scanAll(t, dial(t, follower, nil)))
		})
	}
}

func writeVisibility(t *testing.T, leader *Node) {
	require.False(t, leader.backend.Visible(), "async replication defers durability")
	ctx := context.Background()
	c := dial(t, leader, nil)

	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 50 {
			p.Set(ctx, "k", i, 0)
			p.Get(ctx, "k")
		}
		return nil
	})
	require.NoError(t, err)
	for i := range 50 {
		require.Equal(t, fmt.Sprint(i), cmds[2*i+1].(*redis.StringCmd).Val(), "GET after SET in one pipeline")
	}

	const clients, incrs = 8, 50
	errs := make(chan error, clients)
	for range clients {
		go func() {
			cl := dial(t, leader, nil)
			var err error
			for range incrs {
				if err = cl.Incr(ctx, "counter").Err(); err != nil {
					break
				}
				cl.Set(ctx, "noise", "x", 0) // plain writes in between
			}
			errs <- err
		}()
	}
	for range clients {
		require.NoError(t, <-errs)
	}
	require.Equal(t, fmt.Sprint(clients*incrs), c.Get(ctx, "counter").Val())
}

// TestStandaloneEverysec: with durability none (no commit log), appendfsync
// everysec leaves syncing the engine to a background syncer; a clean
// shutdown still keeps every write.
func TestStandaloneEverysec(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) { c.Engine, c.DataDir, c.AppendFsync, c.Durability = "lsm", dir, "everysec", "none" }
	n := startNode(t, edit)
	s, ok := n.backend.(*standalone)
	require.True(t, ok)
	require.True(t, s.everysec)
	require.Equal(t, "everysec", dial(t, n, nil).ConfigGet(context.Background(), "appendfsync").Val()["appendfsync"])
	ctx := context.Background()
	c := dial(t, n, nil)
	walSyncs := func() float64 { return engineMetric(t, n, "lsm_wal_syncs_total") }
	before, start := walSyncs(), time.Now()
	for p := range 20 { // 20 pipelines: with always, 20 fsyncs
		_, err := c.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i := range 25 {
				pl.Set(ctx, fmt.Sprintf("k%03d", p*25+i), p*25+i, 0)
			}
			return nil
		})
		require.NoError(t, err)
	}
	syncs := walSyncs() - before
	require.LessOrEqual(t, syncs, time.Since(start).Seconds()+1, "the syncer's, once a second, not one per pipeline")
	require.Equal(t, "499", c.Get(ctx, "k499").Val())
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, n.Shutdown(sctx))

	n2 := startNode(t, edit)
	c2 := dial(t, n2, nil)
	require.Equal(t, int64(500), c2.DBSize(ctx).Val())
	require.Equal(t, "123", c2.Get(ctx, "k123").Val())
}
