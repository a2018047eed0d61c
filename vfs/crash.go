package vfs

import (
	"maps"
	"math/rand/v2"
	"slices"
)

// DataLoss says what a crash does to file data written but not synced.
type DataLoss int

const (
	// DropUnsyncedData: every file reverts to its content as of its last
	// File.Sync (empty if never synced). The default.
	DropUnsyncedData DataLoss = iota
	// TornUnsyncedData: each file independently loses all of its unsynced
	// changes (probability 1/3), keeps all of them, including an unsynced
	// Truncate (1/3), or keeps a uniformly random prefix of its unsynced bytes
	// (1/3): a torn tail, as when the page cache wrote back only the first
	// pages. Needs CrashOptions.Rand.
	TornUnsyncedData
	// ZeroedUnsyncedData: as TornUnsyncedData, but the kept unsynced bytes
	// read as zeros from a random offset among them to their end: the
	// file's new size reached the disk before its data did, as XFS and
	// ext4 in writeback mode leave it. Logs must not take the zeros for
	// records. Needs CrashOptions.Rand.
	ZeroedUnsyncedData
	// CorruptUnsyncedData: as TornUnsyncedData, then damages the kept
	// unsynced bytes of each file that kept any: one to four times, it flips
	// one bit of a random byte or zeroes a random run of up to 16 bytes, as a
	// torn sector would. Bytes that were synced and not overwritten since are
	// never damaged. Needs CrashOptions.Rand.
	CorruptUnsyncedData
)

// EntryLoss says what a crash does to directory entries created, renamed or
// removed but not made durable by SyncDir.
type EntryLoss int

const (
	// DropUnsyncedEntries: every directory reverts to its entries as of its
	// last SyncDir. A file created since vanishes, a rename is undone, a
	// removed file comes back with its durable content. The default.
	DropUnsyncedEntries EntryLoss = iota
	// KeepEntryPrefix: a uniformly random prefix, in the order they happened,
	// of the unsynced entry changes survives, as in a metadata journal that
	// commits in order. Each change is atomic: a rename survives whole or not
	// at all within a directory. Needs CrashOptions.Rand.
	KeepEntryPrefix
)

// CrashOptions says what a simulated power loss keeps of what was not
// durable. The zero value is the deterministic worst case: all unsynced data
// and all unsynced directory entries are lost.
type CrashOptions struct {
	// Rand drives every random choice; seed it to make a failing crash
	// reproducible. Every Data mode but DropUnsyncedData needs it, and so
	// does KeepEntryPrefix: CrashClone panics without it rather than
	// silently test less than asked.
	Rand *rand.Rand
	// Data is what happens to unsynced file data.
	Data DataLoss
	// Entries is what happens to unsynced directory entries.
	Entries EntryLoss
}

// CrashClone returns a new MemFS holding what would survive a power loss at
// this instant, per o. fs itself is not changed and keeps working: an engine
// abandoned on it may go on writing there, unseen by the clone. The clone
// holds no locks and no open files, and everything in it is durable.
//
// Guarantees, whatever o says:
//   - A file's bytes that were synced (File.Sync) and not overwritten or
//     truncated since survive exactly, if its entry survives.
//   - A directory entry made durable by SyncDir of its directory survives,
//     if the directory itself survives (its own entry is durable in its
//     parent, up to the root).
//   - Nothing that never existed appears: kept unsynced bytes are bytes that
//     were written (or, with ZeroedUnsyncedData and CorruptUnsyncedData,
//     zeroed or damaged copies of them, and only in the unsynced region).
//   - With the same Rand seed and the same history, the clone is the same.
func (fs *MemFS) CrashClone(o CrashOptions) *MemFS {
	if o.Rand == nil && (o.Data != DropUnsyncedData || o.Entries != DropUnsyncedEntries) {
		panic("vfs: CrashOptions needs a Rand for a random Data or Entries mode")
	}
	fs.mu.RLock()
	defer fs.mu.RUnlock()

	// The durable entries of each directory: its synced entries, with a
	// prefix of the journal applied when the options keep one.
	keep := 0
	if o.Entries == KeepEntryPrefix {
		keep = o.Rand.IntN(len(fs.journal) + 1)
	}
	override := make(map[*memNode]map[string]*memNode)
	for _, rec := range fs.journal[:keep] {
		for _, c := range rec.changes[:rec.n] {
			m, ok := override[c.dir]
			if !ok {
				m = maps.Clone(c.dir.syncedChildren)
				override[c.dir] = m
			}
			if c.node == nil {
				delete(m, c.name)
			} else {
				m[c.name] = c.node
			}
		}
	}
	c := &cloner{o: o, override: override, clones: make(map[*memNode]*memNode)}
	c.placeDirs(fs.root)
	return &MemFS{root: c.dir(fs.root), locked: make(map[*memNode]bool)}
}

