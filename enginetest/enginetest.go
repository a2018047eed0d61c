package enginetest

import (
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// OpenFunc opens (or reopens) the engine under test in dir. It fails t on
// error.
type OpenFunc func(t *testing.T, dir string) logkv.Engine

// Capabilities says which parts of the contract beyond the common core an
// engine offers, so the suite tests them.
type Capabilities struct {
	// Durable: what was written survives Close and a reopen of the same dir.
	Durable bool

	// Crash, when non-nil, simulates a power loss under e, open in dir: e is
	// abandoned without Close, and dir's files revert to what was durable
	// (synced data and synced directory entries, perhaps with a torn tail).
	// Afterwards open(t, dir) opens what survived. Engines implement it with
	// the crash-simulating filesystem of package vfs.
	//
	// The suite never touches e, or any snapshot or iterator of it, after
	// calling Crash: releasing what e holds is up to Crash.
	Crash func(t *testing.T, e logkv.Engine, dir string)
}

// Run runs the conformance suite against the engine opened by open. Every
// point of the contract is its own subtest (see the package documentation for
// the list), each on a fresh engine in its own t.TempDir, so a failure names
// what broke. Run calls RunModel with default options as its "model" subtest.
func Run(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Run("basic", func(t *testing.T) { testBasic(t, open, caps) })
	t.Run("limits", func(t *testing.T) { testLimits(t, open, caps) })
	t.Run("batch", func(t *testing.T) { testBatch(t, open, caps) })
	t.Run("iter", func(t *testing.T) { testIter(t, open, caps) })
	t.Run("snapshot", func(t *testing.T) { testSnapshot(t, open, caps) })
	t.Run("seq", func(t *testing.T) { testSeq(t, open, caps) })
	t.Run("metrics", func(t *testing.T) { testMetrics(t, open, caps) })
	t.Run("closed", func(t *testing.T) { testClosed(t, open, caps) })
	t.Run("append-get", func(t *testing.T) { testAppendGet(t, open, caps) })
	t.Run("prefetch", func(t *testing.T) { testPrefetch(t, open, caps) })
	t.Run("persist", func(t *testing.T) {
		if !caps.Durable {
			t.Skip("engine is not Durable")
		}
		testPersist(t, open, caps)
	})
	t.Run("crash", func(t *testing.T) {
		if caps.Crash == nil {
			t.Skip("engine has no Crash")
		}
		testCrash(t, open, caps)
	})
	t.Run("concurrent", func(t *testing.T) { testConcurrent(t, open, caps) })
	t.Run("model", func(t *testing.T) { RunModel(t, open, caps, ModelOptions{}) })
}

// harness holds the engine under test in one subtest: it opens it in a fresh
// directory, reopens or crashes it, and closes it when the subtest ends.
type harness struct {
	t    *testing.T
	open OpenFunc
	caps Capabilities
	dir  string
	e    logkv.Engine
}

func newHarness(t *testing.T, open OpenFunc, caps Capabilities) *harness {
	t.Helper()
	h := &harness{t: t, open: open, caps: caps, dir: t.TempDir()}
	h.e = open(t, h.dir)
	require.NotNil(t, h.e, "OpenFunc returned a nil engine")
	t.Cleanup(func() {
		if h.e != nil {
			// Tests may have closed it already; a second Close is allowed.
			_ = h.e.Close()
		}
	})
	return h
}

// reopen closes the engine cleanly and opens the same directory again.
func (h *harness) reopen() {
	h.t.Helper()
	e := h.e
	h.e = nil
	require.NoError(h.t, e.Close(), "Close before reopen")
	h.e = h.open(h.t, h.dir)
	require.NotNil(h.t, h.e, "OpenFunc returned a nil engine on reopen")
}

// crash abandons the engine through caps.Crash and opens what survived.
func (h *harness) crash() {
	h.t.Helper()
	e := h.e
	h.e = nil
	h.caps.Crash(h.t, e, h.dir)
	h.e = h.open(h.t, h.dir)
	require.NotNil(h.t, h.e, "OpenFunc returned a nil engine after Crash")
}

// requireClosedOK checks the result of a second (or later) Close: the
// contract makes it safe; the suite accepts nil or ErrClosed.
func requireClosedOK(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		require.ErrorIs(t, err, logkv.ErrClosed, "%s: a repeated Close may return only nil or ErrClosed", what)
	}
}
