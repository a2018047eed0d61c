package stress

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/logkv/logkv/cmd/kvstress/internal/stress/powercut"
	"github.com/stretchr/testify/require"
)

// childEnv makes the test binary act as the child process.
const childEnv = "KVSTRESS_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(ChildMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	if kvnodeBuild.dir != "" {
		os.RemoveAll(kvnodeBuild.dir)
	}
	os.Exit(code)
}

func childCommand(args []string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	return cmd
}

// TestCrashCycles kills a writing child a few times per engine and checks
// nothing acknowledged is lost.
func TestCrashCycles(t *testing.T) {
	for _, engine := range []string{"lsm", "bitcask"} {
		t.Run(engine, func(t *testing.T) {
			var log bytes.Buffer
			sc, err := Run(context.Background(), Config{
				Engine: engine, Dir: t.TempDir(), Cycles: 3, CycleDuration: 700 * time.Millisecond,
				Keys: 500, ChildCommand: childCommand, Log: &log,
			})
			t.Log(log.String())
			require.NoError(t, err)
			t.Log(sc)
			require.Equal(t, 3, sc.Cycles)
			require.Positive(t, sc.Acked)
			require.Zero(t, sc.Lost)
			require.Zero(t, sc.Corrupt)
			require.Equal(t, sc.Acked, sc.Verified)
			require.Len(t, sc.Recovery, 3)
		})
	}
}

// TestVerify checks the per-key verdicts, including the ones a correct
// engine never produces.
func TestVerify(t *testing.T) {
	k := keyName(7)
	a := newAcks()
	a.add(7, 1)
	a.add(7, 2)
	cases := []struct {
		name                   string
		val                    []byte
		found                  bool
		lost, corrupt, verfied int64
	}{
		{"last acked", value(k, version{2, 2}), true, 0, 0, 2},
		{"in flight", value(k, version{2, 3}), true, 0, 0, 2},
		{"missing", nil, false, 2, 0, 0},
		{"older in cycle", value(k, version{2, 1}), true, 1, 0, 1},
		{"older cycle", value(k, version{1, 9}), true, 2, 0, 0},
		{"never written", value(k, version{2, 4}), true, 0, 1, 0},
		{"torn", value(k, version{2, 2})[:40], true, 0, 1, 0},
		{"other key", value(keyName(8), version{2, 2}), true, 0, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := &Scorecard{}
			ch := &checker{baseline: map[int]version{7: {1, 5}}, sc: sc}
			p := ch.verify(2, a, 7, c.val, c.found)
			require.Equal(t, c.lost, sc.Lost)
			require.Equal(t, c.corrupt, sc.Corrupt)
			require.Equal(t, c.verfied, sc.Verified)
			require.Equal(t, int64(2), sc.Acked)
			require.Equal(t, c.lost+c.corrupt == 0, p == "", p)
		})
	}
	// Nothing acknowledged this cycle: the baseline must hold.
	sc := &Scorecard{}
	ch := &checker{baseline: map[int]version{3: {1, 5}}, sc: sc}
	require.Empty(t, ch.verify(2, newAcks(), 3, value(keyName(3), version{1, 5}), true))
	require.Empty(t, ch.verify(2, newAcks(), 3, value(keyName(3), version{2, 1}), true))
	require.NotEmpty(t, ch.verify(3, newAcks(), 3, nil, false))
	require.Equal(t, int64(1), sc.Lost)
}

