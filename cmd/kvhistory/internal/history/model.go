package history

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is an operation's kind.
type Kind uint8

const (
	// Get reads a key (GET).
	Get Kind = iota
	// Set writes a unique value to a key (SET key value, or SET key value
	// PXAT Deadline when Op.Deadline is set). A SET without PXAT clears the
	// key's deadline, as in Redis.
	Set
	// ExpireAt gives an existing key the deadline Op.Deadline (PEXPIREAT);
	// Op.N is its reply: 1 if the key existed, 0 if not.
	ExpireAt
	// Persist removes a key's deadline (PERSIST); Op.N is its reply: 1 if
	// the key had one, 0 if not (or absent).
	Persist
	// TTL reads a key's remaining time to live (PTTL); Op.N is its reply:
	// -2 absent, -1 no deadline, else milliseconds left.
	TTL
)

// writes reports whether k changes the key (so an unknown outcome may still
// have applied).
func (k Kind) writes() bool { return k == Set || k == ExpireAt || k == Persist }

// Outcome is what a client learned about an operation.
type Outcome uint8

const (
	// OK means the operation completed and its result is known.
	OK Outcome = iota
	// Failed means the operation definitely had no effect (READONLY,
	// connection refused, or any failed read).
	Failed
	// Unknown means a write may or may not have been applied (timeout,
	// connection lost mid-request, quorum timeout).
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	default:
		return "unknown"
	}
}

// Op is one recorded operation. Call and Return are nanoseconds since the
// start of the run, from a monotonic clock.
type Op struct {
	Client  int
	Kind    Kind
	Key     string
	Value   string // written by a Set; read by a Get ("" means the key was absent)
	Outcome Outcome
	Call    int64
	Return  int64
	Err     string // the error text when Outcome is not OK
	// Deadline is the absolute deadline a Set (PXAT) or ExpireAt
	// (PEXPIREAT) sent, in Unix milliseconds; 0 for a Set without one.
	Deadline int64
	// Wall is the client's wall clock at Call, in Unix nanoseconds: it
	// places Deadline, a wall-clock time, on the monotonic Call/Return
	// timeline (at the op's own instant, so that the two clocks' drift over
	// a long run does not count).
	Wall int64
	// N is the integer reply of ExpireAt, Persist and TTL.
	N int64
	// Node names the node the client sent the operation to, for reading a
	// failed check (which node served a stale read, which acknowledged a
	// lost write).
	Node string
}

func (o Op) String() string {
	switch o.Kind {
	case Get:
		return fmt.Sprintf("get(%s) -> %q [%s]", o.Key, o.Value, o.Outcome)
	case Set:
		if o.Deadline != 0 {
			return fmt.Sprintf("set(%s, %q, pxat %d) [%s]", o.Key, o.Value, o.Deadline, o.Outcome)
		}
		return fmt.Sprintf("set(%s, %q) [%s]", o.Key, o.Value, o.Outcome)
	case ExpireAt:
		return fmt.Sprintf("pexpireat(%s, %d) -> %d [%s]", o.Key, o.Deadline, o.N, o.Outcome)
	case Persist:
		return fmt.Sprintf("persist(%s) -> %d [%s]", o.Key, o.N, o.Outcome)
	default:
		return fmt.Sprintf("pttl(%s) -> %d [%s]", o.Key, o.N, o.Outcome)
	}
}

// onTimeline converts a wall-clock time in Unix milliseconds to o's
// timeline (nanoseconds since the start of the run).
func (o Op) onTimeline(unixMs int64) int64 {
	return unixMs*int64(time.Millisecond) - o.Wall + o.Call
}

// Skew bounds how far the server's clock may be from the client's when the
// model decides whether a read took effect before or after a deadline: a
// read within Skew of a deadline may see the key either way. kvhistory's
// nodes run on the clients' machine, so they share one clock, and Skew only
// covers reading it at different instants and converting a wall-clock
// deadline to the monotonic timeline of Call and Return.
const Skew = 2 * time.Millisecond

// input is a porcupine operation input; output is its output. Times are
// on the run's timeline (ns); ret is MaxInt64 for an unknown outcome.
type input struct {
	kind      Kind
	key       string
	value     string
	deadline  int64 // Set, ExpireAt: the deadline on the timeline; 0 none
	call, ret int64
	timed     bool // some operation on the key has a deadline
}

