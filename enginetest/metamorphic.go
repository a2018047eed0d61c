package enginetest

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/logkv/logkv"
)

// ReplayEnv names the environment variable that makes RunMetamorphic replay
// an operation log instead of drawing one:
//
//	ENGINETEST_REPLAY=/tmp/enginetest-lsm-123.log go test -run TestMetamorphic/lsm ./enginetest/
const ReplayEnv = "ENGINETEST_REPLAY"

// MetamorphicOptions configure RunMetamorphic.
type MetamorphicOptions struct {
	// Seed draws the engine's options and the operations. Zero means
	// $ENGINETEST_SEED if set, or else a random seed. It is logged.
	Seed uint64
	// Steps is the number of operations (default 400, 150 with -short).
	Steps int
}

// RunMetamorphic tests the engine registered under name with options drawn
// at random, in the spirit of Pebble's metamorphic test: it asks the
// registry for the engine's options (logkv.NewOptions) and, if they are a
// logkv.TestTuner, has them randomize themselves; then it runs a random
// operation log against the engine and a model (a map), checking every read:
// Get, bounded scans both ways, snapshots, and, unless the options are
// logkv.Volatile, Close and reopen. It names no engine: a new engine is
// covered by registering it.
//
// On failure the operation log, options seed included, is written to a file
// named in the failure message; ENGINETEST_REPLAY=file reruns exactly that
// log (operations are data, not a random stream), so a failure can be
// replayed, and the log cut down by hand, without the seed's generator.
//
// # Operation log format
//
// A text file, one operation per line; arguments are Go-quoted strings
// (strconv.Quote), so any byte may appear in a key or value:
//
//	# comment
//	engine "lsm"              the registered name (first operation)
//	options "1234"            RandomizeForTest with rand.NewPCG(1234, 1234); 0: defaults
//	set "k" "v"               Set
//	del "k"                   Delete
//	batch "set" "k" "v" "del" "k2" ...   Apply of one batch
//	get "k"                   Get, compared with the model
//	scan "lo" "hi" "rev"      scan [lo, hi) forward or "rev"; "-" for no bound
//	snap                      NewSnapshot (numbered 0, 1, ... in order)
//	snapget "0" "k"           Get through snapshot 0
//	snapclose "0"             close snapshot 0
//	sync                      Sync
//	reopen                    Close and Open again (skipped when Volatile)
func RunMetamorphic(t *testing.T, name string, o MetamorphicOptions) {
	t.Helper()
	var ops []MetaOp
	var err error
	if path := os.Getenv(ReplayEnv); path != "" {
		ops, err = ReadMetaLog(path)
		if err != nil {
			t.Fatalf("%s: %v", ReplayEnv, err)
		}
		if len(ops) == 0 || ops[0].Kind != "engine" || ops[0].Args[0] != name {
			t.Skipf("%s holds a log for another engine", ReplayEnv)
		}
		t.Logf("replaying %d operations from %s", len(ops), path)
	} else {
		seed := o.Seed
		if seed == 0 {
			if s := os.Getenv(SeedEnv); s != "" {
				if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
					t.Fatalf("$%s: %v", SeedEnv, err)
				}
			} else {
				seed = rand.Uint64()
			}
		}
		steps := o.Steps
		if steps == 0 {
			steps = 400
			if testing.Short() {
				steps = 150
			}
		}
		ops = GenMetaLog(name, seed, steps)
		t.Logf("metamorphic: engine %s, seed %d, %d steps", name, seed, steps)
	}
	done, err := RunMetaLog(t.TempDir(), ops)
	if err != nil {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("enginetest-%s-%d.log", name, os.Getpid()))
		if werr := WriteMetaLog(path, ops[:done]); werr != nil {
			t.Fatalf("metamorphic: %v (and writing its log: %v)", err, werr)
		}
		t.Fatalf("metamorphic: %v\nthe %d operations up to the failure are in %s; replay them with %s=%s", err, done, path, ReplayEnv, path)
	}
}

// MetaOp is one operation of a metamorphic log.
type MetaOp struct {
	Kind string
	Args []string
}

func (op MetaOp) String() string {
	var b strings.Builder
	b.WriteString(op.Kind)
	for _, a := range op.Args {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(a))
	}
	return b.String()
}

// metaArgs is how many arguments each kind takes (-1: any even number, for
// batch's pairs and triples, checked when it runs).
var metaArgs = map[string]int{
	"engine": 1, "options": 1, "set": 2, "del": 1, "batch": -1, "get": 1, "scan": 3,
	"snap": 0, "snapget": 2, "snapclose": 1, "sync": 0, "reopen": 0,
}

// ParseMetaOp parses one line of a log (see RunMetamorphic for the format).
func ParseMetaOp(line string) (MetaOp, error) {
	kind, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	want, ok := metaArgs[kind]
	if !ok {
		return MetaOp{}, fmt.Errorf("unknown operation %q", kind)
	}
	op := MetaOp{Kind: kind}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return MetaOp{}, fmt.Errorf("%s: argument %q is not a Go-quoted string", kind, rest)
		}
		a, _ := strconv.Unquote(q)
		op.Args = append(op.Args, a)
		rest = rest[len(q):]
	}
	if want >= 0 && len(op.Args) != want {
		return MetaOp{}, fmt.Errorf("%s takes %d arguments, not %d", kind, want, len(op.Args))
	}
	return op, nil
}

