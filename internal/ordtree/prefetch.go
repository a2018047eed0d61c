package ordtree

import "unsafe"

// MaxBatch is the most keys GetBatch looks up together.
const MaxBatch = 16

// GetBatch looks up keys (at most MaxBatch of them; the rest are ignored)
// as Get would and stores keys[i]'s payload in vals[i] and whether it is
// present in found[i]. It walks the keys down the tree together, one level
// at a time: every key's search in its node at a level before any at the
// next, each child prefetched (PrefetchRange: its header and prefixes) as
// soon as it is known. A lone Get waits for each node's cache miss in turn;
// here the misses of the different keys' nodes at a level are in flight at
// once, and the searches that follow find their lines in cache. It is meant
// as a hint before the keys' Gets (the engines' Prefetch), and costs a
// search per key and level as Get does.
func (v View[V]) GetBatch(keys []string, vals []V, found []bool) {
	var ks [MaxBatch]skey
	var ns [MaxBatch]*Node[V]
	m := min(len(keys), MaxBatch)
	for i := range m {
		ks[i] = makeSKey(keys[i])
		ns[i] = v.root
		found[i] = false
	}
	if v.root == nil {
		return
	}
	for left := m; left > 0; {
		for i, n := range ns[:m] {
			if n == nil {
				continue
			}
			j, f := n.search(&ks[i])
			switch {
			case f:
				vals[i], found[i] = n.vals[j], true
				ns[i] = nil
				left--
			case n.leaf():
				ns[i] = nil
				left--
			default:
				c := n.kids()[j]
				PrefetchRange(unsafe.Pointer(c), int(unsafe.Offsetof(c.klens)))
				ns[i] = c
			}
		}
	}
}

// PrefetchRange asks the CPU to bring the cache lines holding the n bytes
// from p into its caches, without waiting for them: a hint, which cannot
// fault (an address that is not mapped is dropped) and changes nothing
// visible. On amd64 it is one PREFETCHT0 a 64-byte line; elsewhere it does
// nothing.
func PrefetchRange(p unsafe.Pointer, n int) {
	if n <= 0 {
		return
	}
	prefetchLines(lineSpan(uintptr(p), n))
}

// lineSpan returns the first 64-byte line of the n > 0 bytes at a, and how
// many lines they touch.
func lineSpan(a uintptr, n int) (uintptr, int) {
	return a &^ 63, int((a+uintptr(n)-1)>>6 - a>>6 + 1)
}
