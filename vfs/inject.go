package vfs

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// InjectedError returns the error the ready-made injectors fail op with: it
// wraps ErrInjected and names the operation.
func InjectedError(op Op) error {
	return fmt.Errorf("%w: %s %s", ErrInjected, op.Kind, op.Path)
}

// Nth is an Injector that counts the operations of some kinds and fails the
// nth of them (counting from 1) and, when made by FailFrom, every later one
// too. Create it with FailNth or FailFrom.
//
// A test that wants to fail each operation in turn first runs its scenario
// with FailNth(0, kinds), which fails nothing, to learn Count, then reruns it
// with FailNth(i, kinds) for i in 1..Count.
type Nth struct {
	kinds  OpKind
	n      int64
	sticky bool
	count  atomic.Int64
}

// FailNth returns an Injector failing the nth operation of the given kinds,
// once. With n <= 0 it fails nothing and only counts.
func FailNth(n int64, kinds OpKind) *Nth { return &Nth{kinds: kinds, n: n} }

// FailFrom returns an Injector failing the nth operation of the given kinds
// and every one after it, as a disk that died would. With n <= 0 it fails
// nothing and only counts.
func FailFrom(n int64, kinds OpKind) *Nth { return &Nth{kinds: kinds, n: n, sticky: true} }

// MaybeError fails op if it is the nth of its kinds (or later, if sticky).
func (i *Nth) MaybeError(op Op) error {
	if op.Kind&i.kinds == 0 {
		return nil
	}
	c := i.count.Add(1)
	if i.n > 0 && (c == i.n || i.sticky && c > i.n) {
		return InjectedError(op)
	}
	return nil
}

// Count returns how many operations of its kinds it has seen.
func (i *Nth) Count() int64 { return i.count.Load() }

// Failed reports whether it has failed an operation yet.
func (i *Nth) Failed() bool { return i.n > 0 && i.count.Load() >= i.n }

// Toggle is an Injector a test switches on and off: while on, it fails
// every operation of its kinds. Create it with NewToggle.
type Toggle struct {
	kinds OpKind
	on    atomic.Bool
}

// NewToggle returns a Toggle for the given kinds, off.
func NewToggle(kinds OpKind) *Toggle { return &Toggle{kinds: kinds} }

// On makes it fail every operation of its kinds from now on.
func (t *Toggle) On() { t.on.Store(true) }

// Off makes it fail nothing from now on.
func (t *Toggle) Off() { t.on.Store(false) }

// MaybeError fails op if the toggle is on and op is of its kinds.
func (t *Toggle) MaybeError(op Op) error {
	if op.Kind&t.kinds != 0 && t.on.Load() {
		return InjectedError(op)
	}
	return nil
}

// Random is an Injector failing each operation of its kinds with a fixed
// probability, drawn from a seeded source. Create it with FailRandomly. Its
// choices are reproducible for a seed when the operations arrive in the same
// order (one goroutine).
type Random struct {
	kinds OpKind
	p     float64
	mu    sync.Mutex
	r     *rand.Rand
}

