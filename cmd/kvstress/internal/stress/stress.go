package stress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/logkv/logkv"
)

// Config configures Run.
type Config struct {
	// Engine is a registered engine (logkv.Engines): one that keeps its
	// data across a kill, or any with Node.
	Engine string
	// Dir is the engine's directory; it persists across cycles.
	Dir string
	// Cycles is the number of kill-and-recover cycles.
	Cycles int
	// CycleDuration bounds each cycle's writing: the child is killed at a
	// random moment between a fifth of it and all of it.
	CycleDuration time.Duration
	// Writers is the number of concurrent writer goroutines (default 4).
	Writers int
	// Keys is the number of distinct keys (default 2000).
	Keys int
	// Seed seeds the kill times and the order of keys (0: random).
	Seed uint64
	// ChildCommand returns the command that runs ChildMain with args (for
	// kvstress, itself with -child). Not used with Node.
	ChildCommand func(args []string) *exec.Cmd
	// Node runs the cycles against a kvnode process (see the package doc).
	Node bool
	// KVNode is the kvnode binary, with Node.
	KVNode string
	// Replicated, with Node, runs kvnode as a replication leader without
	// followers (certificates made once in Dir/tls with `kvnode certs`).
	// Either way its writes go through the commit log, which is the only
	// log of an lsm engine, and from which (with checkpoints) a memory
	// engine is restored.
	Replicated bool
	// AppendFsync is kvnode's appendfsync, with Node: "always" (default) or
	// "everysec". The commit log promises that a write acknowledged before
	// its fsync survives SIGKILL, so Run checks the same zero-loss verdict
	// in both modes.
	AppendFsync string
	// Multi, with Node, runs the transaction and expiry workload instead of
	// single SETs (see "Transactions and expiry" in the package doc).
	Multi bool
	// TxKeys is the number of fresh keys each Multi transaction writes
	// (default 8), besides its writer's txlast key.
	TxKeys int
	// PowerCut, with Node, serves kvnode's data directory through a FUSE
	// file system that loses every write not fsynced (package powercut)
	// and cuts its power at each kill: an acknowledged write must survive
	// with AppendFsync always; with everysec one acknowledged within
	// EverysecWindow before the cut may be lost (counted as Dropped), any
	// older one is Lost.
	PowerCut bool
	// Log receives one progress line per cycle; nil discards them.
	Log io.Writer
}

// EverysecWindow is how long before a power cut a write acknowledged under
// appendfsync everysec may be lost: the background fsync runs at most a
// second after the write (node/example.yaml), plus a quarter second for
// that fsync itself to finish on a loaded machine.
const EverysecWindow = time.Second + 250*time.Millisecond

// Scorecard is the result of Run.
type Scorecard struct {
	Cycles   int
	Acked    int64 // acknowledged writes
	Verified int64 // acknowledged writes found (themselves or a later version)
	Lost     int64 // acknowledged writes missing after a crash
	Corrupt  int64 // keys holding a value that was never written
	// Dropped counts acknowledged writes a power cut took that everysec
	// allows (acknowledged within EverysecWindow of the cut); MaxDroppedAge
	// is the oldest of them, from its acknowledgement to the cut.
	Dropped       int64
	MaxDroppedAge time.Duration
	// PowerCut says the run cut the power at each kill; CutFiles and
	// CutBytes total what the cuts threw away (files whose content or name
	// was not synced, and their bytes).
	PowerCut bool
	CutFiles int
	CutBytes int64
	// Recovery holds each cycle's open (recovery) time.
	Recovery []time.Duration
}

// RecoveryP99 returns the 99th percentile (nearest rank) of the recovery
// times, or 0 without any.
func (s *Scorecard) RecoveryP99() time.Duration {
	if len(s.Recovery) == 0 {
		return 0
	}
	r := slices.Clone(s.Recovery)
	slices.Sort(r)
	i := (99*len(r) + 99) / 100 // ceil(0.99 n)
	return r[i-1]
}

// String is the scorecard line kvstress prints last.
func (s *Scorecard) String() string {
	line := fmt.Sprintf("cycles=%d acked=%d verified=%d lost=%d corrupt=%d recovery_p99=%s",
		s.Cycles, s.Acked, s.Verified, s.Lost, s.Corrupt, s.RecoveryP99().Round(time.Microsecond))
	if s.PowerCut {
		line += fmt.Sprintf(" powercut dropped=%d max_dropped_age=%s cut_files=%d cut_bytes=%d",
			s.Dropped, s.MaxDroppedAge.Round(time.Millisecond), s.CutFiles, s.CutBytes)
	}
	return line
}