// Under a power cut with everysec, a lost acknowledged write is allowed
// (Dropped) only if it was acknowledged within the window before the cut;
// an older one is Lost, as is anything lost without a window.
func TestVerifyEverysecWindow(t *testing.T) {
	cut := time.Now()
	k := keyName(7)
	a := newAcks()
	a.addAt(7, 1, cut.Add(-3*time.Second))
	a.addAt(7, 2, cut.Add(-500*time.Millisecond))
	a.addAt(7, 3, cut.Add(-100*time.Millisecond))
	cases := []struct {
		name                  string
		val                   []byte
		found                 bool
		window                time.Duration
		lost, dropped, verify int64
	}{
		{"last two lost, both recent", value(k, version{2, 1}), true, time.Second, 0, 2, 1},
		{"last two lost, no window", value(k, version{2, 1}), true, 0, 2, 0, 1},
		{"all lost, one old", value(k, version{1, 5}), true, time.Second, 1, 2, 0},
		{"all lost, wide window", value(k, version{1, 5}), true, 4 * time.Second, 0, 3, 0},
		{"older than the baseline", value(k, version{1, 4}), true, 4 * time.Second, 3, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := &Scorecard{}
			ch := &checker{baseline: map[int]version{7: {1, 5}}, sc: sc, cut: cut, window: c.window}
			p := ch.verify(2, a, 7, c.val, c.found)
			require.Equal(t, c.lost, sc.Lost, p)
			require.Equal(t, c.dropped, sc.Dropped, p)
			require.Equal(t, c.verify, sc.Verified, p)
			require.Equal(t, c.lost == 0, p == "", p)
			if c.dropped > 0 {
				require.LessOrEqual(t, sc.MaxDroppedAge, c.window)
				require.GreaterOrEqual(t, sc.MaxDroppedAge, 100*time.Millisecond)
			}
		})
	}
	// A key first written this cycle and missing: its writes are dropped
	// if all recent.
	sc := &Scorecard{}
	ch := &checker{baseline: map[int]version{}, sc: sc, cut: cut, window: time.Second}
	b := newAcks()
	b.addAt(9, 1, cut.Add(-200*time.Millisecond))
	require.Empty(t, ch.verify(2, b, 9, nil, false))
	require.Equal(t, int64(1), sc.Dropped)
	require.Zero(t, sc.Lost)
}

func TestScorecard(t *testing.T) {
	sc := &Scorecard{Cycles: 2, Acked: 10, Verified: 10}
	for i := 1; i <= 100; i++ {
		sc.Recovery = append(sc.Recovery, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 99*time.Millisecond, sc.RecoveryP99())
	require.Equal(t, "cycles=2 acked=10 verified=10 lost=0 corrupt=0 recovery_p99=99ms", sc.String())
	require.True(t, sc.OK())
}

// TestNodeCrashCycles kills a kvnode (built from ./cmd/kvnode) under Redis
// writes and checks nothing acknowledged is lost: standalone (memory too:
// durability does not depend on certificates), and as a replication leader,
// where as standalone the commit log is the only log of its lsm (with
// appendfsync always and everysec: both must survive SIGKILL), of bitcask,
// and of memory (restored from checkpoints and the log). Skipped with
// -short: it builds kvnode.
func TestNodeCrashCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvnode")
	}
	bin := buildKVNode(t)
	cases := []struct {
		name, engine, appendFsync string
		replicated                bool
	}{
		{"standalone/lsm", "lsm", "", false},
		{"standalone/memory", "memory", "", false},
		{"standalone/bitcask/everysec", "bitcask", "everysec", false},
		{"replicated/lsm/always", "lsm", "always", true},
		{"replicated/lsm/everysec", "lsm", "everysec", true},
		{"replicated/bitcask/everysec", "bitcask", "everysec", true},
		{"replicated/memory", "memory", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			dir := t.TempDir()
			sc, err := Run(context.Background(), Config{
				Engine: c.engine, Dir: dir, Cycles: 2, CycleDuration: 700 * time.Millisecond,
				Keys: 500, Node: true, KVNode: bin, Replicated: c.replicated, AppendFsync: c.appendFsync, Log: &log,
			})
			t.Log(log.String())
			require.NoError(t, err)
			t.Log(sc)
			require.Equal(t, 2, sc.Cycles)
			require.Positive(t, sc.Acked)
			require.True(t, sc.OK())
			require.Equal(t, sc.Acked, sc.Verified)
			// Every mode writes through the commit log, with no lsm WAL
			// beside it.
			_, err = os.Stat(filepath.Join(dir, "data", "log"))
			require.NoError(t, err, "commit log dir")
			if c.engine == "lsm" {
				wals, err := filepath.Glob(filepath.Join(dir, "data", "engine", "*.log"))
				require.NoError(t, err)
				require.Empty(t, wals, "lsm WAL files")
			}
		})
	}
}

