package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logkv/logkv"
	_ "github.com/logkv/logkv/lsm"
	"github.com/stretchr/testify/require"
)

// replTestConfig runs every replication benchmark briefly.
func replTestConfig(engine string) Config {
	cfg := testConfig(engine)
	cfg.Benchmarks = []string{"replicate"}
	cfg.Num = 300
	cfg.Threads = 4
	cfg.Followers = 2
	cfg.Rate = 3000
	cfg.BacklogBytes = 100_000
	return cfg
}

func byName(results []Result, bench, op string) (Result, bool) {
	for _, r := range results {
		if r.Kind == "result" && r.Benchmark == bench && r.Op == op {
			return r, true
		}
	}
	return Result{}, false
}

func TestReplicationBenchmarks(t *testing.T) {
	for _, engine := range []string{"memory", "lsm"} {
		t.Run(engine, func(t *testing.T) {
			cfg := replTestConfig(engine)
			res, out := runCfg(t, cfg)

			base, ok := byName(res, "unreplicated-write", "all")
			require.True(t, ok, out)
			require.EqualValues(t, cfg.Num, base.Ops)
			require.Positive(t, base.OpsPerSec)
			require.Positive(t, base.P99)
			repl, ok := byName(res, "replicate-write", "all")
			require.True(t, ok, out)
			require.EqualValues(t, cfg.Num, repl.Ops)
			require.Equal(t, 2, repl.Followers)
			require.Zero(t, repl.Errors, "followers differ from the leader")
			require.InDelta(t, repl.OpsPerSec/base.OpsPerSec, repl.Ratio, 1e-9)
			require.Contains(t, out, "x unreplicated-write, target >= 0.9x")

			lag, ok := byName(res, "replicate-lag", "all")
			require.True(t, ok, out)
			require.EqualValues(t, cfg.Num, lag.Ops)
			require.Zero(t, lag.Errors, "followers differ from the leader")
			// One sample per 2000/s of rate (here every write) on each follower.
			require.EqualValues(t, 2*cfg.Num, lag.Samples)
			require.Positive(t, lag.P50)
			require.GreaterOrEqual(t, lag.P99, lag.P50)
			require.GreaterOrEqual(t, lag.P999, lag.P99)
			require.GreaterOrEqual(t, lag.Max, lag.P999)
			for _, op := range []string{"lag-f0", "lag-f1"} {
				f, ok := byName(res, "replicate-lag", op)
				require.True(t, ok, "%s\n%s", op, out)
				require.EqualValues(t, cfg.Num, f.Samples)
				require.LessOrEqual(t, f.P99, lag.Max)
			}
			w, ok := byName(res, "replicate-lag", "write")
			require.True(t, ok, out)
			require.Positive(t, w.P50)
			require.Contains(t, out, "target < 50ms")

			cu, ok := byName(res, "replicate-catchup", "all")
			require.True(t, ok, out)
			require.EqualValues(t, cfg.BacklogBytes/int64(cfg.KeySize+cfg.ValueSize), cu.Ops)
			require.Zero(t, cu.Errors, "the follower differs from the leader")
			require.Equal(t, "log streaming", cu.CatchUp)
			require.Greater(t, cu.Bytes, cfg.BacklogBytes, "the log holds the keys and values and more")
			require.Positive(t, cu.MBPerSec)
		})
	}
}

func TestReplicationJSON(t *testing.T) {
	cfg := replTestConfig("memory")
	cfg.Benchmarks = []string{"replicate-catchup", "replicate-write"}
	cfg.JSON = true
	_, out := runCfg(t, cfg)
	var benches []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r Result
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		require.Equal(t, "result", r.Kind)
		benches = append(benches, r.Benchmark)
		if r.Benchmark == "replicate-write" {
			require.Positive(t, r.Ratio)
			require.Contains(t, sc.Text(), `"ratio":`)
		}
	}
	require.Equal(t, []string{"replicate-catchup", "unreplicated-write", "replicate-write"}, benches)
}