// OK reports whether nothing was lost or corrupt.
func (s *Scorecard) OK() bool { return s.Lost == 0 && s.Corrupt == 0 }

// version identifies one write of a key.
type version struct {
	cycle, n int
}

func (v version) less(w version) bool {
	return v.cycle < w.cycle || v.cycle == w.cycle && v.n < w.n
}

// keyName is the key of index i.
func keyName(i int) string { return fmt.Sprintf("key%06d", i) }

// value is the value of write v of key k (see the package doc).
func value(k string, v version) []byte {
	h := uint64(v.cycle)*0x9e3779b97f4a7c15 ^ uint64(v.n)*0xbf58476d1ce4e5b9
	for _, c := range []byte(k) {
		h = (h ^ uint64(c)) * 0x100000001b3
	}
	pad := 64 + int(h%1024)
	b := make([]byte, 0, len(k)+24+pad)
	b = fmt.Appendf(b, "%s#%d#%d#", k, v.cycle, v.n)
	for i := range pad {
		b = append(b, 'a'+byte((h>>(i%57))%26))
	}
	return b
}

// parseValue returns the version a value of key k claims, and whether the
// value is exactly what that write wrote.
func parseValue(k string, val []byte) (version, bool) {
	parts := strings.SplitN(string(val), "#", 4)
	if len(parts) != 4 || parts[0] != k {
		return version{}, false
	}
	c, err1 := strconv.Atoi(parts[1])
	n, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil {
		return version{}, false
	}
	v := version{c, n}
	return v, string(value(k, v)) == string(val)
}

// openEngine opens name in dir with small sizes (logkv.TestTuner), so that
// flushes, compactions, rotations and merges happen within a cycle.
func openEngine(name, dir string) (logkv.Engine, error) {
	opts, err := smallOptions(name)
	if err != nil {
		return nil, err
	}
	return logkv.Open(name, dir, opts)
}

// smallOptions returns the options of engine name with small sizes, if the
// engine can shrink them for tests.
func smallOptions(name string) (any, error) {
	opts, err := logkv.NewOptions(name)
	if err != nil {
		return nil, fmt.Errorf("stress: %w", err)
	}
	if t, ok := opts.(logkv.TestTuner); ok {
		t.ShrinkForTest()
	}
	return opts, nil
}

// acks is the acknowledged writes of one cycle: the last counter per key,
// and when each counter was acknowledged (for the everysec window of a
// power cut; a key's counters are acknowledged in order, 1, 2, ...).
type acks struct {
	mu   sync.Mutex
	last map[int]int
	n    map[int]int         // acks per key
	at   map[int][]time.Time // at[key][n-1]: when counter n was acknowledged
}

func newAcks() *acks { return &acks{last: map[int]int{}, n: map[int]int{}, at: map[int][]time.Time{}} }

func (a *acks) add(key, n int) { a.addAt(key, n, time.Now()) }

func (a *acks) addAt(key, n int, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n > a.last[key] {
		a.last[key] = n
	}
	a.n[key]++
	if len(a.at[key]) == n-1 {
		a.at[key] = append(a.at[key], t)
	}
}

// ackedAt returns when counter n of key was acknowledged, or the zero Time
// if that is not known.
func (a *acks) ackedAt(key, n int) time.Time {
	if ts := a.at[key]; n >= 1 && n <= len(ts) {
		return ts[n-1]
	}
	return time.Time{}
}

// checker holds what the parent knows across cycles.
type checker struct {
	baseline map[int]version // the value observed after the previous cycle
	sc       *Scorecard
	// cut is when the power was cut this cycle, with window the time before
	// it within which an acknowledged write may be lost (everysec); zero
	// when no loss is allowed.
	cut    time.Time
	window time.Duration
}

// lose counts the loss of key i's acknowledged writes from..to of this
// cycle: each acknowledged within the window before the cut is Dropped (an
// allowed loss), any other Lost. It returns how many were Lost.
func (ch *checker) lose(a *acks, i, from, to int) int64 {
	var lost int64
	for n := from; n <= to; n++ {
		t := a.ackedAt(i, n)
		if ch.window > 0 && !t.IsZero() && ch.cut.Sub(t) <= ch.window {
			ch.sc.Dropped++
			ch.sc.MaxDroppedAge = max(ch.sc.MaxDroppedAge, ch.cut.Sub(t))
			continue
		}
		lost++
	}
	ch.sc.Lost += lost
	return lost
}

