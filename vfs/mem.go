package vfs

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is an in-memory FS that tracks what is durable, so that CrashClone
// can produce what a power loss at any instant would leave behind. Create it
// with NewMem. It is safe for concurrent use; all operations on one MemFS
// (and on the Files it opened) are serialized by one lock, which makes every
// operation atomic with respect to CrashClone.
//
// Paths are cleaned with filepath.Clean; relative paths are taken relative
// to the root, so "db" and "/db" name the same directory.
//
// Errors follow the operating system's: *os.PathError or *os.LinkError
// wrapping a syscall.Errno, so errors.Is(err, os.ErrNotExist) holds for a
// missing file and errors.Is(err, os.ErrExist) for a name that is taken by
// the wrong kind of entry (a file where a directory is wanted or the reverse,
// or a non-empty directory in the way). Using a closed File returns an error
// wrapping os.ErrClosed.
type MemFS struct {
	mu   sync.RWMutex
	root *memNode
	// journal holds the directory-entry changes not yet made durable by
	// SyncDir, oldest first. Each record is one atomic operation (a rename
	// changes two entries at once).
	journal []journalRecord
	// locked holds the files Lock holds. Locks follow the file (inode), as
	// flock(2) does, not its name.
	locked map[*memNode]bool
}

var _ FS = (*MemFS)(nil)

// NewMem returns an empty MemFS holding only its root directory, which is
// durable.
func NewMem() *MemFS {
	return &MemFS{root: newDir(), locked: make(map[*memNode]bool)}
}

// memNode is a file or a directory (an inode). A node outlives its names:
// one removed from its directory stays reachable from the directory's durable
// entries, and from open Files, until both let go of it.
type memNode struct {
	isDir   bool
	modTime time.Time

	// Files. data is the current content, synced the durable content (never
	// sharing memory with data). When dirty is false they are equal; when it
	// is true they agree on their first dirtyFrom bytes (dirtyFrom may exceed
	// the length of either; clamp it before use).
	data      []byte
	synced    []byte
	dirty     bool
	dirtyFrom int64

	// Directories: the current entries, and the durable ones as of the last
	// SyncDir.
	children       map[string]*memNode
	syncedChildren map[string]*memNode
}

func newDir() *memNode {
	return &memNode{
		isDir:          true,
		modTime:        time.Now(),
		children:       make(map[string]*memNode),
		syncedChildren: make(map[string]*memNode),
	}
}

func newFile() *memNode { return &memNode{modTime: time.Now()} }

// markDirty records that the content from offset from on may differ from
// the durable content.
func (n *memNode) markDirty(from int64) {
	if !n.dirty || from < n.dirtyFrom {
		n.dirtyFrom = from
	}
	n.dirty = true
	n.modTime = time.Now()
}

// syncedPrefix returns how many leading bytes data and synced share by
// construction.
func (n *memNode) syncedPrefix() int64 {
	if !n.dirty {
		return int64(len(n.data))
	}
	return min(n.dirtyFrom, int64(len(n.data)), int64(len(n.synced)))
}

// sync makes the file's current content durable, copying only what changed
// since the last sync (appends cost what they append).
func (n *memNode) sync() {
	if !n.dirty {
		return
	}
	c := n.syncedPrefix()
	n.synced = append(growCap(n.synced[:c], len(n.data)), n.data[c:]...)
	n.dirty = false
}

// journalRecord is one atomic change to directory entries: one or two entry
// changes (two for a rename).
type journalRecord struct {
	changes [2]entryChange
	n       int
}

// entryChange sets dir's entry name to node, or removes it when node is
// nil.
type entryChange struct {
	dir  *memNode
	name string
	node *memNode
}

// setEntries applies the changes to the current entries and journals them
// as one record.
func (fs *MemFS) setEntries(changes ...entryChange) {
	var rec journalRecord
	for _, c := range changes {
		if c.node == nil {
			delete(c.dir.children, c.name)
		} else {
			c.dir.children[c.name] = c.node
		}
		c.dir.modTime = time.Now()
		rec.changes[rec.n] = c
		rec.n++
	}
	fs.journal = append(fs.journal, rec)
}