type output struct {
	value   string
	n       int64
	unknown bool
}

// state is one key's state: absent when value is "", else the value and
// its deadline (0: none). earliest is the earliest moment the next
// operation on the key can take effect: the moment the previous one did.
// The model picks for each operation the earliest moment in its interval
// that explains its result, which leaves the most room for the operations
// after it: a key's value and deadline do not depend on when a write took
// effect (deadlines are absolute), only on the order of the writes.
type state struct {
	value    string
	deadline int64
	earliest int64
}

// skew is Skew in the timeline's unit.
const skew = int64(Skew)

// step is the model's transition: every state the key can be in after in
// took effect with out as its result, starting from s.
//
// An operation takes effect at one moment t within [call, ret], no earlier
// than s.earliest. A key with a deadline D is present for an operation at
// t < D and absent at t >= D (the node's rule: a key expires when its clock
// reaches the deadline), each side widened by skew. So there are up to
// two candidate moments: the earliest at which the key is present, and the
// earliest at which it has expired; each gives one successor if the result
// matches.
func step(s state, in input, out output) []state {
	var next []state
	if out.unknown && in.kind.writes() && in.ret != math.MaxInt64 {
		// A settled unknown write (TRYAGAIN, see settled) had its effect
		// before its return, or none: a fenced leader refuses most writes
		// before they reach its log. Open-ended unknown writes need no
		// such branch: placed after every other operation, they change
		// nothing that was observed.
		next = append(next, s)
	}
	lo, hi := max(s.earliest, in.call), in.ret
	if lo > hi {
		return next
	}
	try := func(t int64, present bool) {
		cur := s
		if !present {
			cur = state{}
		}
		ns, t, ok := apply(cur, in, out, t)
		if !ok {
			return
		}
		if ns.deadline != 0 && t >= ns.deadline+skew {
			ns = state{} // expired for every later operation
		}
		// On a key no operation gives a deadline, nothing depends on time:
		// leaving earliest at 0 checks it exactly as a register, with as
		// few distinct states.
		if in.timed {
			ns.earliest = t
		}
		next = append(next, ns)
	}
	switch {
	case s.value == "":
		try(lo, false)
	case s.deadline == 0:
		try(lo, true)
	default:
		if lo < s.deadline+skew {
			try(lo, true)
		}
		if t := max(lo, s.deadline-skew); t <= hi {
			try(t, false)
		}
	}
	return next
}

// apply runs in on s at moment t (s is the key as the operation sees it:
// present or absent) and reports the next state, the moment the operation
// took effect (t, or later if its result says so), and whether out is a
// result the operation could have given.
func apply(s state, in input, out output, t int64) (state, int64, bool) {
	switch in.kind {
	case Set:
		return state{value: in.value, deadline: in.deadline}, t, true
	case Get:
		return s, t, out.unknown || out.value == s.value
	case ExpireAt:
		if s.value == "" {
			return s, t, out.unknown || out.n == 0
		}
		return state{value: s.value, deadline: in.deadline}, t, out.unknown || out.n == 1
	case Persist:
		if s.value == "" || s.deadline == 0 {
			return s, t, out.unknown || out.n == 0
		}
		return state{value: s.value}, t, out.unknown || out.n == 1
	case TTL:
		switch {
		case out.unknown:
			return s, t, true
		case s.value == "":
			return s, t, out.n == -2
		case s.deadline == 0:
			return s, t, out.n == -1
		case out.n < 0:
			return s, t, false
		}
		// The node answers D - now in whole milliseconds, its clock now
		// being in [D - n ms, D - (n-1) ms), give or take skew: the
		// operation took effect in that window, at t or later and by its
		// return.
		from := s.deadline - out.n*int64(time.Millisecond) - skew
		to := s.deadline - (out.n-1)*int64(time.Millisecond) + skew
		at := max(t, from)
		return s, at, at < to && at <= in.ret
	}
	return s, t, false
}

