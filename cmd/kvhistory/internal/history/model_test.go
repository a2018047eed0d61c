package history

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

func set(c int, k, v string, call, ret int64, out Outcome) Op {
	return Op{Client: c, Kind: Set, Key: k, Value: v, Call: call, Return: ret, Outcome: out}
}

func get(c int, k, v string, call, ret int64) Op {
	return Op{Client: c, Kind: Get, Key: k, Value: v, Call: call, Return: ret, Outcome: OK}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    []Op
		want porcupine.CheckResult
	}{
		{"empty read then write", []Op{
			get(0, "a", "", 0, 1),
			set(1, "a", "x", 2, 3, OK),
			get(0, "a", "x", 4, 5),
		}, porcupine.Ok},
		{"concurrent read may see either", []Op{
			set(0, "a", "x", 0, 1, OK),
			set(1, "a", "y", 2, 10, OK),
			get(2, "a", "x", 3, 4),
			get(2, "a", "y", 5, 6),
		}, porcupine.Ok},
		{"stale read after acked write", []Op{
			set(0, "a", "x", 0, 1, OK),
			set(0, "a", "y", 2, 3, OK),
			get(1, "a", "x", 4, 5),
		}, porcupine.Illegal},
		{"read goes back in time", []Op{
			set(0, "a", "x", 0, 1, OK),
			set(1, "a", "y", 2, 10, OK),
			get(2, "a", "y", 3, 4),
			get(2, "a", "x", 5, 6),
		}, porcupine.Illegal},
		{"keys are independent", []Op{
			set(0, "a", "x", 0, 1, OK),
			set(1, "b", "y", 2, 3, OK),
			get(2, "b", "y", 4, 5),
			get(2, "a", "x", 4, 5),
		}, porcupine.Ok},
		{"other key's value is not this key's", []Op{
			set(0, "a", "x", 0, 1, OK),
			get(2, "b", "x", 4, 5),
		}, porcupine.Illegal},
		{"unknown write may apply much later", []Op{
			set(0, "a", "x", 0, 1, Unknown),
			set(1, "a", "y", 5, 6, OK),
			get(2, "a", "y", 7, 8),
			get(2, "a", "x", 100, 101),
		}, porcupine.Ok},
		{"unknown write may never apply", []Op{
			set(0, "a", "x", 0, 1, Unknown),
			get(2, "a", "", 100, 101),
		}, porcupine.Ok},
		{"failed write is dropped", []Op{
			set(0, "a", "x", 0, 1, OK),
			set(1, "a", "y", 2, 3, Failed),
			get(2, "a", "x", 4, 5),
		}, porcupine.Ok},
		{"failed write that was visible is illegal", []Op{
			set(0, "a", "x", 0, 1, OK),
			set(1, "a", "y", 2, 3, Failed),
			get(2, "a", "y", 4, 5),
		}, porcupine.Illegal},
		{"lost acked write after failover", []Op{
			set(0, "a", "x", 0, 1, OK),
			set(0, "a", "y", 2, 3, OK),
			set(1, "a", "z", 10, 11, Unknown), // in flight at the failover
			get(2, "a", "x", 20, 21),          // new leader lacks y
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			v, err := Check(tc.h, 0, dir)
			require.NoError(t, err)
			require.Equal(t, tc.want, v.Result)
			if tc.want == porcupine.Ok {
				require.Empty(t, v.HTML)
				require.Empty(t, v.IllegalKeys)
				return
			}
			require.NotEmpty(t, v.IllegalKeys)
			require.Equal(t, dir, filepath.Dir(v.HTML))
			b, err := os.ReadFile(v.HTML)
			require.NoError(t, err)
			require.Contains(t, string(b), "<html")
		})
	}
}

func TestOperationsDropsAndExtends(t *testing.T) {
	h := []Op{
		set(0, "a", "x", 0, 1, OK),
		set(0, "a", "y", 2, 3, Failed),
		set(0, "a", "z", 4, 5, Unknown),
		{Client: 1, Kind: Get, Key: "a", Call: 6, Return: 7, Outcome: Unknown},
		{Client: 1, Kind: Get, Key: "a", Call: 8, Return: 9, Outcome: Failed},
		get(1, "a", "z", 10, 11),
	}
	ops := Operations(h)
	require.Len(t, ops, 3)
	require.Equal(t, int64(1), ops[0].Return)
	require.Equal(t, int64(1<<63-1), ops[1].Return, "unknown write: infinite return")
	require.Equal(t, int64(11), ops[2].Return)
}

func TestPartitionPerKey(t *testing.T) {
	ops := Operations([]Op{
		set(0, "b", "1", 0, 1, OK), set(0, "a", "2", 2, 3, OK), get(0, "b", "1", 4, 5),
	})
	parts := Model.Partition(ops)
	require.Len(t, parts, 2)
	require.Len(t, parts[0], 1) // a
	require.Len(t, parts[1], 2) // b
	for _, p := range parts {
		k := p[0].Input.(input).key
		for _, o := range p {
			require.Equal(t, k, o.Input.(input).key)
		}
	}
}

