package ordtree

import (
	"fmt"
	"unsafe"
)

// Arena is memory outside the Go heap for a tree's nodes and for whatever
// its payloads point at (the memory engine's key and value records).
//
// # Why
//
// The garbage collector lets the heap grow to its live size times 1 +
// GOGC/100 before it collects, so a process whose heap is mostly stored data
// holds about twice that data in RSS; and it marks every live object each
// cycle. Memory the Go runtime does not manage counts for neither: an Arena
// maps its chunks with mmap, so a store of 1M 117-byte records costs the
// records and its nodes, not twice that, and the collector scans none of it.
// The price is manual freeing, which copy-on-write makes subtle: a block a
// writer replaces may still be read by an open view. So a block is freed
// at once only when no view can reach it (Free); otherwise the owner
// retires it with the tree's current version (Retire), and Reclaim frees
// the retired blocks once every view older than that version is closed.
//
// # Layout
//
// Blocks of at most maxSmall bytes are cut, 8-byte aligned, from chunks by
// bumping an offset; a freed block goes on a free list of its size (rounded
// up to 8 bytes) and is handed out again for that size only. Chunks start at
// 64 KiB and double up to 4 MiB, so a small tree maps little. A larger
// block is a mapping of its own, unmapped when freed. Memory is never given
// back to the system otherwise: like a malloc, the arena keeps freed blocks
// for reuse.
//
// Nothing in arena memory may point into the Go heap (the collector does
// not see it): a tree in an arena keeps only payloads that point into the
// same arena or nowhere, and takes keys only by SetOwned. Under the race
// detector, and on systems without mmap, chunks are Go byte slices the Arena
// keeps alive (the race detector then sees every access, and freed blocks
// are overwritten with a pattern so that a read after free shows up as
// corrupt data in tests).
//
// An Arena is not safe for concurrent use: its owner's lock guards it, as
// it guards the tree.
type Arena struct {
	chunk  []byte // the chunk blocks are cut from
	off    int    // the chunk's first unused byte
	chunks [][]byte
	free   [maxSmall/8 + 1]unsafe.Pointer // free lists by size/8, linked through their first word
	large  map[unsafe.Pointer][]byte

	retired []retiredBlock // in order of version

	mapped  int64 // bytes in chunks and large blocks
	inUse   int64 // bytes allocated and not yet freed (retired blocks count)
	retBulk int64 // bytes retired, waiting for views to close
}

type retiredBlock struct {
	p    unsafe.Pointer
	size int
	ver  uint64
}

const (
	maxSmall      = 32 << 10
	minChunk      = 64 << 10
	maxChunk      = 4 << 20
	poisonPattern = 0xdb
)

// NewArena returns an empty arena.
func NewArena() *Arena { return &Arena{large: map[unsafe.Pointer][]byte{}} }

// ArenaStats are an arena's gauges, for metrics.
type ArenaStats struct {
	Mapped  int64 // bytes mapped: what the arena adds to the process's memory at most
	InUse   int64 // bytes in allocated blocks, retired ones included
	Retired int64 // bytes retired and waiting for open views to close
}

// Stats returns the arena's gauges.
func (a *Arena) Stats() ArenaStats {
	return ArenaStats{Mapped: a.mapped, InUse: a.inUse, Retired: a.retBulk}
}

func roundSize(size int) int { return (size + 7) &^ 7 }

// Alloc returns size zeroed bytes, 8-byte aligned. It panics if the system
// refuses memory, as the Go runtime does when it runs out.
func (a *Arena) Alloc(size int) unsafe.Pointer {
	c := roundSize(max(size, 8))
	a.inUse += int64(c)
	if c > maxSmall {
		b := mapMemory(c)
		a.mapped += int64(len(b))
		p := unsafe.Pointer(&b[0])
		a.large[p] = b
		return p
	}
	if p := a.free[c>>3]; p != nil {
		a.free[c>>3] = *(*unsafe.Pointer)(p)
		clear(unsafe.Slice((*byte)(p), c))
		return p
	}
	if a.off+c > len(a.chunk) {
		// The old chunk's rest (less than maxSmall) is lost; chunks grow so
		// that it is a small part of them.
		size := minChunk
		if len(a.chunk) > 0 {
			size = min(2*len(a.chunk), maxChunk)
		}
		a.chunk, a.off = mapMemory(size), 0
		a.chunks = append(a.chunks, a.chunk)
		a.mapped += int64(size)
	}
	p := unsafe.Pointer(&a.chunk[a.off])
	a.off += c
	return p
}

// Free returns a block of size bytes that nothing can read any more.
func (a *Arena) Free(p unsafe.Pointer, size int) {
	c := roundSize(max(size, 8))
	a.inUse -= int64(c)
	if c > maxSmall {
		b, ok := a.large[p]
		if !ok {
			panic(fmt.Sprintf("ordtree: arena: freeing %p, which is no large block", p))
		}
		delete(a.large, p)
		a.mapped -= int64(len(b))
		unmapMemory(b)
		return
	}
	if poisonFreed {
		b := unsafe.Slice((*byte)(p), c)
		for i := range b {
			b[i] = poisonPattern
		}
	}
	*(*unsafe.Pointer)(p) = a.free[c>>3]
	a.free[c>>3] = p
}

// Retire frees a block of size bytes once no view older than ver is open
// (see Reclaim): ver is the tree's Version when the block was replaced.
func (a *Arena) Retire(p unsafe.Pointer, size int, ver uint64) {
	a.retired = append(a.retired, retiredBlock{p: p, size: size, ver: ver})
	a.retBulk += int64(roundSize(max(size, 8)))
}

// Reclaim frees the retired blocks no open view can read: those retired at
// versions up to oldest, the version of the oldest open view (pass
// math.MaxUint64 when none is open). A view taken at version v reads
// blocks that were in the tree then; a block retired at version r > v may
// be one of them, one retired at r <= v is not.
func (a *Arena) Reclaim(oldest uint64) {
	i := 0
	for ; i < len(a.retired) && a.retired[i].ver <= oldest; i++ {
		r := a.retired[i]
		a.retBulk -= int64(roundSize(max(r.size, 8)))
		a.Free(r.p, r.size)
	}
	if i == 0 {
		return
	}
	n := copy(a.retired, a.retired[i:])
	clear(a.retired[n:])
	a.retired = a.retired[:n]
	if cap(a.retired) > 1024 && n < cap(a.retired)/4 {
		a.retired = append([]retiredBlock(nil), a.retired...) // give a burst's backlog back
	}
}

// Destroy unmaps all of the arena's memory. Nothing may read it afterwards:
// the owner calls it once the tree and every view and record are gone.
func (a *Arena) Destroy() {
	for _, c := range a.chunks {
		unmapMemory(c)
	}
	for _, b := range a.large {
		unmapMemory(b)
	}
	*a = Arena{large: map[unsafe.Pointer][]byte{}}
}