// Model is the porcupine model: per key, a register with a deadline (see
// step), partitioned per key. It is nondeterministic because a read near a
// deadline may have taken effect on either side of it; porcupine follows
// every state the key may be in.
var Model = (&porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{state{}} },
	Step: func(s, in, out any) []any {
		next := step(s.(state), in.(input), out.(output))
		ss := make([]any, len(next))
		for i, n := range next {
			ss[i] = n
		}
		return ss
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		var d string
		switch i.kind {
		case Set:
			d = fmt.Sprintf("set(%s, %q)", i.key, i.value)
			if i.deadline != 0 {
				d = fmt.Sprintf("set(%s, %q, pxat %s)", i.key, i.value, time.Duration(i.deadline))
			}
		case Get:
			d = fmt.Sprintf("get(%s) -> %q", i.key, o.value)
		case ExpireAt:
			d = fmt.Sprintf("pexpireat(%s, %s) -> %d", i.key, time.Duration(i.deadline), o.n)
		case Persist:
			d = fmt.Sprintf("persist(%s) -> %d", i.key, o.n)
		case TTL:
			d = fmt.Sprintf("pttl(%s) -> %d", i.key, o.n)
		}
		if o.unknown {
			d += " ?"
		}
		return d
	},
	DescribeState: func(s any) string {
		st := s.(state)
		if st.value == "" {
			return "absent"
		}
		if st.deadline == 0 {
			return fmt.Sprintf("%q", st.value)
		}
		return fmt.Sprintf("%q until %s (from %s)", st.value, time.Duration(st.deadline), time.Duration(st.earliest))
	},
}).ToModel()

// settled reports whether an unknown write's effect, if it had one, lies
// before its return: a node answers TRYAGAIN (a leader whose lease is not
// known valid) either before the write reaches its log, or after the write
// was applied and, in sync mode, held by the quorum; nothing it refused
// with TRYAGAIN can take effect later. Other unknowns (a timeout, a lost
// connection, a leader that lost its role mid-write) may sit in a log that
// a new leader commits after the client gave up, so they stay open-ended.
// Without this, the thousands of TRYAGAINs a fenced leader answers during
// a long automatic-failover run each stay concurrent with everything after
// them, and porcupine cannot decide.
func settled(o Op) bool { return strings.HasPrefix(o.Err, "TRYAGAIN") }

// Operations converts a history to porcupine operations: failed operations
// are dropped, unknown writes get an unknown result and an infinite return
// time (they may apply at any point after their call) unless settled,
// unknown reads are dropped (a read has no effect). Deadlines move to the
// run's timeline.
func Operations(h []Op) []porcupine.Operation {
	timed := map[string]bool{}
	for _, o := range h {
		if o.Deadline != 0 {
			timed[o.Key] = true
		}
	}
	ops := make([]porcupine.Operation, 0, len(h))
	for _, o := range h {
		switch {
		case o.Outcome == Failed, o.Outcome == Unknown && !o.Kind.writes():
			continue
		}
		ret := o.Return
		if o.Outcome == Unknown && !settled(o) {
			ret = math.MaxInt64
		}
		in := input{kind: o.Kind, key: o.Key, value: o.Value, call: o.Call, ret: ret, timed: timed[o.Key]}
		if o.Deadline != 0 {
			in.deadline = o.onTimeline(o.Deadline)
		}
		ops = append(ops, porcupine.Operation{
			ClientId: o.Client,
			Input:    in,
			Call:     o.Call,
			Output:   output{value: o.Value, n: o.N, unknown: o.Outcome == Unknown},
			Return:   ret,
		})
	}
	return ops
}

// Verdict is the result of checking a history.
type Verdict struct {
	// Result is porcupine's answer: ok, illegal or unknown (timed out).
	Result porcupine.CheckResult
	// Checked is the number of operations given to porcupine.
	Checked int
	// HTML is the path of the visualisation, written when Result is not ok
	// and a directory was given.
	HTML string
	// IllegalKeys lists the keys whose histories are not linearizable,
	// when Result is illegal.
	IllegalKeys []string
}

// Linearizable reports whether the history was proven linearizable.
func (v Verdict) Linearizable() bool { return v.Result == porcupine.Ok }