// verify checks key i's observed value after cycle c against a and updates
// the baseline: val is its value, found false when it has none. It returns
// a description of what is wrong, or "".
func (ch *checker) verify(c int, a *acks, i int, val []byte, found bool) string {
	k := keyName(i)
	lastN, acked := a.last[i]
	nAcks := int64(a.n[i])
	ch.sc.Acked += nAcks
	base, hadBase := ch.baseline[i]
	want, haveWant := base, hadBase // the oldest value allowed
	inflight := version{c, 1}
	if acked {
		want, haveWant = version{c, lastN}, true
		inflight = version{c, lastN + 1}
	}
	if !found {
		switch {
		case acked && !hadBase:
			// Nothing before this cycle: this cycle's writes are lost,
			// which a power cut under everysec may allow.
			if ch.lose(a, i, 1, lastN) == 0 {
				return ""
			}
		case haveWant:
			ch.sc.Lost += max(nAcks, 1)
		default:
			return ""
		}
		return fmt.Sprintf("%s: missing, want %v", k, want)
	}
	got, exact := parseValue(k, val)
	if !exact {
		ch.sc.Corrupt++
		return fmt.Sprintf("%s: corrupt value %.60q", k, val)
	}
	ch.baseline[i] = got
	switch {
	case haveWant && got == want, got == inflight:
		ch.sc.Verified += nAcks
		return ""
	case haveWant && got.less(want):
		switch {
		case acked && got.cycle == c:
			ch.sc.Verified += nAcks - int64(lastN-got.n)
			if ch.lose(a, i, got.n+1, lastN) == 0 {
				return ""
			}
		case acked && hadBase && got == base:
			// This cycle's writes lost, the one before them kept.
			if ch.lose(a, i, 1, lastN) == 0 {
				return ""
			}
		default:
			ch.sc.Lost += max(nAcks, 1)
		}
		return fmt.Sprintf("%s: holds %v, older than acknowledged %v", k, got, want)
	}
	ch.sc.Corrupt++
	return fmt.Sprintf("%s: holds %v, never written (last acknowledged %v, in flight %v)", k, got, want, inflight)
}

