package history

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is an operation's kind.
type Kind uint8

const (
	// Get reads a key.
	Get Kind = iota
	// Set writes a unique value to a key.
	Set
)

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
}

func (o Op) String() string {
	if o.Kind == Get {
		return fmt.Sprintf("get(%s) -> %q [%s]", o.Key, o.Value, o.Outcome)
	}
	return fmt.Sprintf("set(%s, %q) [%s]", o.Key, o.Value, o.Outcome)
}

// input is a porcupine operation input; output is its output.
type input struct {
	kind  Kind
	key   string
	value string
}

type output struct {
	value   string
	unknown bool
}

// Model is the porcupine model: a map of registers, partitioned per key so
// each partition's state is one string ("" for absent).
var Model = porcupine.Model{
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
	Init: func() any { return "" },
	Step: func(state, in, out any) (bool, any) {
		i, o := in.(input), out.(output)
		if i.kind == Set {
			return true, i.value
		}
		return o.value == state.(string), state
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		if i.kind == Set {
			if o.unknown {
				return fmt.Sprintf("set(%s, %q) ?", i.key, i.value)
			}
			return fmt.Sprintf("set(%s, %q)", i.key, i.value)
		}
		return fmt.Sprintf("get(%s) -> %q", i.key, o.value)
	},
	DescribeState: func(s any) string { return fmt.Sprintf("%q", s) },
}

// Operations converts a history to porcupine operations: failed operations are
// dropped, unknown SETs get an infinite return time, unknown GETs are dropped
// (a read has no effect).
func Operations(h []Op) []porcupine.Operation {
	ops := make([]porcupine.Operation, 0, len(h))
	for _, o := range h {
		switch {
		case o.Outcome == Failed, o.Outcome == Unknown && o.Kind == Get:
			continue
		}
		ret := o.Return
		if o.Outcome == Unknown {
			ret = math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{
			ClientId: o.Client,
			Input:    input{kind: o.Kind, key: o.Key, value: o.Value},
			Call:     o.Call,
			Output:   output{value: o.Value, unknown: o.Outcome == Unknown},
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
	if res != porcupine.Ok && htmlDir != "" {
		v.HTML = fmt.Sprintf("%s/history-%d.html", htmlDir, time.Now().UnixNano())
		if err := porcupine.VisualizePath(Model, info, v.HTML); err != nil {
			return v, fmt.Errorf("history: write visualisation: %w", err)
		}
	}
	return v, nil
}

// LossAt counts acknowledged writes lost by a failover at time cut (ns since
// the start of the run): state holds the new leader's value per key when it
// was promoted. For each key, the SET that wrote the observed value is found
// (values are unique); every SET acknowledged before cut and invoked after
// that SET returned is a lost acknowledged write, since the new leader's
// state precedes it. A key the new leader lacks loses every acked SET before
// cut. Window is how long before cut the oldest lost write was acknowledged:
// the replication lag the failover exposed.
func LossAt(h []Op, cut int64, state map[string]string) (lost int, window time.Duration) {
	writer := map[string]Op{} // value -> its SET
	for _, o := range h {
		if o.Kind == Set {
			writer[o.Value] = o
		}
	}
	for _, o := range h {
		if o.Kind != Set || o.Outcome != OK || o.Return >= cut {
			continue
		}
		v := state[o.Key]
		if v == o.Value {
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
