package history

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// The expiry cases give every time in milliseconds on the run's timeline,
// with the client's wall clock equal to it (Wall == Call), so a deadline
// D ms is D ms into the run.

func msOp(o Op, call, ret int64) Op {
	o.Call, o.Return = call*int64(time.Millisecond), ret*int64(time.Millisecond)
	o.Wall = o.Call
	if o.Outcome == 0 && o.Err == "" {
		o.Outcome = OK
	}
	return o
}

func setAt(c int, k, v string, deadline, call, ret int64, out Outcome) Op {
	return msOp(Op{Client: c, Kind: Set, Key: k, Value: v, Deadline: deadline, Outcome: out}, call, ret)
}

func getMs(c int, k, v string, call, ret int64) Op {
	return msOp(Op{Client: c, Kind: Get, Key: k, Value: v}, call, ret)
}

func expireAt(c int, k string, deadline, reply, call, ret int64) Op {
	return msOp(Op{Client: c, Kind: ExpireAt, Key: k, Deadline: deadline, N: reply}, call, ret)
}

func persist(c int, k string, reply, call, ret int64) Op {
	return msOp(Op{Client: c, Kind: Persist, Key: k, N: reply}, call, ret)
}

func pttl(c int, k string, reply, call, ret int64) Op {
	return msOp(Op{Client: c, Kind: TTL, Key: k, N: reply}, call, ret)
}

func TestCheckExpiry(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    []Op
		want porcupine.CheckResult
	}{
		{"present before its deadline", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			getMs(1, "a", "x", 50, 51),
		}, porcupine.Ok},
		{"absent after its deadline", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			getMs(1, "a", "", 150, 151),
		}, porcupine.Ok},
		{"present after its deadline is illegal", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			getMs(1, "a", "x", 150, 151),
		}, porcupine.Illegal},
		{"absent before its deadline is illegal", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			getMs(1, "a", "", 50, 51),
		}, porcupine.Illegal},
		{"a read spanning the deadline may see either", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			getMs(1, "a", "x", 90, 110),
			getMs(2, "a", "", 90, 110),
		}, porcupine.Ok},
		{"a read within skew of the deadline may see either", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			getMs(1, "a", "", 99, 99),
			setAt(0, "b", "x", 100, 0, 1, OK),
			getMs(2, "b", "x", 101, 101),
		}, porcupine.Ok},
		{"an expired key does not come back", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			getMs(1, "a", "", 90, 120),
			getMs(1, "a", "x", 121, 122),
		}, porcupine.Illegal},
		{"a plain SET clears the deadline", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			setAt(0, "a", "y", 0, 2, 3, OK),
			getMs(1, "a", "y", 150, 151),
		}, porcupine.Ok},
		{"reads ordered after an expiry take effect after the deadline", []Op{
			// The empty read must follow x's deadline and precede y (after
			// y it would read y); the read of y follows y, so it too must
			// take effect after x's deadline: by 95 it cannot.
			setAt(0, "a", "x", 100, 0, 1, OK),
			setAt(1, "a", "y", 300, 50, 150, OK),
			getMs(2, "a", "", 90, 200),
			getMs(3, "a", "y", 60, 95),
		}, porcupine.Illegal},
		{"the same with room after the deadline", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			setAt(1, "a", "y", 300, 50, 150, OK),
			getMs(2, "a", "", 90, 200),
			getMs(3, "a", "y", 60, 110),
		}, porcupine.Ok},
		{"pexpireat on a live key", []Op{
			setAt(0, "a", "x", 0, 0, 1, OK),
			expireAt(0, "a", 100, 1, 2, 3),
			getMs(1, "a", "", 150, 151),
		}, porcupine.Ok},
		{"pexpireat deadline ignored", []Op{
			setAt(0, "a", "x", 0, 0, 1, OK),
			expireAt(0, "a", 100, 1, 2, 3),
			getMs(1, "a", "x", 150, 151),
		}, porcupine.Illegal},
		{"pexpireat on an absent key answers 0", []Op{
			expireAt(0, "a", 100, 0, 0, 1),
			getMs(1, "a", "", 2, 3),
		}, porcupine.Ok},
		{"pexpireat answering 1 on an absent key is illegal", []Op{
			expireAt(0, "a", 100, 1, 0, 1),
		}, porcupine.Illegal},
		{"pexpireat answering 1 on an expired key is illegal", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			expireAt(0, "a", 300, 1, 150, 151),
		}, porcupine.Illegal},
		{"persist keeps the key", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			persist(0, "a", 1, 2, 3),
			getMs(1, "a", "x", 150, 151),
			persist(1, "a", 0, 152, 153),
		}, porcupine.Ok},
		{"persist answering 1 after expiry is illegal", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			persist(0, "a", 1, 150, 151),
		}, porcupine.Illegal},
		{"pttl matches the server's moment", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			pttl(1, "a", 60, 30, 45), // the node's clock read 40
			pttl(1, "a", -2, 150, 151),
		}, porcupine.Ok},
		{"pttl from before the call is illegal", []Op{
			setAt(0, "a", "x", 100, 0, 1, OK),
			pttl(1, "a", 60, 50, 55), // the node's clock would read 40
		}, porcupine.Illegal},
		{"pttl without a deadline", []Op{
			setAt(0, "a", "x", 0, 0, 1, OK),
			pttl(1, "a", -1, 2, 3),
		}, porcupine.Ok},
		{"pttl of a live key answering absent is illegal", []Op{
			setAt(0, "a", "x", 0, 0, 1, OK),
			pttl(1, "a", -2, 2, 3),
		}, porcupine.Illegal},
		{"an unknown write with a deadline may apply late", []Op{
			setAt(0, "a", "x", 100, 0, 1, Unknown),
			getMs(1, "a", "", 50, 51),
			getMs(1, "a", "x", 60, 61),
			getMs(1, "a", "", 150, 151),
		}, porcupine.Ok},
		{"an unknown pexpireat may not have applied", []Op{
			setAt(0, "a", "x", 0, 0, 1, OK),
			msOp(Op{Client: 0, Kind: ExpireAt, Key: "a", Deadline: 100, Outcome: Unknown}, 2, 3),
			getMs(1, "a", "x", 150, 151),
		}, porcupine.Ok},
		{"the wall clock places the deadline", []Op{
			// Wall 1000 ms ahead of the timeline at the call: deadline 1100
			// is 100 ms into the run.
			{Client: 0, Kind: Set, Key: "a", Value: "x", Deadline: 1100, Outcome: OK,
				Call: 0, Return: int64(time.Millisecond), Wall: int64(time.Second)},
			getMs(1, "a", "", 150, 151),
		}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Check(tc.h, 0, t.TempDir())
			require.NoError(t, err)
			require.Equal(t, tc.want, v.Result)
		})
	}
}
