// Package powercut is a pass-through FUSE file system that can cut the power:
// it serves a backing directory at a mount point, remembers what a power
// loss would keep, and on Cut throws away everything else. kvstress -powercut
// runs a kvnode's data directory through it, so that each kill of the node
// is also a power loss of its disk.
//
// # What survives a cut
//
// The model is POSIX's, the strictest a real file system may hold a program
// to (ext4 and xfs usually keep more):
//
//   - A file's content is what it held at its last fsync (or fdatasync): the
//     bytes written since are lost, and so is a truncation or extension made
//     since. A file never fsynced is empty.
//   - A directory's entries are those it held at its last fsync of the
//     directory: a file created, renamed or unlinked since is back where the
//     last directory fsync saw it (a name created since is gone, an unlinked
//     one is back, with its inode's content as last fsynced).
//   - Everything present when Mount was called counts as synced.
//
// Content is kept per inode, entries per directory, as the kernel keeps
// them: a file fsynced under a temporary name and renamed keeps its content
// under the new name once the directory is fsynced.
//
// # How
//
// Writes go through to the backing directory at once (reads see them, as
// from a page cache). The file system notes the byte ranges each write,
// fallocate and truncate touches, per inode; an fsync copies the ranges
// noted since the last one into the inode's shadow copy (a file in the
// shadow directory), so an fsync costs what it synced, not the file's size.
// A directory fsync records the directory's entries (name, inode, kind,
// mode). Cut unmounts, builds a new backing tree from the root's recorded
// entries and the shadows, and swaps it in; Mount serves it again. The file
// system holds a descriptor of every inode it has seen, so that the backing
// file system cannot reuse an inode number within a mount.
//
// go-fuse (github.com/hanwen/go-fuse/v2) serves the kernel protocol: it is
// the maintained Go FUSE library (used by gocryptfs, rclone's mount on some
// platforms, and Bazel's remote caches), and its loopback node is the
// pass-through this package only has to intercept. Mounting needs /dev/fuse
// and either root (mount(2) directly) or fusermount; Available says which.
package powercut

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FS is a mounted power-cut file system. Its methods are safe for
// concurrent use by the goroutines go-fuse serves requests on; Cut and
// Unmount must not race with each other.
type FS struct {
	backing, mountpoint, shadow string

	mu     sync.Mutex
	files  map[uint64]*fileState       // by backing inode
	dirs   map[uint64]map[string]entry // a directory's entries as last fsynced, by its inode
	rootIn uint64
	held   []*os.File // one descriptor per inode seen (see the package doc)
	server *fuse.Server
	dev    uint64 // the mount's device, which names its FUSE connection
}

// entry is one directory entry as a directory fsync recorded it.
type entry struct {
	ino  uint64
	dir  bool
	mode os.FileMode
	link string // a symbolic link's target
}

// fileState is what the file system knows of one regular file's inode.
type fileState struct {
	fd *os.File // held: read at fsync, keeps the inode number ours
	// shadow reports whether the inode has a shadow copy (it was present at
	// Mount or has been fsynced); without one its synced content is empty.
	shadow bool
	dirty  []extent // ranges written since the last fsync
	// dirtyFrom is the lowest size a truncate set since the last fsync:
	// everything from it on is dirty. math.MaxInt64 when none.
	dirtyFrom int64
}

type extent struct{ off, end int64 }

// Available reports whether this process can mount a FUSE file system, and
// if not, why: /dev/fuse must exist and be openable, and mounting needs root
// (mount(2)) or a fusermount binary.
func Available() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("powercut: /dev/fuse: %w (a container needs --device /dev/fuse)", err)
	}
	f.Close()
	if os.Geteuid() == 0 {
		return nil
	}
	for _, name := range []string{"fusermount3", "fusermount"} {
		if _, err := lookPath(name); err == nil {
			return nil
		}
	}
	return errors.New("powercut: not root and no fusermount: install fuse3 or run as root")
}

func lookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

