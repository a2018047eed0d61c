package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Finding 1 of issue 16: REPLICAOF pointed at another node of the same CA
// (equal epoch, another history) emptied the engine of a node holding 1003
// keys, before any snapshot arrived. Now the node refuses, with the numbers,
// and keeps its data and its role; REPLICAOF ... FORCE follows, loading the
// leader's snapshot into a new engine directory swapped in once complete.
func TestReplicaOfRefusesToDiscard(t *testing.T) {
	tlsDir := filepath.Join(t.TempDir(), "tls")
	var out bytes.Buffer
	require.Equal(t, 0, Main([]string{"certs", "-dir", tlsDir}, &out, &out), out.String())
	ctx := context.Background()
	for _, engine := range []string{"bitcask", "memory"} {
		t.Run(engine, func(t *testing.T) {
			dirs := []string{t.TempDir(), t.TempDir()}
			a := replNode(t, tlsDir, engine, "", withPassword, func(c *Config) { c.DataDir = dirs[0] })
			b := replNode(t, tlsDir, engine, "", withPassword, func(c *Config) { c.DataDir = dirs[1] })
			if a.rep(t).Epoch() < b.rep(t).Epoch() {
				// A node refuses a leader of an older epoch whatever it
				// is told: b is the one that must refuse on its own.
				a, b, dirs[0], dirs[1] = b, a, dirs[1], dirs[0]
			}
			ca, cb := dial(t, a, withAuth), dial(t, b, withAuth)
			require.NoError(t, ca.Set(ctx, "from-a", "1", 0).Err())
			// b: its bootstrap record (keyspace) and 1003 SETs, all applied.
			for i := range 1003 {
				require.NoError(t, cb.Set(ctx, fmt.Sprintf("b%04d", i), i, 0).Err())
			}

			host, port := splitHostPort(t, a.rep(t).Addr())
			err := cb.Do(ctx, "replicaof", host, port).Err()
			require.ErrorContains(t, err, "applied 1004 records that snapshot does not hold")
			require.ErrorContains(t, err, "max_discard")
			require.Equal(t, int64(1003), cb.DBSize(ctx).Val(), "b keeps its data")
			require.NoError(t, cb.Set(ctx, "still", "writable", 0).Err(), "and stays a leader")

			require.ErrorContains(t, cb.Do(ctx, "replicaof", host, port, "maybe").Err(), "syntax")
			require.NoError(t, cb.Do(ctx, "replicaof", host, port, "force").Err())
			// b applied more than a holds: wait for the resync itself.
			waitFor(t, func() bool {
				st := b.rep(t).Status()
				return st.Resyncs == 1 && st.State == "streaming"
			}, "b's full resync")
			caughtUp(t, a, b)
			require.Equal(t, scanAll(t, ca), scanAll(t, cb))
			require.NoError(t, cb.Get(ctx, "from-a").Err(), "b's clients read the new data")
			if engine == "bitcask" {
				_, err := os.Stat(filepath.Join(dirs[1], "engine.1"))
				require.NoError(t, err, "the snapshot loaded into a new generation")
				_, err = os.Stat(filepath.Join(dirs[1], "engine"))
				require.True(t, os.IsNotExist(err), "the replaced one is gone: %v", err)
			}
		})
	}
}
