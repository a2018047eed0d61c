// Package mapfault recognises the panic a read of a memory-mapped file
// raises when the kernel cannot supply a page of it (the file was truncated
// after it was mapped, or the disk failed the page's read), once the
// goroutine asked for a panic instead of a crash with
// debug.SetPanicOnFault. lsm's tables and bitcask's data files are read
// through such mappings.
package mapfault

import "runtime"

// Is reports whether e, a value recovered from a panic, is a memory fault:
// a runtime.Error with an Addr method, the panic debug.SetPanicOnFault makes
// of a SIGBUS or SIGSEGV. recover works only when the deferred function
// calls it itself, so a caller recovers and asks Is, and panics again with
// anything else.
func Is(e any) bool {
	re, ok := e.(runtime.Error)
	if !ok {
		return false
	}
	_, ok = re.(interface{ Addr() uintptr })
	return ok
}
