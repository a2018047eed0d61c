package vfs

import (
	"path/filepath"
	"sync"
)

// Dirs maps test directories to the MemFS that currently holds each, so that
// an engine test's open function and its crash hook agree on "the
// filesystem of dir": open asks FS(dir) each time it opens, and Crash
// replaces dir's MemFS with its crash clone, so the next open sees what
// survived. The zero value is ready to use; it is safe for concurrent use.
type Dirs struct {
	mu sync.Mutex
	m  map[string]*MemFS
}

// FS returns the MemFS currently holding dir. On first use for dir it
// creates a new MemFS in which dir exists and is durable (as a directory the
// test made long ago would be).
func (d *Dirs) FS(dir string) *MemFS {
	dir = filepath.Clean(dir)
	d.mu.Lock()
	defer d.mu.Unlock()
	if fs, ok := d.m[dir]; ok {
		return fs
	}
	fs := NewMem()
	if err := fs.MkdirAllSynced(dir); err != nil {
		// A fresh MemFS holds nothing that could be in the way.
		panic("vfs: Dirs: " + err.Error())
	}
	if d.m == nil {
		d.m = make(map[string]*MemFS)
	}
	d.m[dir] = fs
	return fs
}

// Crash simulates a power loss under dir: it replaces dir's MemFS with its
// CrashClone(o) and returns the clone. The engine open on the old MemFS is
// to be abandoned, not closed; it may keep writing there unseen.
func (d *Dirs) Crash(dir string, o CrashOptions) *MemFS {
	old := d.FS(dir)
	crashed := old.CrashClone(o)
	d.mu.Lock()
	d.m[filepath.Clean(dir)] = crashed
	d.mu.Unlock()
	return crashed
}