// split cleans name and returns its components ("" or "/" is the root,
// with no components).
func split(name string) []string {
	// Rooted before cleaning, so that ".." cannot climb above the root.
	name = filepath.ToSlash(filepath.Clean("/" + name))
	name = strings.Trim(name, "/")
	if name == "" || name == "." {
		return nil
	}
	return strings.Split(name, "/")
}

func pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: name, Err: err}
}

// errno wraps an errno so that it also matches os.ErrExist, for the
// conflicts where the OS's errno (EISDIR, ENOTDIR, ENOTEMPTY) does not.
type errno struct{ syscall.Errno }

func (e errno) Is(target error) bool {
	return target == os.ErrExist || target == e.Errno || e.Errno.Is(target)
}

func (e errno) Unwrap() error { return e.Errno }

var (
	errIsDir    = errno{syscall.EISDIR}
	errNotDir   = errno{syscall.ENOTDIR}
	errNotEmpty = errno{syscall.ENOTEMPTY}
)

// lookupDir walks to the directory at comps. It returns the error (without
// op and path) when a component is missing or not a directory.
func (fs *MemFS) lookupDir(comps []string) (*memNode, error) {
	d := fs.root
	for _, c := range comps {
		child, ok := d.children[c]
		if !ok {
			return nil, syscall.ENOENT
		}
		if !child.isDir {
			return nil, errNotDir
		}
		d = child
	}
	return d, nil
}

// lookupParent returns the parent directory of name and name's last
// component. The root has no parent: it returns an EINVAL-like error.
func (fs *MemFS) lookupParent(name string) (*memNode, string, error) {
	if name == "" {
		return nil, "", syscall.ENOENT
	}
	comps := split(name)
	if len(comps) == 0 {
		return nil, "", syscall.EINVAL
	}
	d, err := fs.lookupDir(comps[:len(comps)-1])
	if err != nil {
		return nil, "", err
	}
	return d, comps[len(comps)-1], nil
}

// lookup returns the node at name.
func (fs *MemFS) lookup(name string) (*memNode, error) {
	if name == "" {
		return nil, syscall.ENOENT
	}
	comps := split(name)
	if len(comps) == 0 {
		return fs.root, nil
	}
	d, err := fs.lookupDir(comps[:len(comps)-1])
	if err != nil {
		return nil, err
	}
	n, ok := d.children[comps[len(comps)-1]]
	if !ok {
		return nil, syscall.ENOENT
	}
	return n, nil
}