// Mount serves backing at mountpoint (both existing directories), with
// everything now in backing counted as synced. shadow is a directory of its
// own for the synced copies (made if missing, emptied).
func Mount(backing, mountpoint, shadow string) (*FS, error) {
	f := &FS{backing: backing, mountpoint: mountpoint, shadow: shadow,
		files: map[uint64]*fileState{}, dirs: map[uint64]map[string]entry{}}
	if err := os.RemoveAll(shadow); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(shadow, 0o700); err != nil {
		return nil, err
	}
	if err := f.snapshot(backing); err != nil {
		f.closeHeld()
		return nil, fmt.Errorf("powercut: snapshot %s: %w", backing, err)
	}
	// NewNode is deprecated for NodeWrapChilder, but only NewNode is
	// given the new inode's stat, whose inode number the model keys on.
	root := &fs.LoopbackRoot{Path: backing, NewNode: f.newNode}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		f.closeHeld()
		return nil, err
	}
	root.RootNode = &node{LoopbackNode: fs.LoopbackNode{RootData: root}, pc: f, ino: st.Ino}
	root.Dev = uint64(st.Dev)
	f.rootIn = st.Ino
	// Kernel caches off: the entries and attributes must come from the
	// backing tree, which Cut replaces between mounts.
	zero := time.Duration(0)
	server, err := fs.Mount(mountpoint, root.RootNode, &fs.Options{
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			// No writeback cache (go-fuse's default): every write
			// reaches this file system when the program makes it, so
			// an fsync sees all the writes before it.
			FsName: "powercut", Name: "powercut", DirectMount: true,
		},
	})
	if err != nil {
		f.closeHeld()
		return nil, fmt.Errorf("powercut: mount %s: %w", mountpoint, err)
	}
	f.server = server
	if err := server.WaitMount(); err != nil {
		_ = f.Unmount()
		f.closeHeld()
		return nil, fmt.Errorf("powercut: mount %s: %w", mountpoint, err)
	}
	var mst syscall.Stat_t
	if err := syscall.Stat(mountpoint, &mst); err != nil {
		_ = f.Unmount()
		f.closeHeld()
		return nil, err
	}
	f.dev = mst.Dev
	return f, nil
}

// snapshot records the tree under dir as synced: its entries, and a shadow
// copy of every file.
func (f *FS) snapshot(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	f.held = append(f.held, d)
	st, err := d.Stat()
	if err != nil {
		return err
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	entries, err := readEntries(dir)
	if err != nil {
		return err
	}
	f.dirs[ino] = entries
	for name, e := range entries {
		p := filepath.Join(dir, name)
		switch {
		case e.dir:
			if err := f.snapshot(p); err != nil {
				return err
			}
		case e.link == "" && f.files[e.ino] == nil:
			fd, err := os.Open(p)
			if err != nil {
				return err
			}
			f.held = append(f.held, fd)
			if err := copyFile(filepath.Join(f.shadow, shadowName(e.ino)), fd); err != nil {
				return err
			}
			f.files[e.ino] = &fileState{fd: fd, shadow: true, dirtyFrom: math.MaxInt64}
		}
	}
	return nil
}

// readEntries lists dir as a directory fsync records it.
func readEntries(dir string) (map[string]entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]entry, len(des))
	for _, de := range des {
		var st syscall.Stat_t
		p := filepath.Join(dir, de.Name())
		if err := syscall.Lstat(p, &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				continue // removed meanwhile
			}
			return nil, err
		}
		e := entry{ino: st.Ino, mode: os.FileMode(st.Mode & 0o7777)}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			e.dir = true
		case syscall.S_IFLNK:
			if e.link, err = os.Readlink(p); err != nil {
				return nil, err
			}
		case syscall.S_IFREG:
		default:
			continue // sockets, fifos, devices: not data
		}
		out[de.Name()] = e
	}
	return out, nil
}

func shadowName(ino uint64) string { return fmt.Sprintf("ino-%d", ino) }

// copyFile writes all of src to a new file at dst.
func copyFile(dst string, src *os.File) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.NewSectionReader(src, 0, math.MaxInt64))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// newNode is go-fuse's hook for every LOOKUP, CREATE, MKDIR and MKNOD: the
// node it returns intercepts what the model needs, and the inode is noted.
func (f *FS) newNode(root *fs.LoopbackRoot, parent *fs.Inode, name string, st *syscall.Stat_t) fs.InodeEmbedder {
	n := &node{LoopbackNode: fs.LoopbackNode{RootData: root}, pc: f, ino: st.Ino}
	p := filepath.Join(root.Path, parent.Path(nil), name)
	f.note(st, p)
	return n
}