func TestReplicationConfig(t *testing.T) {
	cfg := replTestConfig("memory")
	cfg.Benchmarks = []string{"fillseq", "replicate"}
	require.NoError(t, cfg.Validate())
	require.Equal(t, append([]string{"fillseq"}, ReplicationBenchmarks...), cfg.Benchmarks)
	for _, mutate := range []func(*Config){
		func(c *Config) { c.Followers = 0 },
		func(c *Config) { c.Rate = 0 },
		func(c *Config) { c.BacklogBytes = 0 },
		func(c *Config) { c.CatchUp = "snapshot" },
		func(c *Config) { c.FollowerDir = filepath.Join(t.TempDir(), "missing") },
		func(c *Config) { c.Benchmarks = []string{"replicate-nope"} },
	} {
		c := replTestConfig("memory")
		mutate(&c)
		require.True(t, errors.Is(c.Validate(), ErrUsage))
	}
}

// With FollowerDir the followers' logs and engines live there, in a
// directory of their own that goes when the benchmark ends, and the leader's
// stay under the session's directory.
func TestReplicationFollowerDir(t *testing.T) {
	cfg := replTestConfig("lsm")
	cfg.FollowerDir = t.TempDir()
	s := &session{cfg: &cfg, engine: "lsm", dir: t.TempDir()}
	c, err := s.newReplCluster(filepath.Join(s.dir, "replicate"), 1<<50, true, 0)
	require.NoError(t, err)
	f, err := c.startFollower(0)
	require.NoError(t, err)
	var b logkv.Batch
	b.Set([]byte("k"), []byte("v"))
	seq, err := c.leader.Write(&b)
	require.NoError(t, err)
	require.NoError(t, c.waitApplied(t.Context(), seq))
	require.Equal(t, seq, f.LastSeq())

	followers, err := filepath.Glob(filepath.Join(cfg.FollowerDir, "kvbench-followers-*", "f0", "node"))
	require.NoError(t, err)
	require.Len(t, followers, 1, "f0's commit log is under FollowerDir")
	require.DirExists(t, filepath.Join(s.dir, "replicate", leaderID, "node"))
	require.NoDirExists(t, filepath.Join(s.dir, "replicate", "f0"))

	require.NoError(t, c.close())
	left, err := os.ReadDir(cfg.FollowerDir)
	require.NoError(t, err)
	require.Empty(t, left, "the followers' directory is removed")
}

func TestDiffEngines(t *testing.T) {
	open := func(kv ...string) logkv.Engine {
		db, err := logkv.Open("memory", "", nil)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		for i := 0; i < len(kv); i += 2 {
			require.NoError(t, db.Set([]byte(kv[i]), []byte(kv[i+1]), nil))
		}
		return db
	}
	a := open("a", "1", "b", "2", "c", "3")
	n, err := diffEngines(a, open("a", "1", "b", "2", "c", "3"))
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = diffEngines(a, open("a", "1", "b", "X", "d", "4"))
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "b differs, c missing, d extra")
	n, err = diffEngines(a, open())
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	n, err = diffEngines(open(), a)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
}

func TestReplicateWriteRounds(t *testing.T) {
	// Odd rounds run the replicated case first; the output order and the
	// ratio are the same in every round.
	cfg := replTestConfig("memory")
	cfg.Benchmarks = []string{"replicate-write"}
	cfg.Rounds = 2
	cfg.Followers = 1
	res, out := runCfg(t, cfg)
	var got []string
	for _, r := range res {
		if r.Kind != "result" {
			continue
		}
		got = append(got, r.Benchmark)
		require.EqualValues(t, cfg.Num, r.Ops)
		require.Zero(t, r.Errors)
		if r.Benchmark == "replicate-write" {
			require.Positive(t, r.Ratio)
			require.Equal(t, 1, r.Followers)
		}
	}
	require.Equal(t, []string{"unreplicated-write", "replicate-write", "unreplicated-write", "replicate-write"}, got, out)
	require.Contains(t, out, "median ops/s over 2 round(s)")
}