// cloner copies the durable view of a tree. clones maps original nodes to
// their copies, so that a file reachable under two names (renamed between
// directories, with only the destination synced) is one file, as a hard
// link would be.
type cloner struct {
	o        CrashOptions
	override map[*memNode]map[string]*memNode
	clones   map[*memNode]*memNode
	place    map[*memNode]edge
}

// edge is a directory entry: the directory and the name in it.
type edge struct {
	dir  *memNode
	name string
}

// entries returns the durable entries of d.
func (c *cloner) entries(d *memNode) map[string]*memNode {
	if m, ok := c.override[d]; ok {
		return m
	}
	return d.syncedChildren
}

// placeDirs picks the one entry under which each directory survives. The
// durable view can list a directory twice when it was renamed between
// directories and only one of them was synced, and no filesystem would
// leave a directory with two names: keep the entry where the directory is
// now if that one is durable, as a journaling filesystem that commits a
// rename whole would; else the first in name order.
func (c *cloner) placeDirs(root *memNode) {
	now := make(map[*memNode]edge)
	var walkNow func(d *memNode)
	walkNow = func(d *memNode) {
		for name, child := range d.children {
			if child.isDir {
				now[child] = edge{d, name}
				walkNow(child)
			}
		}
	}
	walkNow(root)

	seen := map[*memNode][]edge{root: nil}
	var order []*memNode
	var walk func(d *memNode)
	walk = func(d *memNode) {
		entries := c.entries(d)
		for _, name := range slices.Sorted(maps.Keys(entries)) {
			child := entries[name]
			if !child.isDir {
				continue
			}
			es, visited := seen[child]
			seen[child] = append(es, edge{d, name})
			if !visited {
				order = append(order, child)
				walk(child)
			}
		}
	}
	walk(root)

	c.place = make(map[*memNode]edge, len(order))
	for _, n := range order {
		es := seen[n]
		c.place[n] = es[0]
		if e, ok := now[n]; ok && slices.Contains(es, e) {
			c.place[n] = e
		}
	}
}

func (c *cloner) dir(d *memNode) *memNode {
	nd := newDir()
	nd.modTime = d.modTime
	c.clones[d] = nd
	entries := c.entries(d)
	// Sorted, so that Rand is consumed in the same order every time.
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		child := entries[name]
		done, cloned := c.clones[child]
		switch {
		case child.isDir && (cloned || c.place[child] != edge{d, name}):
			// Not where this directory survives (cloned is a guard against
			// cycles; placement already prevents them from the root).
		case cloned:
			nd.children[name] = done
		case child.isDir:
			nd.children[name] = c.dir(child)
		default:
			nd.children[name] = c.file(child)
		}
	}
	nd.syncedChildren = maps.Clone(nd.children)
	return nd
}

func (c *cloner) file(n *memNode) *memNode {
	nf := newFile()
	nf.modTime = n.modTime
	c.clones[n] = nf
	nf.data = c.content(n)
	nf.synced = slices.Clone(nf.data)
	return nf
}

// content returns what survives of n's content.
func (c *cloner) content(n *memNode) []byte {
	if !n.dirty || c.o.Data == DropUnsyncedData {
		return slices.Clone(n.synced)
	}
	r := c.o.Rand
	switch r.IntN(3) {
	case 0: // all unsynced changes lost
		return slices.Clone(n.synced)
	case 1: // all kept
		b := slices.Clone(n.data)
		c.spoil(b[n.syncedPrefix():])
		return b
	}
	// A prefix of the unsynced bytes landed over the durable content.
	cp := int(n.syncedPrefix())
	k := r.IntN(len(n.data) - cp + 1)
	b := make([]byte, max(cp+k, len(n.synced)))
	copy(b, n.data[:cp+k])
	if len(n.synced) > cp+k {
		copy(b[cp+k:], n.synced[cp+k:])
	}
	c.spoil(b[cp : cp+k])
	return b
}

// spoil zeroes or damages kept unsynced bytes, as the Data mode asks.
func (c *cloner) spoil(b []byte) {
	if len(b) == 0 {
		return
	}
	switch c.o.Data {
	case ZeroedUnsyncedData:
		clear(b[c.o.Rand.IntN(len(b)):])
	case CorruptUnsyncedData:
		damage(c.o.Rand, b)
	}
}

// damage flips a bit or zeroes a short run in b, one to four times.
func damage(r *rand.Rand, b []byte) {
	for range 1 + r.IntN(4) {
		i := r.IntN(len(b))
		if r.IntN(2) == 0 {
			b[i] ^= 1 << r.IntN(8)
		} else {
			clear(b[i:min(len(b), i+1+r.IntN(16))])
		}
	}
}