// note records an inode seen at path p: a descriptor held, and for a regular
// file not seen before a state with nothing synced.
func (f *FS) note(st *syscall.Stat_t, p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		if f.files[st.Ino] != nil {
			return
		}
		fd, err := os.Open(p)
		if err != nil {
			return // gone meanwhile: nothing to keep
		}
		f.held = append(f.held, fd)
		f.files[st.Ino] = &fileState{fd: fd, dirtyFrom: math.MaxInt64}
	case syscall.S_IFDIR:
		if _, ok := f.dirs[st.Ino]; ok {
			return
		}
		if fd, err := os.Open(p); err == nil {
			f.held = append(f.held, fd)
		}
		f.dirs[st.Ino] = map[string]entry{} // a new directory: no entry synced yet
	}
}

// wrote notes bytes [off, end) of inode ino as changed since its last fsync.
func (f *FS) wrote(ino uint64, off, end int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fst := f.files[ino]
	if fst == nil || end <= off {
		return
	}
	// Appends extend the last extent; anything else is a new one. The
	// list is cleared at every fsync, so it stays short.
	if k := len(fst.dirty); k > 0 && fst.dirty[k-1].end >= off && fst.dirty[k-1].off <= off {
		fst.dirty[k-1].end = max(fst.dirty[k-1].end, end)
		return
	}
	fst.dirty = append(fst.dirty, extent{off, end})
}

// truncated notes a size change of inode ino to size.
func (f *FS) truncated(ino uint64, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fst := f.files[ino]; fst != nil {
		fst.dirtyFrom = min(fst.dirtyFrom, size)
	}
}