// TestNodePowerCut runs kvstress -node -powercut: kvnode's data directory
// through the powercut file system, whose power is cut at each kill. With
// appendfsync always nothing acknowledged may be lost, standalone or
// replicated; with everysec only what the window allows. Skipped where FUSE
// cannot be mounted (the reason is logged) and with -short.
func TestNodePowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvnode")
	}
	if err := powercut.Available(); err != nil {
		t.Skip(err)
	}
	bin := buildKVNode(t)
	cases := []struct {
		name, engine, appendFsync string
		replicated                bool
	}{
		{"standalone/lsm", "lsm", "always", false},
		{"standalone/memory", "memory", "always", false},
		{"replicated/bitcask/everysec", "bitcask", "everysec", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			sc, err := Run(context.Background(), Config{
				Engine: c.engine, Dir: t.TempDir(), Cycles: 2, CycleDuration: 700 * time.Millisecond,
				Keys: 500, Node: true, KVNode: bin, Replicated: c.replicated, AppendFsync: c.appendFsync,
				PowerCut: true, Log: &log,
			})
			t.Log(log.String())
			require.NoError(t, err)
			t.Log(sc)
			require.Equal(t, 2, sc.Cycles)
			require.Positive(t, sc.Acked)
			require.True(t, sc.OK())
			require.Equal(t, sc.Acked, sc.Verified+sc.Dropped)
			require.Contains(t, sc.String(), " powercut dropped=")
			if c.appendFsync == "always" {
				require.Zero(t, sc.Dropped)
			}
		})
	}
}

// TestValidate checks that Run refuses what it cannot check, before
// starting anything.
func TestValidate(t *testing.T) {
	bad := []struct {
		name string
		cfg  Config
		want string
	}{
		{"replicated without node", Config{Engine: "lsm", Replicated: true}, "need -node"},
		{"appendfsync without node", Config{Engine: "lsm", AppendFsync: "always"}, "need -node"},
		{"memory child", Config{Engine: "memory"}, "keeps nothing"},
		{"unknown engine child", Config{Engine: "btree"}, `unknown engine "btree" (registered: [bitcask lsm memory])`},
		{"unknown appendfsync", Config{Engine: "lsm", Node: true, Replicated: true, AppendFsync: "no"}, "want always or everysec"},
		{"unknown engine", Config{Engine: "btree", Node: true}, `unknown engine "btree"`},
		{"powercut without node", Config{Engine: "lsm", PowerCut: true}, "-powercut needs -node"},
		{"powercut with multi", Config{Engine: "lsm", Node: true, Multi: true, PowerCut: true}, "-powercut needs -node"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			require.ErrorContains(t, err, c.want)
			_, err = Run(context.Background(), c.cfg)
			require.ErrorContains(t, err, c.want)
		})
	}
	for _, cfg := range []Config{
		{Engine: "bitcask"},
		{Engine: "lsm", Node: true},
		{Engine: "lsm", Node: true, AppendFsync: "always"},
		{Engine: "lsm", Node: true, Replicated: true, AppendFsync: "everysec"},
		{Engine: "memory", Node: true, Replicated: true},
		{Engine: "memory", Node: true},
		{Engine: "lsm", Node: true, AppendFsync: "everysec"},
	} {
		require.NoError(t, cfg.Validate(), "%+v", cfg)
	}
}
