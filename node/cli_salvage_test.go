package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// dirSums returns a checksum of every file under dir, by path.
func dirSums(t *testing.T, dir string) map[string][32]byte {
	m := map[string][32]byte{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = sha256.Sum256(b)
		return err
	}))
	return m
}

// filesUnder returns the files under dir whose names end in suffix.
func filesUnder(t *testing.T, dir, suffix string) []string {
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, suffix) {
			out = append(out, p)
		}
		return err
	}))
	return out
}

// flipAt flips a byte of path at frac of its length.
func flipAt(t *testing.T, path string, frac float64) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[int(float64(len(b))*frac)] ^= 0x5a
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// kvnode salvage on a node's damaged data directory: the node refuses to
// start and names the tool; the salvage reports the damaged files, leaves
// the source as it was, and a node started on its result holds every key
// that still checked out in the commit log or the engine's files, and none
// that was deleted.
func TestSalvageDamagedDataDir(t *testing.T) {
	for _, tc := range []struct {
		engine, engineFile string
	}{{"bitcask", ".data"}, {"lsm", ".sst"}} {
		t.Run(tc.engine, func(t *testing.T) {
			dir := t.TempDir()
			edit := func(c *Config) { c.Engine, c.DataDir = tc.engine, dir }
			n := newNode(t, edit)
			served := make(chan error, 1)
			go func() { served <- n.Serve() }()
			c := dial(t, n, nil)
			ctx := context.Background()
			want := map[string]string{}
			for i := range 300 {
				k, v := fmt.Sprintf("key%04d", i), fmt.Sprintf("value-%d-%s", i, strings.Repeat("v", i%40))
				require.NoError(t, c.Set(ctx, k, v, 0).Err())
				want[k] = v
			}
			for i := 0; i < 300; i += 50 {
				k := fmt.Sprintf("key%04d", i)
				require.NoError(t, c.Del(ctx, k).Err())
				delete(want, k)
			}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			require.NoError(t, n.Shutdown(sctx))
			require.NoError(t, <-served)

			segs := filesUnder(t, filepath.Join(dir, logSubdir), ".log")
			require.NotEmpty(t, segs)
			flipAt(t, segs[0], 0.5)
			damaged := []string{segs[0]}
			if files := filesUnder(t, filepath.Join(dir, engineSubdir), tc.engineFile); len(files) > 0 {
				flipAt(t, files[0], 0.1) // away from the log record damaged below: each key keeps a copy
				damaged = append(damaged, files[0])
			}
			cfg := DefaultConfig()
			cfg.Listen, cfg.Admin, cfg.Replication.Listen = "127.0.0.1:0", "127.0.0.1:0", "off"
			edit(&cfg)
			_, err := New(cfg, slog.New(slog.DiscardHandler))
			require.ErrorIs(t, err, logkv.ErrCorrupt)
			require.Contains(t, err.Error(), "kvnode salvage -from "+dir, "the refusal names the tool")

			before := dirSums(t, dir)
			to := filepath.Join(t.TempDir(), "salvaged")
			var out, errOut bytes.Buffer
			require.Equal(t, 0, Main([]string{"salvage", "-from", dir, "-to", to}, &out, &errOut), errOut.String())
			t.Log(out.String())
			for _, d := range damaged {
				require.Contains(t, out.String(), d, "the report names each damaged file")
			}
			require.Equal(t, before, dirSums(t, dir), "salvage never changes the source")

			n2 := startNode(t, func(c *Config) { c.Engine, c.DataDir = tc.engine, to })
			c2 := dial(t, n2, nil)
			got := map[string]string{}
			keys, err := c2.Keys(ctx, "key*").Result()
			require.NoError(t, err)
			for _, k := range keys {
				v, err := c2.Get(ctx, k).Result()
				require.NoError(t, err)
				got[k] = v
			}
			for k, v := range got {
				require.Equal(t, want[k], v, "key %s: no deleted key comes back, no value is wrong", k)
			}
			var missing []string
			for k := range want {
				if _, ok := got[k]; !ok {
					missing = append(missing, k)
				}
			}
			require.Empty(t, missing, "the damage was in one copy of each record: nothing is lost")
			require.NoError(t, c2.Set(ctx, "new", "v", 0).Err(), "the salvaged node takes writes")
			require.ErrorIs(t, c2.Get(ctx, "absent").Err(), redis.Nil)
		})
	}
}

