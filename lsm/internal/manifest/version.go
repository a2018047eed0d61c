package manifest

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/logkv/logkv/lsm/internal/base"
)

// Version is an immutable set of SSTables by level: the LSM tree's shape at
// one point. L0 files may overlap and are ordered oldest first (by largest
// sequence number); files of L1 and below are disjoint and ordered by key.
type Version struct {
	Levels [NumLevels][]*FileMeta
	refs   atomic.Int32
}

// Ref takes a reference.
func (v *Version) Ref() { v.refs.Add(1) }

// Unref drops a reference and reports whether it was the last.
func (v *Version) Unref() bool {
	n := v.refs.Add(-1)
	if n < 0 {
		panic("manifest: version unreferenced too often")
	}
	return n == 0
}

// UserKey range helpers.
func smallestUser(f *FileMeta) []byte { return base.UserKey(f.Smallest) }
func largestUser(f *FileMeta) []byte  { return base.UserKey(f.Largest) }

// Apply returns the version that results from applying e to v. v is not
// changed. It checks that deleted files exist and that the levels below L0
// stay disjoint.
func (v *Version) Apply(e *Edit) (*Version, error) {
	nv := &Version{}
	deleted := make(map[uint64]int, len(e.Deleted))
	for _, d := range e.Deleted {
		deleted[d.Num] = d.Level
	}
	for lvl := range v.Levels {
		for _, f := range v.Levels[lvl] {
			if dl, ok := deleted[f.Num]; ok && dl == lvl {
				delete(deleted, f.Num)
				continue
			}
			nv.Levels[lvl] = append(nv.Levels[lvl], f)
		}
	}
	if len(deleted) != 0 {
		for num, lvl := range deleted {
			return nil, fmt.Errorf("manifest: edit deletes file %d from L%d, which does not hold it", num, lvl)
		}
	}
	for _, a := range e.Added {
		nv.Levels[a.Level] = append(nv.Levels[a.Level], a.Meta)
	}
	slices.SortStableFunc(nv.Levels[0], func(a, b *FileMeta) int {
		if a.LargestSeq != b.LargestSeq {
			if a.LargestSeq < b.LargestSeq {
				return -1
			}
			return 1
		}
		if a.Num < b.Num {
			return -1
		} else if a.Num > b.Num {
			return 1
		}
		return 0
	})
	for lvl := 1; lvl < NumLevels; lvl++ {
		files := nv.Levels[lvl]
		slices.SortFunc(files, func(a, b *FileMeta) int { return base.Compare(a.Smallest, b.Smallest) })
		for i := 1; i < len(files); i++ {
			if bytes.Compare(largestUser(files[i-1]), smallestUser(files[i])) >= 0 {
				return nil, fmt.Errorf("manifest: L%d files %d and %d overlap", lvl, files[i-1].Num, files[i].Num)
			}
		}
	}
	return nv, nil
}

// Overlaps returns the files of level whose user key range intersects
// [smallest, largest] (user keys; nil means unbounded).
func (v *Version) Overlaps(level int, smallest, largest []byte) []*FileMeta {
	var out []*FileMeta
	files := v.Levels[level]
	if level == 0 {
		for _, f := range files {
			if (largest == nil || bytes.Compare(smallestUser(f), largest) <= 0) &&
				(smallest == nil || bytes.Compare(largestUser(f), smallest) >= 0) {
				out = append(out, f)
			}
		}
		return out
	}
	i := 0
	if smallest != nil {
		i = SearchLevel(files, smallest)
	}
	for ; i < len(files); i++ {
		if largest != nil && bytes.Compare(smallestUser(files[i]), largest) > 0 {
			break
		}
		out = append(out, files[i])
	}
	return out
}

// SearchLevel returns the index of the first file of a sorted, disjoint
// level whose largest user key is >= ukey (len(files) if none).
func SearchLevel(files []*FileMeta, ukey []byte) int {
	lo, hi := 0, len(files)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(largestUser(files[m]), ukey) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// LevelSize returns the total size of a level's files.
func (v *Version) LevelSize(level int) uint64 {
	var n uint64
	for _, f := range v.Levels[level] {
		n += f.Size
	}
	return n
}

// Files calls fn for every file of every level.
func (v *Version) Files(fn func(level int, f *FileMeta)) {
	for lvl, files := range v.Levels {
		for _, f := range files {
			fn(lvl, f)
		}
	}
}

// Snapshot returns an edit that recreates v from nothing, for the first
// record of a new manifest.
func (v *Version) Snapshot() *Edit {
	e := &Edit{}
	v.Files(func(level int, f *FileMeta) { e.Added = append(e.Added, NewFile{Level: level, Meta: f}) })
	return e
}