// ReadMetaLog reads a log written by WriteMetaLog (or by hand).
func ReadMetaLog(path string) (ops []MetaOp, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 2*logkv.MaxValueSize)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, err := ParseMetaOp(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		ops = append(ops, op)
	}
	return ops, sc.Err()
}

// WriteMetaLog writes ops to path, one per line.
func WriteMetaLog(path string, ops []MetaOp) error {
	var b strings.Builder
	b.WriteString("# logkv enginetest metamorphic log: replay with " + ReplayEnv + "=<this file>\n")
	for _, op := range ops {
		b.WriteString(op.String())
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// GenMetaLog draws a log of steps operations for engine name from seed:
// keys from a small set (so writes collide), values mostly small with a
// few of several KiB (so engines flush, rotate and compact).
func GenMetaLog(name string, seed uint64, steps int) []MetaOp {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	ops := []MetaOp{{"engine", []string{name}}, {"options", []string{strconv.FormatUint(seed, 10)}}}
	key := func() string { return modelKeys[r.IntN(len(modelKeys))] }
	probe := func() string {
		if r.IntN(4) == 0 {
			return "-"
		}
		return modelProbes[r.IntN(len(modelProbes))]
	}
	value := func() string {
		if r.IntN(20) == 0 {
			return strings.Repeat(strconv.Itoa(r.IntN(1000)), 500+r.IntN(2000))
		}
		return strconv.Itoa(r.IntN(1e6))
	}
	snaps, open := 0, []int{}
	for range steps {
		switch n := r.IntN(100); {
		case n < 30:
			ops = append(ops, MetaOp{"set", []string{key(), value()}})
		case n < 40:
			ops = append(ops, MetaOp{"del", []string{key()}})
		case n < 52:
			op := MetaOp{Kind: "batch"}
			for range 1 + r.IntN(6) {
				if r.IntN(3) == 0 {
					op.Args = append(op.Args, "del", key())
				} else {
					op.Args = append(op.Args, "set", key(), value())
				}
			}
			ops = append(ops, op)
		case n < 64:
			ops = append(ops, MetaOp{"get", []string{key()}})
		case n < 76:
			dir := "fwd"
			if r.IntN(2) == 0 {
				dir = "rev"
			}
			ops = append(ops, MetaOp{"scan", []string{probe(), probe(), dir}})
		case n < 80 && len(open) < 4:
			ops = append(ops, MetaOp{"snap", nil})
			open = append(open, snaps)
			snaps++
		case n < 88 && len(open) > 0:
			ops = append(ops, MetaOp{"snapget", []string{strconv.Itoa(open[r.IntN(len(open))]), key()}})
		case n < 91 && len(open) > 0:
			i := r.IntN(len(open))
			ops = append(ops, MetaOp{"snapclose", []string{strconv.Itoa(open[i])}})
			open = slices.Delete(open, i, i+1)
		case n < 95:
			ops = append(ops, MetaOp{"sync", nil})
		case n < 98:
			ops = append(ops, MetaOp{"reopen", nil})
			open = nil // a reopen closes them
		}
	}
	return ops
}

// RunMetaLog runs ops against a new engine in dir and the model, and
// returns how many operations ran, through the one that failed if one did.
func RunMetaLog(dir string, ops []MetaOp) (int, error) {
	m := &metaRun{dir: dir, model: state{}, snaps: map[string]metaSnap{}}
	defer m.close()
	for i, op := range ops {
		if err := m.apply(op); err != nil {
			return i + 1, fmt.Errorf("operation %d, %s: %w", i+1, op, err)
		}
	}
	return len(ops), m.check("at the end")
}

type metaSnap struct {
	s     logkv.Snapshot
	state state
}

// metaRun is the state of one RunMetaLog.
type metaRun struct {
	dir      string
	name     string
	opts     any
	volatile bool
	e        logkv.Engine
	model    state
	snaps    map[string]metaSnap
	nsnaps   int
}

func (m *metaRun) close() {
	m.closeSnaps()
	if m.e != nil {
		_ = m.e.Close() // the run is over; a failure was reported already
	}
}

func (m *metaRun) closeSnaps() {
	for id, s := range m.snaps {
		_ = s.s.Close() // a reopen or the end: the engine goes too
		delete(m.snaps, id)
	}
}

func (m *metaRun) apply(op MetaOp) error {
	if m.e == nil && op.Kind != "engine" && op.Kind != "options" {
		return errors.New("the log must start with engine and options")
	}
	a := op.Args
	switch op.Kind {
	case "engine":
		if m.e != nil {
			return errors.New("a second engine line")
		}
		m.name = a[0]
		return nil
	case "options":
		if m.name == "" || m.e != nil {
			return errors.New("options must follow engine, once")
		}
		seed, err := strconv.ParseUint(a[0], 10, 64)
		if err != nil {
			return err
		}
		if m.opts, err = logkv.NewOptions(m.name); err != nil {
			return err
		}
		if t, ok := m.opts.(logkv.TestTuner); ok && seed != 0 {
			t.RandomizeForTest(rand.New(rand.NewPCG(seed, seed)))
		}
		v, ok := m.opts.(logkv.Volatile)
		m.volatile = ok && v.Volatile()
		m.e, err = logkv.Open(m.name, m.dir, m.opts)
		if err != nil {
			return fmt.Errorf("open with %+v: %w", m.opts, err)
		}
		return nil
	case "set":
		if err := m.e.Set([]byte(a[0]), []byte(a[1]), nil); err != nil {
			return err
		}
		m.model[a[0]] = a[1]
	case "del":
		if err := m.e.Delete([]byte(a[0]), nil); err != nil {
			return err
		}
		delete(m.model, a[0])
	case "batch":
		var b logkv.Batch
		next := state{}
		var dels []string
		for len(a) > 0 {
			switch {
			case a[0] == "set" && len(a) >= 3:
				b.Set([]byte(a[1]), []byte(a[2]))
				next[a[1]] = a[2]
				dels = slices.DeleteFunc(dels, func(k string) bool { return k == a[1] })
				a = a[3:]
			case a[0] == "del" && len(a) >= 2:
				b.Delete([]byte(a[1]))
				delete(next, a[1])
				dels = append(dels, a[1])
				a = a[2:]
			default:
				return fmt.Errorf("batch: %q is not set KEY VALUE or del KEY", a)
			}
		}
		if err := m.e.Apply(&b, nil); err != nil {
			return err
		}
		for _, k := range dels {
			delete(m.model, k)
		}
		for k, v := range next {
			m.model[k] = v
		}
	case "get":
		return m.get(m.e, m.model, a[0])
	case "scan":
		return m.scan(m.e, m.model, a[0], a[1], a[2] == "rev")
	case "snap":
		s, err := m.e.NewSnapshot()
		if err != nil {
			return err
		}
		m.snaps[strconv.Itoa(m.nsnaps)] = metaSnap{s, maps.Clone(m.model)}
		m.nsnaps++
	case "snapget":
		s, ok := m.snaps[a[0]]
		if !ok {
			return nil // closed by a reopen, or never taken in a cut-down log
		}
		return m.get(s.s, s.state, a[1])
	case "snapclose":
		if s, ok := m.snaps[a[0]]; ok {
			delete(m.snaps, a[0])
			return s.s.Close()
		}
	case "sync":
		return m.e.Sync()
	case "reopen":
		if m.volatile {
			return nil
		}
		m.closeSnaps()
		err := m.e.Close()
		m.e = nil
		if err != nil {
			return fmt.Errorf("close before reopen: %w", err)
		}
		if m.e, err = logkv.Open(m.name, m.dir, m.opts); err != nil {
			return fmt.Errorf("reopen: %w", err)
		}
		return m.check("after reopen")
	}
	return nil
}

func (m *metaRun) get(r logkv.Reader, s state, k string) error {
	v, err := r.Get([]byte(k))
	want, ok := s[k]
	switch {
	case !ok && errors.Is(err, logkv.ErrNotFound):
		return nil
	case !ok:
		return fmt.Errorf("get %q: %.32q, %v; want ErrNotFound", k, v, err)
	case err != nil || string(v) != want:
		return fmt.Errorf("get %q: %.32q, %v; want %.32q", k, v, err, want)
	}
	return nil
}

func (m *metaRun) scan(r logkv.Reader, s state, lo, hi string, rev bool) error {
	o := &logkv.IterOptions{}
	if lo != "-" {
		o.LowerBound = []byte(lo)
	}
	if hi != "-" {
		o.UpperBound = []byte(hi)
	}
	var want []string
	for k := range s {
		if o.Contains([]byte(k)) {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	if rev {
		slices.Reverse(want)
	}
	it, err := r.NewIter(o)
	if err != nil {
		return err
	}
	var got []string
	move := it.Next
	ok := it.First()
	if rev {
		move, ok = it.Prev, it.Last()
	}
	for ; ok; ok = move() {
		k := string(it.Key())
		got = append(got, k)
		if v := string(it.Value()); s[k] != v {
			_ = it.Close() // failing already
			return fmt.Errorf("scan %s: %q = %.32q, want %.32q", boundsString(o), k, v, s[k])
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scan %s: Close: %w", boundsString(o), err)
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("scan %s (reverse %v): keys %q, want %q", boundsString(o), rev, got, want)
	}
	return nil
}

// check compares the whole engine with the model.
func (m *metaRun) check(when string) error {
	if err := m.scan(m.e, m.model, "-", "-", false); err != nil {
		return fmt.Errorf("%s: %w", when, err)
	}
	return nil
}