func TestLossAt(t *testing.T) {
	h := []Op{
		set(0, "a", "a1", 0, 1, OK),
		set(0, "a", "a2", 2, 3, OK),
		set(0, "a", "a3", 4, 5, OK),
		set(1, "b", "b1", 0, 1, OK),
		set(1, "b", "b2", 2, 3, OK),
		set(2, "c", "c1", 0, 1, OK),
		set(2, "c", "c2", 2, 100, OK), // acked after the cut: not counted
		set(3, "d", "d1", 0, 1, OK),
	}
	state := map[string]string{"a": "a1", "b": "b2", "c": "c1"} // d absent
	// a: a2 and a3 lost; b: none; c: c2 acked after the cut; d: d1 lost.
	lost, window := LossAt(h, 50, state)
	require.Equal(t, 3, lost)
	require.Equal(t, time.Duration(49), window, "the oldest lost ack (d1) returned at 1")
	lost, window = LossAt(h, 50, map[string]string{"a": "a3", "b": "b2", "c": "c1", "d": "d1"})
	require.Equal(t, 0, lost)
	require.Zero(t, window)

	// A key given a deadline may be absent because it expired: not a loss;
	// an older value is still one.
	h = []Op{
		{Kind: Set, Key: "e", Value: "e1", Deadline: 1, Return: 1, Outcome: OK},
		{Kind: Set, Key: "f", Value: "f1", Return: 1, Outcome: OK},
		{Kind: ExpireAt, Key: "f", Deadline: 1, Call: 2, Return: 3, Outcome: OK, N: 1},
		{Kind: Set, Key: "g", Value: "g1", Deadline: 1, Return: 1, Outcome: OK},
		{Kind: Set, Key: "g", Value: "g2", Call: 2, Return: 3, Outcome: OK},
	}
	lost, _ = LossAt(h, 50, map[string]string{"g": "g1"})
	require.Equal(t, 1, lost, "g2 lost; e and f may have expired")
}

func TestClassify(t *testing.T) {
	require.Equal(t, OK, classify(nil))
	require.Equal(t, Failed, classify(errors.New("READONLY You can't write against a read only replica.")))
	require.Equal(t, Failed, classify(&net.OpError{Op: "dial", Err: errors.New("connection refused")}))
	require.Equal(t, Unknown, classify(&net.OpError{Op: "read", Err: errors.New("connection reset")}))
	require.Equal(t, Unknown, classify(context.DeadlineExceeded))
	require.Equal(t, Unknown, classify(errors.New("ERR replication: quorum not reached")))
}

func TestOperationsSettlesTryAgain(t *testing.T) {
	tryAgain := set(0, "a", "x", 0, 1, Unknown)
	tryAgain.Err = "TRYAGAIN this node leads but could not renew its leadership lease in etcd in time"
	timeout := set(0, "a", "y", 2, 3, Unknown)
	timeout.Err = "read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout"
	ops := Operations([]Op{tryAgain, timeout})
	require.Equal(t, int64(1), ops[0].Return, "TRYAGAIN: any effect was before the reply")
	require.Equal(t, int64(1<<63-1), ops[1].Return, "a timeout may apply later")
	require.True(t, ops[0].Output.(output).unknown, "either way the write may or may not have applied")

	// A TRYAGAIN write seen long after it returned is illegal once it was
	// overwritten; an open-ended unknown write is not.
	h := []Op{tryAgain, set(1, "a", "z", 5, 6, OK), get(2, "a", "x", 10, 11)}
	v, err := Check(h, 0, "")
	require.NoError(t, err)
	require.Equal(t, porcupine.Illegal, v.Result)
	h[0].Err = "EOF"
	v, err = Check(h, 0, "")
	require.NoError(t, err)
	require.Equal(t, porcupine.Ok, v.Result)

	// A TRYAGAIN write may also have had no effect at all (refused before
	// it reached the log): reading the value before it, after it returned,
	// is linearizable. The model made every settled write apply, so a
	// fenced leader's refusals made kvhistory's automatic-failover runs
	// fail on histories that were fine.
	h = []Op{set(1, "a", "w", 0, 1, OK), tryAgain, get(2, "a", "w", 10, 11)}
	h[1].Call, h[1].Return = 2, 3
	v, err = Check(h, 0, "")
	require.NoError(t, err)
	require.Equal(t, porcupine.Ok, v.Result, "a refused write need not have applied")
}

func TestStaleReads(t *testing.T) {
	h := []Op{
		set(0, "a", "x", 0, 1, OK),
		set(0, "a", "y", 2, 3, OK),
		get(1, "a", "x", 4, 5),            // stale: y was acked before
		get(1, "a", "y", 4, 5),            // fresh
		set(2, "a", "z", 6, 20, OK),       // concurrent with the next read
		get(1, "a", "y", 7, 8),            // not stale: z may come later
		set(0, "b", "p", 0, 1, OK),        //
		set(0, "b", "q", 0, 3, OK),        // concurrent with p
		get(1, "b", "p", 4, 5),            // not stale: p may follow q
		set(3, "c", "u", 0, 1, Unknown),   //
		set(3, "c", "v", 2, 3, OK),        //
		get(1, "c", "u", 4, 5),            // an unknown write's value: porcupine's business
		get(1, "a", "", 30, 31),           // absent: not counted
		set(0, "d", "s", 0, 1, OK),        //
		set(0, "d", "t", 2, 3, Failed),    // a failed write overwrites nothing
		get(1, "d", "s", 4, 5),            //
		get(1, "a", "x", 50, 51),          // stale again
		{Kind: Get, Key: "a", Value: "x"}, // not OK: a failed read
	}
	h[len(h)-1].Outcome = Failed
	require.Equal(t, 2, StaleReads(h))
}