// Check checks h for linearizability within timeout (0: no limit). When the
// history is not proven linearizable and htmlDir is not empty, porcupine's
// visualisation is written there.
func Check(h []Op, timeout time.Duration, htmlDir string) (Verdict, error) {
	ops := Operations(h)
	res, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	v := Verdict{Result: res, Checked: len(ops)}
	if res == porcupine.Illegal {
		// Name the keys whose histories are not linearizable, each checked
		// alone: where to start reading the visualisation.
		for _, part := range Model.Partition(ops) {
			if r, _ := porcupine.CheckOperationsVerbose(Model, part, timeout); r == porcupine.Illegal {
				v.IllegalKeys = append(v.IllegalKeys, part[0].Input.(input).key)
			}
		}
	}
	if res != porcupine.Ok && htmlDir != "" {
		v.HTML = fmt.Sprintf("%s/history-%d.html", htmlDir, time.Now().UnixNano())
		if err := porcupine.VisualizePath(Model, info, v.HTML); err != nil {
			return v, fmt.Errorf("history: write visualisation: %w", err)
		}
	}
	return v, nil
}

// LossAt counts acknowledged writes lost by a failover at time cut (ns since
// the start of the run): held is the new leader's value per key when it
// was promoted. For each key, the SET that wrote the observed value is found
// (values are unique); every SET acknowledged before cut and invoked after
// that SET returned is a lost acknowledged write, since the new leader's
// state precedes it. A key the new leader lacks loses every acked SET before
// cut, unless some operation gave the key a deadline: then its absence may
// be an expiry, and only keys the new leader holds are counted (the expiry
// workload's loss is a lower bound). Window is how long before cut the
// oldest lost write was acknowledged: the replication lag the failover
// exposed.
func LossAt(h []Op, cut int64, held map[string]string) (lost int, window time.Duration) {
	writer := map[string]Op{} // value -> its SET
	timed := map[string]bool{}
	for _, o := range h {
		if o.Kind == Set {
			writer[o.Value] = o
		}
		if o.Deadline != 0 {
			timed[o.Key] = true
		}
	}
	for _, o := range h {
		if o.Kind != Set || o.Outcome != OK || o.Return >= cut {
			continue
		}
		v := held[o.Key]
		if v == o.Value || v == "" && timed[o.Key] {
			continue
		}
		if w, ok := writer[v]; v != "" && ok && !(w.Outcome == OK && o.Call > w.Return) {
			continue
		}
		lost++
		window = max(window, time.Duration(cut-o.Return))
	}
	return lost, window
}

// StaleReads counts the successful GETs that returned a value some write
// acknowledged before the read began had already overwritten: the
// overwriting write was invoked after the read value's write returned, and
// returned before the read was invoked. Each is a linearizability
// violation a reader can see, and the commonest symptom of a lost
// acknowledged write (a client reads its key back from a new leader that
// never got the write) or of a deposed leader still serving reads. It does
// not need porcupine, so it is counted even when the check times out, and
// it finds losses LossAt cannot, such as writes a deposed leader
// acknowledged after the new leader's keys were read.
func StaleReads(h []Op) int {
	writer := map[string]Op{}
	byKey := map[string][]Op{} // acknowledged SETs per key
	for _, o := range h {
		if o.Kind != Set {
			continue
		}
		writer[o.Value] = o
		if o.Outcome == OK {
			byKey[o.Key] = append(byKey[o.Key], o)
		}
	}
	// Per key, the SETs by return time and, over each prefix, the latest
	// call: "some SET returned before t and was invoked after u" is then a
	// binary search and one comparison.
	type index struct{ ret, maxCall []int64 }
	idx := map[string]index{}
	for k, ws := range byKey {
		sort.Slice(ws, func(i, j int) bool { return ws[i].Return < ws[j].Return })
		x := index{ret: make([]int64, len(ws)), maxCall: make([]int64, len(ws))}
		m := int64(math.MinInt64)
		for i, w := range ws {
			m = max(m, w.Call)
			x.ret[i], x.maxCall[i] = w.Return, m
		}
		idx[k] = x
	}
	n := 0
	for _, g := range h {
		if g.Kind != Get || g.Outcome != OK || g.Value == "" {
			continue
		}
		w, ok := writer[g.Value]
		if !ok || w.Outcome != OK {
			continue
		}
		x := idx[g.Key]
		i := sort.Search(len(x.ret), func(i int) bool { return x.ret[i] >= g.Call })
		if i > 0 && x.maxCall[i-1] > w.Return {
			n++
		}
	}
	return n
}
