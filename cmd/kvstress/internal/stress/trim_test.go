package stress

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestNodeRestartAfterTrim kills a replicated lsm kvnode just after its
// commit log rolled to a new segment (before Maintain syncs the engine),
// restarts it (the log is replayed into the memtable only: the lsm has no
// WAL), lets Maintain run, and kills it again. The second restart must
// still hold every acknowledged write.
//
// It caught a bug: replicate's recover set checkpointSeq to the engine's
// LastSeq after the replay, so Maintain trimmed the sealed segment whose
// records lived only in the memtable, and the node then refused to start
// ("full resync needed: the engine is at seq 0 but the log starts at N").
// recover no longer counts the engine as durable after Open.
func TestNodeRestartAfterTrim(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvnode, writes 70 MB")
	}
	bin := filepath.Join(t.TempDir(), "kvnode")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/logkv/logkv/cmd/kvnode").CombinedOutput()
	require.NoError(t, err, "%s", out)
	ctx := context.Background()
	for attempt := 1; ; attempt++ {
		if trimRepro(t, ctx, bin) {
			return
		}
		// Maintain ticked between the roll and the kill: try again.
		require.Less(t, attempt, 5, "never killed kvnode between a log roll and the engine sync")
	}
}

// trimRepro runs the scenario once; it returns false when the first kill
// came too late (the engine was already synced).
func trimRepro(t *testing.T, ctx context.Context, bin string) bool {
	dir := t.TempDir()
	tls, err := makeCerts(ctx, bin, dir)
	require.NoError(t, err)
	n := &nodeRunner{cfg: Config{KVNode: bin, Replicated: true}, config: filepath.Join(dir, "node.yaml")}
	addr, err := freeAddr()
	require.NoError(t, err)
	n.client = redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: 10 * time.Second})
	defer n.stop()
	data := filepath.Join(dir, "data")
	// A memtable bigger than everything written: nothing reaches an sstable
	// but through Maintain's engine sync.
	yaml := fmt.Sprintf(nodeConfig, "lsm", data, n.client.Options().Addr, "always") +
		"engine_options:\n  memtable_size: 268435456\n" + fmt.Sprintf(replicatedConfig, tls)
	require.NoError(t, os.WriteFile(n.config, []byte(yaml), 0o644))
	_, err = n.start(ctx)
	require.NoError(t, err)

	require.NoError(t, n.client.Set(ctx, "first", "acked", 0).Err())
	big := bytes.Repeat([]byte("v"), 100_000)
	write := func(from, to int) {
		p := n.client.Pipeline()
		for i := from; i < to; i++ {
			p.Set(ctx, fmt.Sprintf("big%04d", i), big, 0)
			if i%20 == 19 || i == to-1 {
				_, err := p.Exec(ctx)
				require.NoError(t, err)
			}
		}
	}
	write(0, 640) // 64.0 MB: just under the 64 MiB segment size
	// kvnode turns each pipeline into commit-log records of about 1 MB: the
	// segment rolls at the first record after 67.1 MB.
	write(640, 700)
	n.kill() // just after the roll, before Maintain's next tick
	segs := func() []string {
		m, err := filepath.Glob(filepath.Join(data, "log", "log", "*.log"))
		require.NoError(t, err)
		return m
	}
	ssts, err := filepath.Glob(filepath.Join(data, "engine", "*.sst"))
	require.NoError(t, err)
	if len(segs()) < 2 || len(ssts) > 0 {
		return false
	}

	_, err = n.start(ctx)
	require.NoError(t, err)
	require.Equal(t, "acked", n.client.Get(ctx, "first").Val())
	// Maintain runs every second: wait (bounded) for it to trim the sealed
	// segment, polling the external process's directory.
	for i := 0; len(segs()) > 1 && i < 5000; i++ {
		runtimeYield()
	}
	n.kill()

	_, err = n.start(ctx)
	require.NoError(t, err, "restart after the trim (log segments %v)", strings.Join(segs(), " "))
	require.Equal(t, "acked", n.client.Get(ctx, "first").Val())
	return true
}
