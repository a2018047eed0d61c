// Package enginetest is the conformance suite every logkv engine passes, in
// the spirit of testing/fstest.TestFS.
package enginetest

import (
	"testing"

	"github.com/logkv/logkv"
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
	// the crash-simulating filesystem of internal/vfs.
	Crash func(t *testing.T, e logkv.Engine, dir string)
}

// Run runs the conformance suite against the engine opened by open.
func Run(t *testing.T, open OpenFunc, caps Capabilities) {
	t.Skip("enginetest: suite not written yet")
}