// FailRandomly returns an Injector failing operations of the given kinds
// with probability p, seeded with seed.
func FailRandomly(p float64, seed uint64, kinds OpKind) *Random {
	return &Random{kinds: kinds, p: p, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// MaybeError fails op with probability p if it is of the injector's kinds.
func (i *Random) MaybeError(op Op) error {
	if op.Kind&i.kinds == 0 {
		return nil
	}
	i.mu.Lock()
	fail := i.r.Float64() < i.p
	i.mu.Unlock()
	if fail {
		return InjectedError(op)
	}
	return nil
}

// FailPaths returns an Injector failing every operation of the given kinds
// on a path for which match returns true.
func FailPaths(match func(path string) bool, kinds OpKind) Injector {
	return InjectorFunc(func(op Op) error {
		if op.Kind&kinds != 0 && match(op.Path) {
			return InjectedError(op)
		}
		return nil
	})
}

// Filter returns an Injector that asks inj only about the operations for
// which match returns true and lets the others run. With it, FailNth counts
// only the matching operations: Filter(isWAL, FailNth(3, OpWrite)) fails
// the third write to the WAL.
func Filter(match func(op Op) bool, inj Injector) Injector {
	return InjectorFunc(func(op Op) error {
		if !match(op) {
			return nil
		}
		return inj.MaybeError(op)
	})
}

// Any returns an Injector that asks each of injs in turn and fails an
// operation with the first error one returns. Every injector before the
// failing one sees the operation (and counts it).
func Any(injs ...Injector) Injector {
	return InjectorFunc(func(op Op) error {
		for _, inj := range injs {
			if err := inj.MaybeError(op); err != nil {
				return err
			}
		}
		return nil
	})
}

// CrashPoint is an Injector that fails nothing: just before the nth
// operation of its kinds runs, it takes a crash clone of a MemFS. Wrap the
// MemFS in an ErrorFS with it, run a workload, and reopen on Crashed to
// check recovery from a power loss at that instant; loop n over 1..Count of
// a first run to crash at every one. Create it with CrashAt.
type CrashPoint struct {
	mem   *MemFS
	n     int64
	kinds OpKind
	o     CrashOptions
	count atomic.Int64

	mu    sync.Mutex
	clone *MemFS
}

// CrashAt returns a CrashPoint cloning mem with o before the nth operation
// of the given kinds (with n <= 0, never: it only counts).
func CrashAt(mem *MemFS, n int64, kinds OpKind, o CrashOptions) *CrashPoint {
	return &CrashPoint{mem: mem, n: n, kinds: kinds, o: o}
}

// MaybeError takes the clone if op is the nth of its kinds, and returns
// nil.
func (c *CrashPoint) MaybeError(op Op) error {
	if op.Kind&c.kinds == 0 {
		return nil
	}
	if c.count.Add(1) == c.n {
		clone := c.mem.CrashClone(c.o)
		c.mu.Lock()
		c.clone = clone
		c.mu.Unlock()
	}
	return nil
}

// Count returns how many operations of its kinds it has seen.
func (c *CrashPoint) Count() int64 { return c.count.Load() }

// Crashed returns the clone taken before the nth operation and true, or,
// if fewer operations ran, a clone taken now and false.
func (c *CrashPoint) Crashed() (*MemFS, bool) {
	c.mu.Lock()
	clone := c.clone
	c.mu.Unlock()
	if clone != nil {
		return clone, true
	}
	return c.mem.CrashClone(c.o), false
}

// DiskFull is an Injector that plays a disk that fills up and is freed
// again: while full, every Write fails with an error wrapping both
// ErrInjected and syscall.ENOSPC, as write(2) on a full filesystem does,
// and every other operation runs (creating, renaming, removing, truncating
// and syncing need no data blocks, or free them). Pair it with
// ErrorFS.SetShortWrites for writes that fill the last blocks before they
// fail. Create it with NewDiskFull.
type DiskFull struct {
	full   atomic.Bool
	failed atomic.Int64
}

// NewDiskFull returns a DiskFull injector, with space.
func NewDiskFull() *DiskFull { return &DiskFull{} }

// Fill makes every Write fail from now on.
func (d *DiskFull) Fill() { d.full.Store(true) }

// Free makes writes succeed again from now on.
func (d *DiskFull) Free() { d.full.Store(false) }

// Failed returns how many writes it has failed.
func (d *DiskFull) Failed() int64 { return d.failed.Load() }

// MaybeError fails a Write while the disk is full.
func (d *DiskFull) MaybeError(op Op) error {
	if op.Kind == OpWrite && d.full.Load() {
		d.failed.Add(1)
		return fmt.Errorf("%w: %s %s: %w", ErrInjected, op.Kind, op.Path, syscall.ENOSPC)
	}
	return nil
}

// SyncGate is an Injector that, once armed, holds the first fsync of a file
// whose path ends in its suffix until Release, and then fails it; every
// other fsync succeeds. It plays Linux, which reports a file's write-back
// error to one fsync only: a test holds a group commit's fsync in flight,
// does something that fsyncs the same file (a roll, a rotation), then fails
// the held one. Create it with NewSyncGate.
type SyncGate struct {
	suffix  string
	armed   atomic.Bool
	held    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

// NewSyncGate returns a SyncGate for the files whose path ends in suffix.
func NewSyncGate(suffix string) *SyncGate {
	return &SyncGate{suffix: suffix, entered: make(chan struct{}), release: make(chan struct{})}
}

// Arm makes the next fsync of a matching file the one held.
func (g *SyncGate) Arm() { g.armed.Store(true) }

// Entered receives once the held fsync has started.
func (g *SyncGate) Entered() <-chan struct{} { return g.entered }

// Release lets the held fsync return its error; it blocks until an fsync
// is held.
func (g *SyncGate) Release() { g.release <- struct{}{} }

// TryRelease releases a held fsync if one waits, and reports whether one
// did: a test's cleanup calls it so that a failed check never leaves the
// fsync held and Close waiting for it.
func (g *SyncGate) TryRelease() bool {
	select {
	case g.release <- struct{}{}:
		return true
	default:
		return false
	}
}

// MaybeError holds and then fails the first fsync of a matching file after
// Arm.
func (g *SyncGate) MaybeError(op Op) error {
	if op.Kind != OpSync || !strings.HasSuffix(op.Path, g.suffix) || !g.armed.Load() || !g.held.CompareAndSwap(false, true) {
		return nil
	}
	g.entered <- struct{}{}
	<-g.release
	return InjectedError(op)
}
