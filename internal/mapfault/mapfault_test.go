//go:build unix

package mapfault

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// sink keeps the compiler from dropping a read the test needs done.
var sink byte

// recovered runs f with panics on faults and returns what it panicked
// with.
func recovered(f func()) (e any) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { e = recover() }()
	f()
	return nil
}

// TestIs: a read past the end of a mapped file that was truncated after it
// was mapped (SIGBUS) is a fault; an index out of range (a runtime.Error
// without an address), a string and an error are not.
func TestIs(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(name, make([]byte, 3*os.Getpagesize()), 0o600))
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 3*os.Getpagesize(), syscall.PROT_READ, syscall.MAP_SHARED)
	require.NoError(t, err)
	defer syscall.Munmap(m) //nolint:errcheck
	require.NoError(t, os.Truncate(name, 0))

	e := recovered(func() { sink = m[2*os.Getpagesize()] })
	require.NotNil(t, e, "the read past the truncation did not fault")
	require.True(t, Is(e), "%T %v", e, e)

	var s []int
	i := 1
	e = recovered(func() { _ = s[i] })
	_, isRT := e.(runtime.Error)
	require.True(t, isRT, "%T", e)
	require.False(t, Is(e), "an index out of range is not a fault")
	require.False(t, Is("a string panic"))
	require.False(t, Is(errors.New("an error")))
	require.False(t, Is(nil))
}