// salvage refuses a target that is not empty or lies inside the source.
func TestSalvageRefusesBadTargets(t *testing.T) {
	from := t.TempDir()
	var out, errOut bytes.Buffer
	require.Equal(t, 1, Main([]string{"salvage", "-from", from, "-to", filepath.Join(from, "x")}, &out, &errOut))
	require.Contains(t, errOut.String(), "inside -from")
	to := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(to, "f"), nil, 0o600))
	errOut.Reset()
	require.Equal(t, 1, Main([]string{"salvage", "-from", from, "-to", to}, &out, &errOut))
	require.Contains(t, errOut.String(), "not empty")
	require.Equal(t, 2, Main([]string{"salvage", "-from", from}, &out, &errOut))
}

// kvnode salvage reads a memory node's checkpoint: the keys a clean stop
// left only there (the log before the checkpoint is trimmed) come back, and
// a damaged checkpoint gives every chunk before the damage, reported with
// the file and offset.
func TestSalvageMemoryCheckpoint(t *testing.T) {
	dir := t.TempDir()
	edit := func(c *Config) { c.Engine, c.DataDir = "memory", dir }
	n := newNode(t, edit)
	served := make(chan error, 1)
	go func() { served <- n.Serve() }()
	c := dial(t, n, nil)
	ctx := context.Background()
	want := map[string]string{}
	value := strings.Repeat("v", 4<<10) // several chunks of 1 MiB
	for i := range 1000 {
		k := fmt.Sprintf("key%04d", i)
		require.NoError(t, c.Set(ctx, k, value, 0).Err())
		want[k] = value
	}
	// A checkpoint, and the log before it trimmed (Maintain trims whole
	// segments once the log has grown past them; the test removes them):
	// the keys are now only in the checkpoint.
	require.NoError(t, n.rep(t).Checkpoint())
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, n.Shutdown(sctx))
	require.NoError(t, <-served)
	cp := filepath.Join(dir, logSubdir, "checkpoint")
	st, err := os.Stat(cp)
	require.NoError(t, err)
	for _, seg := range filesUnder(t, filepath.Join(dir, logSubdir), ".log") {
		require.NoError(t, os.Remove(seg))
	}

	salvaged := func(t *testing.T) (map[string]string, string) {
		to := filepath.Join(t.TempDir(), "salvaged")
		var out, errOut bytes.Buffer
		require.Equal(t, 0, Main([]string{"salvage", "-from", dir, "-to", to}, &out, &errOut), errOut.String())
		n2 := startNode(t, func(c *Config) { c.Engine, c.DataDir = "memory", to })
		c2 := dial(t, n2, nil)
		keys, err := c2.Keys(ctx, "key*").Result()
		require.NoError(t, err)
		got := map[string]string{}
		for _, k := range keys {
			got[k] = c2.Get(ctx, k).Val()
		}
		return got, out.String()
	}
	t.Run("intact", func(t *testing.T) {
		got, out := salvaged(t)
		require.Contains(t, out, "checkpoint keys")
		require.Equal(t, want, got, "every key, from the checkpoint")
	})
	t.Run("damaged", func(t *testing.T) {
		// Only what the report says: the keyspace's format record sorts
		// after the keys, past the damage; salvage restores it
		// (restoreMeta; TestSalvageDamagedLastCheckpointChunk starts a
		// node on such a result).
		flipAt(t, cp, 0.75)
		to := filepath.Join(t.TempDir(), "salvaged")
		var out, errOut bytes.Buffer
		require.Equal(t, 0, Main([]string{"salvage", "-from", dir, "-to", to}, &out, &errOut), errOut.String())
		require.Contains(t, out.String(), cp+": offset ", "the report names the checkpoint and where its damage starts")
		m := regexp.MustCompile(`read (\d+) checkpoint keys`).FindStringSubmatch(out.String())
		require.NotNil(t, m, out.String())
		kept, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		require.Positive(t, kept, "the chunks before the damage")
		require.Less(t, kept, len(want), "the chunks after it are lost: the log was trimmed; checkpoint of %d bytes; salvage said:\n%s", st.Size(), out.String())
		t.Logf("%d of %d keys from a checkpoint of %d bytes damaged at 75%%", kept, len(want), st.Size())
	})
}