// Create creates or truncates the named file, open for reading and writing.
// A new file's directory entry is durable only after SyncDir of its
// directory; truncating an existing file is durable after File.Sync.
func (fs *MemFS) Create(name string) (File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.lookupParent(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	n, ok := dir.children[base]
	switch {
	case ok && n.isDir:
		return nil, pathErr("open", name, errIsDir)
	case ok:
		if len(n.data) > 0 {
			n.markDirty(0)
			n.data = n.data[:0]
		}
	default:
		n = newFile()
		fs.setEntries(entryChange{dir: dir, name: base, node: n})
	}
	return &memFile{fs: fs, n: n, name: name, readable: true, writable: true}, nil
}

// Open opens the named file read-only.
func (fs *MemFS) Open(name string) (File, error) {
	return fs.open(name, "open", false)
}

// OpenReadWrite opens an existing file for reading and writing; writes
// append at its end.
func (fs *MemFS) OpenReadWrite(name string) (File, error) {
	return fs.open(name, "open", true)
}

func (fs *MemFS) open(name, op string, write bool) (File, error) {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	n, err := fs.lookup(name)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	if n.isDir && write {
		return nil, pathErr(op, name, errIsDir)
	}
	return &memFile{fs: fs, n: n, name: name, readable: true, writable: write, appendMode: write}, nil
}

// Remove removes the named file or empty directory. The removal is durable
// after SyncDir of its directory; until then a crash may bring the entry
// back with its durable content. Open Files keep working on a removed file.
func (fs *MemFS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.lookupParent(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	n, ok := dir.children[base]
	if !ok {
		return pathErr("remove", name, syscall.ENOENT)
	}
	if n.isDir && len(n.children) > 0 {
		return pathErr("remove", name, errNotEmpty)
	}
	fs.setEntries(entryChange{dir: dir, name: base})
	return nil
}

// Rename renames oldname to newname, atomically replacing newname if it is
// a file. Like os.Rename, it never replaces a directory. It is durable after
// SyncDir of both directories; until then a crash may undo it, but never
// half-apply it within one directory. Between two directories of which only
// one was synced, a crash leaves it half done, as POSIX allows: a file
// under both names (one file, like a hard link) when only the destination
// was synced, under neither when only the source was; a directory, which
// cannot have two names, stays where it is now if that entry is durable.
func (fs *MemFS) Rename(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	lerr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	// Like os.Rename, never replace a directory (not even by itself).
	if nn, err := fs.lookup(newname); err == nil && nn.isDir {
		if _, err := fs.lookup(oldname); err != nil {
			return lerr(err)
		}
		return lerr(syscall.EEXIST)
	}
	// Then rename(2)'s order: both parents, then the source.
	odir, obase, err := fs.lookupParent(oldname)
	if err != nil {
		return lerr(err)
	}
	ndir, nbase, err := fs.lookupParent(newname)
	if err != nil {
		return lerr(err)
	}
	n, ok := odir.children[obase]
	if !ok {
		return lerr(syscall.ENOENT)
	}
	if odir == ndir && obase == nbase {
		return nil
	}
	if n.isDir {
		// A directory cannot move into its own subtree.
		oc, nc := split(oldname), split(newname)
		if len(nc) > len(oc) && slices.Equal(nc[:len(oc)], oc) {
			return lerr(syscall.EINVAL)
		}
	}
	if old, ok := ndir.children[nbase]; ok {
		switch {
		case old == n:
			return nil
		case n.isDir:
			return lerr(errNotDir)
		}
	}
	fs.setEntries(entryChange{dir: odir, name: obase}, entryChange{dir: ndir, name: nbase, node: n})
	return nil
}

// MkdirAll creates a directory and its parents. Each new directory's entry
// is durable only after SyncDir of its parent, as on a real filesystem:
// engines that create subdirectories must sync their parents, and tests that
// prepare a directory before a crash should use Dirs or MkdirAllSynced.
func (fs *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, err := fs.mkdirAll(dir)
	return err
}

func (fs *MemFS) mkdirAll(dir string) ([]*memNode, error) {
	if dir == "" {
		return nil, pathErr("mkdir", dir, syscall.ENOENT)
	}
	d := fs.root
	path := []*memNode{d}
	for _, c := range split(dir) {
		child, ok := d.children[c]
		switch {
		case !ok:
			child = newDir()
			fs.setEntries(entryChange{dir: d, name: c, node: child})
		case !child.isDir:
			return nil, pathErr("mkdir", dir, errNotDir)
		}
		d = child
		path = append(path, d)
	}
	return path, nil
}

// MkdirAllSynced creates a directory and its parents and makes the whole
// path durable, as if each directory had existed long before the test: a
// crash clone keeps it. It is for test setup; engines use MkdirAll and
// SyncDir.
func (fs *MemFS) MkdirAllSynced(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	path, err := fs.mkdirAll(dir)
	if err != nil {
		return err
	}
	for _, d := range path {
		fs.syncDir(d)
	}
	return nil
}

// List returns the names of the entries in dir, sorted.
func (fs *MemFS) List(dir string) ([]string, error) {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	d, err := fs.lookup(dir)
	if err != nil {
		return nil, pathErr("open", dir, err)
	}
	if !d.isDir {
		return nil, pathErr("readdirent", dir, errNotDir)
	}
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Stat returns the named file's metadata.
func (fs *MemFS) Stat(name string) (os.FileInfo, error) {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	n, err := fs.lookup(name)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return n.info(name), nil
}

// SyncDir makes the directory's current entries durable: files and
// directories created in it, renamed into or out of it, or removed from it.
func (fs *MemFS) SyncDir(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d, err := fs.lookup(dir)
	if err != nil {
		return pathErr("open", dir, err)
	}
	if !d.isDir {
		// fsync of a file descriptor opened on a regular file succeeds on
		// the OS; it syncs the file, so do the same.
		d.sync()
		return nil
	}
	fs.syncDir(d)
	return nil
}

// syncDir makes d's entries durable and drops its changes from the journal.
func (fs *MemFS) syncDir(d *memNode) {
	d.syncedChildren = make(map[string]*memNode, len(d.children))
	for name, n := range d.children {
		d.syncedChildren[name] = n
	}
	j := fs.journal[:0]
	for _, rec := range fs.journal {
		var kept journalRecord
		for _, c := range rec.changes[:rec.n] {
			if c.dir != d {
				kept.changes[kept.n] = c
				kept.n++
			}
		}
		if kept.n > 0 {
			j = append(j, kept)
		}
	}
	clear(fs.journal[len(j):])
	fs.journal = j
}

// Lock takes an exclusive lock on the named file, creating it if needed. A
// second Lock of the same file before the first is released fails with an
// error wrapping ErrLocked. Close releases the lock; closing twice is safe.
// Locks are not part of a crash clone: a crashed process holds none.
func (fs *MemFS) Lock(name string) (io.Closer, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	dir, base, err := fs.lookupParent(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	n, ok := dir.children[base]
	switch {
	case ok && n.isDir:
		return nil, pathErr("open", name, errIsDir)
	case !ok:
		n = newFile()
		fs.setEntries(entryChange{dir: dir, name: base, node: n})
	}
	if fs.locked[n] {
		return nil, pathErr("lock", name, ErrLocked)
	}
	fs.locked[n] = true
	return &memLock{fs: fs, n: n}, nil
}

type memLock struct {
	fs   *MemFS
	n    *memNode
	once sync.Once
}

func (l *memLock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		delete(l.fs.locked, l.n)
		l.fs.mu.Unlock()
	})
	return nil
}

// memFileInfo is the os.FileInfo of a memNode.
type memFileInfo struct {
	name    string
	size    int64
	isDir   bool
	modTime time.Time
}

func (n *memNode) info(name string) os.FileInfo {
	base := "/"
	if comps := split(name); len(comps) > 0 {
		base = comps[len(comps)-1]
	}
	return memFileInfo{name: base, size: int64(len(n.data)), isDir: n.isDir, modTime: n.modTime}
}

func (fi memFileInfo) Name() string       { return fi.name }
func (fi memFileInfo) Size() int64        { return fi.size }
func (fi memFileInfo) ModTime() time.Time { return fi.modTime }
func (fi memFileInfo) IsDir() bool        { return fi.isDir }
func (fi memFileInfo) Sys() any           { return nil }
func (fi memFileInfo) Mode() os.FileMode {
	if fi.isDir {
		return os.ModeDir | 0o755
	}
	return 0o644
}

// String lists the tree, one entry a line in name order, for a failing
// crash test to log: each file with its size, and with its durable size and
// "unsynced" while it has unsynced changes; each entry not yet durable in
// its directory marked "(entry not synced)". Removed entries still durable
// are not shown.
func (fs *MemFS) String() string {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	var b strings.Builder
	var walk func(d *memNode, path string)
	walk = func(d *memNode, path string) {
		for _, name := range slices.Sorted(maps.Keys(d.children)) {
			n := d.children[name]
			p := path + "/" + name
			note := ""
			if d.syncedChildren[name] != n {
				note = " (entry not synced)"
			}
			if n.isDir {
				fmt.Fprintf(&b, "%s/%s\n", p, note)
				walk(n, p)
				continue
			}
			fmt.Fprintf(&b, "%s %d bytes", p, len(n.data))
			if n.dirty {
				fmt.Fprintf(&b, ", %d durable, unsynced from %d", len(n.synced), n.syncedPrefix())
			}
			fmt.Fprintf(&b, "%s\n", note)
		}
	}
	walk(fs.root, "")
	return b.String()
}
