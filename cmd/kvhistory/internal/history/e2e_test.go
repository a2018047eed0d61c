package history

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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
	work, bin := buildKvnode(t)
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

// TestSyncExpiryLinearizable runs the expiry workload (deadlines a few
// hundred milliseconds ahead, set, moved and cleared while keys are read)
// under failovers, on the memory engine (the other
// engines run in make stress), and requires that keys really expired, that
// no acknowledged write was lost and that the history is linearizable: a
// failover neither resurrected an expired key nor lost a live one.
func TestSyncExpiryLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	work, bin := buildKvnode(t)
	const seed = 11
	res, err := Run(context.Background(), Config{
		Kvnode: bin, Work: work, Ack: "sync", Engine: "memory", Workload: WorkloadExpiry,
		Duration: 5 * time.Second, Nemesis: []string{FaultPromote}, Interval: time.Second, Seed: seed,
		CheckTimeout: 2 * time.Minute, Logf: t.Logf,
	})
	require.NoError(t, err)
	t.Log(res.Summary("sync"))
	require.Greater(t, res.OK, 100, "the workload made progress")
	require.GreaterOrEqual(t, res.Faults[FaultPromote], 2, "the nemesis failed over")
	require.Greater(t, res.ExpiredReads, 0, "reads saw keys expire")
	require.Zero(t, res.Lost(), "sync mode lost acknowledged writes across a failover (seed %d): %s", seed, res.Summary("sync"))
	require.NotEqual(t, porcupine.Unknown, res.Verdict.Result, "porcupine did not decide within its timeout (seed %d): %s", seed, res.Summary("sync"))
	require.True(t, res.Verdict.Linearizable(), "the expiry history is not linearizable (seed %d): %s; porcupine's visualisation: %s", seed, res.Summary("sync"), res.Verdict.HTML)
}

// kvnodeBin is kvnode built once for the package's tests (TestMain
// removes it).
var kvnodeBin struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if kvnodeBin.dir != "" {
		os.RemoveAll(kvnodeBin.dir)
	}
	os.Exit(code)
}

// buildKvnode returns a fresh work directory, whose logs are kept if the
// test fails, and kvnode built once for every test.
func buildKvnode(t *testing.T) (work, bin string) {
	work = t.TempDir()
	keepOnFailure(t, work)
	b := &kvnodeBin
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "logkv-history-bin-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "kvnode")
		out, err := exec.Command("go", "build", "-o", b.bin, "github.com/logkv/logkv/cmd/kvnode").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build kvnode: %v: %s", err, out)
		}
	})
	require.NoError(t, b.err)
	return work, b.bin
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