// synced makes inode ino's current content its synced content: the changed
// ranges are copied into its shadow, which takes the file's size.
func (f *FS) synced(ino uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fst := f.files[ino]
	if fst == nil {
		return nil
	}
	st, err := fst.fd.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	out, err := os.OpenFile(filepath.Join(f.shadow, shadowName(ino)), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	ranges := fst.dirty
	if fst.dirtyFrom < size {
		ranges = append(ranges, extent{fst.dirtyFrom, size})
	}
	if !fst.shadow {
		ranges = []extent{{0, size}} // a new file: all of it
	}
	buf := make([]byte, 64<<10)
	for _, r := range ranges {
		for off := r.off; off < min(r.end, size); {
			n, err := fst.fd.ReadAt(buf[:min(int64(len(buf)), min(r.end, size)-off)], off)
			if n > 0 {
				if _, werr := out.WriteAt(buf[:n], off); werr != nil {
					return werr
				}
				off += int64(n)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return err
			}
		}
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	fst.shadow, fst.dirty, fst.dirtyFrom = true, fst.dirty[:0], math.MaxInt64
	return nil
}

// dirSynced records directory ino's current entries, read from path p.
func (f *FS) dirSynced(ino uint64, p string) error {
	entries, err := readEntries(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirs[ino] = entries
	return nil
}

// CutStats says what a Cut threw away.
type CutStats struct {
	// Files is the number of regular files whose content as rebuilt differs
	// from what the backing tree held: unsynced writes, names not synced.
	Files int
	// Bytes is the backing tree's bytes in regular files before the cut
	// minus after it (negative when unlinked files came back).
	Bytes int64
}

// Cut is the power loss: it unmounts, replaces the backing tree with what was
// synced, and returns what it threw away. The FS is unusable afterwards;
// Mount the backing directory again to serve it.
func (f *FS) Cut() (CutStats, error) {
	if err := f.Unmount(); err != nil {
		return CutStats{}, err
	}
	defer f.closeHeld()
	before, err := treeBytes(f.backing)
	if err != nil {
		return CutStats{}, err
	}
	next := f.backing + ".powercut"
	if err := os.RemoveAll(next); err != nil {
		return CutStats{}, err
	}
	st, err := os.Stat(f.backing)
	if err != nil {
		return CutStats{}, err
	}
	if err := os.Mkdir(next, st.Mode().Perm()); err != nil {
		return CutStats{}, err
	}
	var stats CutStats
	if err := f.rebuild(next, f.backing, f.rootIn, &stats); err != nil {
		return CutStats{}, fmt.Errorf("powercut: rebuild: %w", err)
	}
	if err := os.RemoveAll(f.backing); err != nil {
		return CutStats{}, err
	}
	if err := os.Rename(next, f.backing); err != nil {
		return CutStats{}, err
	}
	after, err := treeBytes(f.backing)
	if err != nil {
		return CutStats{}, err
	}
	stats.Bytes = before - after
	return stats, nil
}

// rebuild writes directory ino's synced entries into dst, recursively. old
// is the same directory in the tree before the cut (for the statistics; ""
// when the directory did not exist there under this name).
func (f *FS) rebuild(dst, old string, ino uint64, stats *CutStats) error {
	for name, e := range f.dirs[ino] {
		p := filepath.Join(dst, name)
		oldP := ""
		if old != "" {
			oldP = filepath.Join(old, name)
		}
		switch {
		case e.dir:
			if err := os.Mkdir(p, e.mode.Perm()); err != nil {
				return err
			}
			if err := f.rebuild(p, oldP, e.ino, stats); err != nil {
				return err
			}
		case e.link != "":
			if err := os.Symlink(e.link, p); err != nil {
				return err
			}
		default:
			if err := f.rebuildFile(p, e); err != nil {
				return err
			}
			if !sameContent(p, oldP) {
				stats.Files++
			}
		}
	}
	return nil
}

func (f *FS) rebuildFile(p string, e entry) error {
	fst := f.files[e.ino]
	if fst == nil || !fst.shadow {
		return os.WriteFile(p, nil, e.mode.Perm()) // never synced: empty
	}
	src, err := os.Open(filepath.Join(f.shadow, shadowName(e.ino)))
	if err != nil {
		return err
	}
	defer src.Close()
	if err := copyFile(p, src); err != nil {
		return err
	}
	return os.Chmod(p, e.mode.Perm())
}

// sameContent reports whether files a and b hold the same bytes (false if b
// is "" or missing).
func sameContent(a, b string) bool {
	if b == "" {
		return false
	}
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// Unmount stops serving, keeping the backing tree as it is (no cut).
//
// It unmounts, then aborts the FUSE connection, because an unmount does not
// end the connection while another mount namespace holds a copy of the
// mount (a process that called unshare(CLONE_NEWNS), as `ip netns exec`
// does, while the file system was mounted gets one): the kernel keeps the
// superblock alive, and go-fuse's readers would wait for requests forever.
// The abort goes through the fusectl file system (/sys/fs/fuse/connections,
// or a private mount of it when that is empty), which needs root; without
// it, Unmount waits a few seconds for the readers and then leaves them.
func (f *FS) Unmount() error {
	if f.server == nil {
		return nil
	}
	var err error
	for try := 0; try < 20; try++ {
		// A process killed a moment ago may still hold files open.
		if err = syscall.Unmount(f.mountpoint, 0); err == nil || errors.Is(err, syscall.EINVAL) {
			err = nil
			break
		}
		time.Sleep(time.Duration(try+1) * 5 * time.Millisecond)
	}
	if err != nil {
		if lerr := syscall.Unmount(f.mountpoint, syscall.MNT_DETACH); lerr != nil {
			return fmt.Errorf("powercut: unmount %s: %w (then %v)", f.mountpoint, err, lerr)
		}
	}
	abortConn(f.dev)
	done := make(chan struct{})
	go func() {
		f.server.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// The readers stay blocked until the other namespace drops its
		// copy of the mount; nothing here depends on them any more.
	}
	f.server = nil
	return nil
}

// abortConn aborts the FUSE connection of device dev through fusectl, if it
// can (see Unmount).
func abortConn(dev uint64) {
	if dev == 0 {
		return // never mounted
	}
	id := unix.Major(dev)<<20 | unix.Minor(dev) // the kernel's dev_t, fusectl's directory name
	abort := func(dir string) bool {
		return os.WriteFile(filepath.Join(dir, strconv.FormatUint(uint64(id), 10), "abort"), []byte("1"), 0) == nil
	}
	if abort("/sys/fs/fuse/connections") {
		return
	}
	tmp, err := os.MkdirTemp("", "powercut-fusectl-")
	if err != nil {
		return
	}
	defer os.Remove(tmp)
	if err := syscall.Mount("fusectl", tmp, "fusectl", 0, ""); err != nil {
		return
	}
	abort(tmp)
	_ = syscall.Unmount(tmp, 0)
}

func (f *FS) closeHeld() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fd := range f.held {
		fd.Close()
	}
	f.held = nil
}

// node is a loopback node that reports writes, truncations and syncs.
type node struct {
	fs.LoopbackNode
	pc  *FS
	ino uint64
}

var (
	_ fs.NodeOpener          = (*node)(nil)
	_ fs.NodeCreater         = (*node)(nil)
	_ fs.NodeSetattrer       = (*node)(nil)
	_ fs.NodeOpendirHandler  = (*node)(nil)
	_ fs.NodeCopyFileRanger  = (*node)(nil)
	_ fs.FileWriter          = (*file)(nil)
	_ fs.FileFsyncer         = (*file)(nil)
	_ fs.FilePassthroughFder = (*file)(nil)
	_ fs.FileFsyncdirer      = (*dir)(nil)
)

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.wrap(fh, flags), fl, 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	child, _ := in.Operations().(*node)
	if child == nil {
		return in, fh, fl, 0
	}
	return in, child.wrap(fh, flags), fl, 0
}

// wrap intercepts a file handle's writes and syncs. O_SYNC and O_DSYNC make
// every write a synced one.
func (n *node) wrap(fh fs.FileHandle, flags uint32) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh
	}
	return &file{LoopbackFile: lf, n: n, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		n.pc.truncated(n.ino, int64(sz))
	}
	if fh, ok := f.(*file); ok {
		f = fh.LoopbackFile // the node's Setattr hands it on
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// CopyFileRange is refused, so the kernel copies with reads and writes,
// which are noted.
func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dir{inner: fh, n: n}, fl, 0
}

// path is the node's path in the backing tree.
func (n *node) path() string {
	return filepath.Join(n.RootData.Path, n.Path(nil))
}

// file is an open regular file.
type file struct {
	*fs.LoopbackFile
	n    *node
	sync bool
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	w, errno := f.LoopbackFile.Write(ctx, data, off)
	f.n.pc.wrote(f.n.ino, off, off+int64(w))
	if errno == 0 && f.sync {
		errno = fs.ToErrno(f.n.pc.synced(f.n.ino))
	}
	return w, errno
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	w, errno := f.LoopbackFile.Writev(ctx, data, off)
	f.n.pc.wrote(f.n.ino, off, off+int64(w))
	if errno == 0 && f.sync {
		errno = fs.ToErrno(f.n.pc.synced(f.n.ino))
	}
	return w, errno
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if errno := f.LoopbackFile.Fsync(ctx, flags); errno != 0 {
		return errno
	}
	return fs.ToErrno(f.n.pc.synced(f.n.ino))
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		f.n.pc.truncated(f.n.ino, int64(sz))
	}
	return f.LoopbackFile.Setattr(ctx, in, out)
}

func (f *file) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	errno := f.LoopbackFile.Allocate(ctx, off, size, mode)
	f.n.pc.wrote(f.n.ino, int64(off), int64(off+size))
	return errno
}

// PassthroughFd refuses the kernel's passthrough, which would send writes
// to the backing file without this file system seeing them.
func (f *file) PassthroughFd() (int, bool) { return -1, false }

// dir is an open directory: its fsync records its entries.
type dir struct {
	inner fs.FileHandle
	n     *node
}

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if s, ok := d.inner.(fs.FileFsyncdirer); ok {
		if errno := s.Fsyncdir(ctx, flags); errno != 0 {
			return errno
		}
	}
	return fs.ToErrno(d.n.pc.dirSynced(d.n.ino, d.n.path()))
}

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if r, ok := d.inner.(fs.FileReaddirenter); ok {
		return r.Readdirent(ctx)
	}
	return nil, syscall.ENOTSUP
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.inner.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}
