package history

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// TestSyncKillPromoteLinearizable runs a short sync-mode cluster under
// follower kills and failovers and requires a linearizable history with no
// acknowledged write lost. Either failure fails the test: they are what it
// exists to find. A failed run keeps the nodes' logs and porcupine's
// visualisation in a directory it names.
func TestSyncKillPromoteLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	work := t.TempDir()
	keepOnFailure(t, work)
	bin := filepath.Join(work, "kvnode")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/logkv/logkv/cmd/kvnode").CombinedOutput()
	require.NoError(t, err, "%s", out)

	const seed = 7
	res, err := Run(context.Background(), Config{
		Kvnode: bin, Work: work, Ack: "sync", Duration: 6 * time.Second, Clients: 6,
		Nemesis: []string{FaultKill, FaultPromote}, Interval: time.Second, Seed: seed,
		CheckTimeout: 2 * time.Minute, Logf: t.Logf,
	})
	require.NoError(t, err)
	t.Log(res.Summary("sync"))
	require.Greater(t, res.OK, 100, "the workload made progress")
	require.Greater(t, res.Faults[FaultKill]+res.Faults[FaultPromote], 0, "the nemesis injected faults")
	// Each assertion runs whatever the other found.
	require.Zero(t, res.Lost(), "sync mode lost acknowledged writes across a failover (seed %d): %s", seed, res.Summary("sync"))
	require.NotEqual(t, porcupine.Unknown, res.Verdict.Result, "porcupine did not decide within its timeout (seed %d): %s", seed, res.Summary("sync"))
	require.True(t, res.Verdict.Linearizable(), "sync mode produced a non-linearizable history (seed %d): %s; porcupine's visualisation: %s", seed, res.Summary("sync"), res.Verdict.HTML)
}

// keepOnFailure copies work's logs and visualisations to a directory that
// outlives the test when it fails, and says where.
func keepOnFailure(t *testing.T, work string) {
	t.Cleanup(func() { // runs before t.TempDir's removal: cleanups run last first
		if !t.Failed() {
			return
		}
		keep, err := os.MkdirTemp("", "logkv-history-")
		if err != nil {
			t.Logf("keep the run's files: %v", err)
			return
		}
		for _, pat := range []string{"*.log", "*.html"} {
			files, _ := filepath.Glob(filepath.Join(work, pat))
			for _, f := range files {
				if b, err := os.ReadFile(f); err == nil {
					_ = os.WriteFile(filepath.Join(keep, filepath.Base(f)), b, 0o600)
				}
			}
		}
		t.Logf("the nodes' logs and porcupine's visualisation are kept in %s", keep)
	})
}