// Run runs cfg.Cycles kill-and-recover cycles and returns the scorecard. An
// error means the harness itself failed (the child would not start, the
// engine would not open); lost and corrupt writes are in the scorecard.
func Run(ctx context.Context, cfg Config) (*Scorecard, error) {
	if cfg.Writers <= 0 {
		cfg.Writers = 4
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 2000
	}
	if cfg.TxKeys == 0 {
		cfg.TxKeys = 8
	}
	if cfg.CycleDuration <= 0 {
		cfg.CycleDuration = time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	sc := &Scorecard{}
	ch := &checker{baseline: map[int]version{}, sc: sc}
	if err := cfg.Validate(); err != nil {
		return &Scorecard{}, err
	}
	if cfg.Node && cfg.AppendFsync == "" {
		cfg.AppendFsync = "always"
	}
	if cfg.Node {
		fmt.Fprintf(cfg.Log, "kvstress: engine=%s dir=%s seed=%d node=true replicated=%v appendfsync=%s multi=%v\n",
			cfg.Engine, cfg.Dir, cfg.Seed, cfg.Replicated, cfg.AppendFsync, cfg.Multi)
	} else {
		fmt.Fprintf(cfg.Log, "kvstress: engine=%s dir=%s seed=%d node=false\n", cfg.Engine, cfg.Dir, cfg.Seed)
	}
	var nr *nodeRunner
	if cfg.Node {
		var err error
		if nr, err = startNodeRunner(ctx, cfg); err != nil {
			return sc, err
		}
		nr.sc = sc
		defer nr.stop()
	}
	sc.PowerCut = cfg.PowerCut
	ms := &multiState{}
	for c := 1; c <= cfg.Cycles; c++ {
		if err := ctx.Err(); err != nil {
			return sc, err
		}
		kill := cfg.CycleDuration/5 + time.Duration(rng.Int64N(int64(cfg.CycleDuration*4/5)+1))
		if cfg.Multi {
			if err := runMultiCycle(ctx, cfg, nr, ms, sc, c, kill); err != nil {
				return sc, fmt.Errorf("cycle %d: %w", c, err)
			}
			continue
		}
		var (
			a        *acks
			recovery time.Duration
			read     func(i int) ([]byte, bool, error)
			done     func() error
			err      error
		)
		if cfg.Node {
			a, recovery, read, done, err = nr.cycle(ctx, c, kill)
			if cfg.PowerCut && cfg.AppendFsync == "everysec" {
				ch.cut, ch.window = nr.lastCut, EverysecWindow
			}
		} else {
			a, recovery, read, done, err = engineCycle(ctx, cfg, c, kill)
		}
		if err != nil {
			return sc, fmt.Errorf("cycle %d: %w", c, err)
		}
		sc.Recovery = append(sc.Recovery, recovery)
		lost, corrupt, dropped := sc.Lost, sc.Corrupt, sc.Dropped
		var problems []string
		for i := range cfg.Keys {
			val, found, err := read(i)
			if err != nil {
				_ = done()
				return sc, fmt.Errorf("cycle %d: read %s: %w", c, keyName(i), err)
			}
			if p := ch.verify(c, a, i, val, found); p != "" {
				problems = append(problems, p)
			}
		}
		if err := done(); err != nil {
			return sc, fmt.Errorf("cycle %d: %w", c, err)
		}
		sc.Cycles++
		nacks := 0
		for _, n := range a.n {
			nacks += n
		}
		fmt.Fprintf(cfg.Log, "cycle %d: killed after %v, %d acked, recovery %v, lost %d, corrupt %d",
			c, kill.Round(time.Millisecond), nacks, recovery.Round(time.Microsecond), sc.Lost-lost, sc.Corrupt-corrupt)
		if cfg.PowerCut {
			if cfg.AppendFsync == "everysec" {
				fmt.Fprintf(cfg.Log, ", dropped %d (within the everysec window)", sc.Dropped-dropped)
			}
			fmt.Fprintf(cfg.Log, "; the power cut undid %d files (net %d bytes removed)",
				nr.lastCutStats.Files, nr.lastCutStats.Bytes)
		}
		fmt.Fprintln(cfg.Log)
		for j, p := range problems {
			if j == 20 {
				fmt.Fprintf(cfg.Log, "  ... and %d more\n", len(problems)-j)
				break
			}
			fmt.Fprintf(cfg.Log, "  %s\n", p)
		}
	}
	return sc, nil
}

// engineCycle runs one child, kills it after kill, and opens the engine.
func engineCycle(ctx context.Context, cfg Config, c int, kill time.Duration) (a *acks, recovery time.Duration, read func(int) ([]byte, bool, error), done func() error, err error) {
	if cfg.ChildCommand == nil {
		return nil, 0, nil, nil, errors.New("no ChildCommand")
	}
	cmd := cfg.ChildCommand([]string{"-engine", cfg.Engine, "-dir", cfg.Dir, "-cycle", strconv.Itoa(c),
		"-writers", strconv.Itoa(cfg.Writers), "-keys", strconv.Itoa(cfg.Keys), "-seed", strconv.FormatUint(cfg.Seed+uint64(c), 10)})
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, nil, nil, fmt.Errorf("start child: %w", err)
	}
	a = newAcks()
	ready := make(chan struct{})
	drained := make(chan error, 1)
	go func() {
		drained <- readAcks(out, a, ready)
	}()
	killed := false
	select {
	case <-ready:
		select {
		case <-time.After(kill):
		case <-ctx.Done():
		}
		killed = true
		_ = cmd.Process.Signal(syscall.SIGKILL)
	case err := <-drained:
		// The child ended before it was ready.
		werr := cmd.Wait()
		return nil, 0, nil, nil, fmt.Errorf("child exited before ready: %v, %v", err, werr)
	}
	derr := <-drained
	werr := cmd.Wait()
	if derr != nil {
		return nil, 0, nil, nil, fmt.Errorf("child output: %w", derr)
	}
	if !killed || werr == nil {
		return nil, 0, nil, nil, fmt.Errorf("child was not killed: %v", werr)
	}
	start := time.Now()
	db, err := openEngine(cfg.Engine, cfg.Dir)
	recovery = time.Since(start)
	if err != nil {
		return nil, 0, nil, nil, fmt.Errorf("open after kill: %w", err)
	}
	read = func(i int) ([]byte, bool, error) {
		v, err := db.Get([]byte(keyName(i)))
		if errors.Is(err, logkv.ErrNotFound) {
			return nil, false, nil
		}
		return v, err == nil, err
	}
	return a, recovery, read, db.Close, ctx.Err()
}

// readAcks parses the child's stdout into a until EOF, closing ready at the
// "ready" line.
func readAcks(r io.Reader, a *acks, ready chan struct{}) error {
	sc := bufio.NewScanner(r)
	isReady := false
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			if !isReady {
				isReady = true
				close(ready)
			}
			continue
		}
		var key, n int
		if _, err := fmt.Sscanf(line, "a %d %d", &key, &n); err != nil {
			// A torn last line cannot happen (one write per line), so
			// this is a protocol error.
			return fmt.Errorf("bad line %q: %w", line, err)
		}
		a.add(key, n)
	}
	if !isReady {
		return errors.New("no ready line")
	}
	return sc.Err()
}
