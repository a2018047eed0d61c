//go:build !amd64

package ordtree

// prefetchLines does nothing: there is no portable prefetch, and the loads
// that would stand in for one would wait for their lines.
func prefetchLines(a uintptr, n int) {}
