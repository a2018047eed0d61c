package stress

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var kvnodeBuild struct {
	once     sync.Once
	dir, bin string
	err      error
}

// buildKVNode builds ./cmd/kvnode once per test binary (the build is most
// of these tests' time); TestMain removes it.
func buildKVNode(t *testing.T) string {
	t.Helper()
	b := &kvnodeBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "kvstress-test-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "kvnode")
		out, err := exec.Command("go", "build", "-o", b.bin, "github.com/logkv/logkv/cmd/kvnode").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build kvnode: %w: %s", err, out)
		}
	})
	require.NoError(t, b.err)
	return b.bin
}

// TestNodeMultiCrashCycles kills a kvnode during MULTI/EXEC transactions and
// SET PX / PERSIST, and checks every transaction all or nothing, every
// acknowledged one present, and deadlines kept: standalone and replicated
// (CI runs kvstress -multi on every engine both ways).
// Skipped with -short: it builds kvnode.
func TestNodeMultiCrashCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvnode")
	}
	bin := buildKVNode(t)
	for _, c := range []struct {
		name, engine string
		replicated   bool
	}{
		{"standalone/bitcask", "bitcask", false},
		{"replicated/lsm", "lsm", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			sc, err := Run(context.Background(), Config{
				Engine: c.engine, Dir: t.TempDir(), Cycles: 2, CycleDuration: 600 * time.Millisecond,
				Node: true, KVNode: bin, Replicated: c.replicated, Multi: true, TxKeys: 6, Log: &log,
			})
			t.Log(log.String())
			require.NoError(t, err)
			require.Equal(t, 2, sc.Cycles)
			require.Positive(t, sc.Acked)
			require.True(t, sc.OK(), "%s", sc)
			require.Equal(t, sc.Acked, sc.Verified)
		})
	}
}

// TestMultiCheckerFindsTornAndLostTTL writes by hand what a broken node
// would leave behind (7 of a transaction's 8 keys; an acknowledged one
// missing, so txlast holds an older one's value; txlast with another
// deadline; a key whose PX was dropped) and checks that the multi checker
// reports each.
func TestMultiCheckerFindsTornAndLostTTL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kvnode")
	}
	ctx := context.Background()
	cfg := Config{Engine: "memory", Dir: t.TempDir(), Node: true, KVNode: buildKVNode(t), Multi: true, TxKeys: 8, Writers: 1, AppendFsync: "always"}
	n, err := startNodeRunner(ctx, cfg)
	require.NoError(t, err)
	defer n.stop()
	n.curCycle = 1
	good := &tx{cycle: 1, writer: 0, seq: 1, state: txPresent}
	torn := &tx{cycle: 1, writer: 0, seq: 2, state: txDoubt}
	for j := range 8 {
		k := txKey(good.token(), j)
		require.NoError(t, n.client.Set(ctx, k, txValue(good.token(), k), 0).Err())
		if j < 7 {
			k = txKey(torn.token(), j)
			require.NoError(t, n.client.Set(ctx, k, txValue(torn.token(), k), 0).Err())
		}
	}
	good.sent = time.Now().UnixMilli()
	good.acked = good.sent
	require.NoError(t, n.client.Set(ctx, txLastKey(0), txValue(good.token(), txLastKey(0)), time.Duration(good.lastPX()-1000)*time.Millisecond).Err())
	lost := &tx{cycle: 1, writer: 0, seq: 3, state: txPresent} // acknowledged, never written
	sc := &Scorecard{}
	st := &multiState{txs: []*tx{good, torn, lost}}
	problems, err := n.checkTxs(ctx, st, sc, good.acked)
	require.NoError(t, err)
	all := strings.Join(problems, "\n")
	require.Contains(t, all, "c1.w0.t2: 7 of its 8 keys present (torn EXEC)")
	require.Contains(t, all, "c1.w0.t3: acknowledged (or seen after an earlier crash) but absent")
	require.Contains(t, all, "txlast:0: \"c1.w0.t1|txlast:0#0#0#") // not t3's value
	require.Contains(t, all, "DBSIZE 16, but 17 keys exist")
	require.EqualValues(t, 1, sc.Lost)
	require.EqualValues(t, 1, sc.Verified)

	// With only the good transaction, txlast's value is right but its
	// deadline is a second short.
	sc = &Scorecard{}
	problems, err = n.checkTxs(ctx, &multiState{txs: []*tx{good}}, sc, good.acked)
	require.NoError(t, err)
	require.Len(t, problems, 2, "%q", problems)
	require.Contains(t, problems[0], "txlast:0: PEXPIRETIME")
	require.Contains(t, problems[1], "DBSIZE 16, but 9 keys exist")

	now := time.Now().UnixMilli()
	op := &ttlOp{key: "ttl:1:0", kind: ttlFar, px: 3_600_000, sent: now, acked: now + 1, cycle: 1}
	require.NoError(t, n.db1.Set(ctx, op.key, txValue("ttl", op.key), 0).Err()) // PX dropped
	st.ttl = []*ttlOp{op}
	problems, err = n.checkTTLs(ctx, st, sc, now+2)
	require.NoError(t, err)
	require.Equal(t, []string{"ttl:1:0 (PX 3600000, sent " + itoa(now) + ", acked " + itoa(now+1) + ", persisted false): TTL lost: PEXPIRETIME -1"}, problems)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestValidateMulti checks -multi's own refusals.
func TestValidateMulti(t *testing.T) {
	require.ErrorContains(t, (&Config{Engine: "lsm", Multi: true}).Validate(), "need -node")
	require.ErrorContains(t, (&Config{Engine: "lsm", Node: true, Multi: true, TxKeys: 65}).Validate(), "want 1 to 64")
	require.NoError(t, (&Config{Engine: "memory", Node: true, Multi: true, TxKeys: 64}).Validate())
}
