package vfs

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// maxFileSize bounds a MemFS file, which lives in memory: a write or
// truncate past it fails with EFBIG rather than exhaust memory (the OS would
// make a sparse file).
const maxFileSize = 1 << 34

// memFile is an open MemFS file: a node plus a position shared by Read and
// Write, like an OS file descriptor.
type memFile struct {
	fs         *MemFS
	n          *memNode
	name       string
	pos        int64
	readable   bool
	writable   bool
	appendMode bool
	closed     bool
}

var _ File = (*memFile)(nil)

func (f *memFile) check(op string, write bool) error {
	if f.closed {
		return pathErr(op, f.name, os.ErrClosed)
	}
	if f.n.isDir && (write || op == "read") {
		return pathErr(op, f.name, errIsDir)
	}
	if write && !f.writable {
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

// Read reads from the file's position and advances it.
func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, pathErr("read", f.name, os.ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[f.pos:])
	f.pos += int64(n)
	return n, nil
}

// ReadAt reads at off without moving the position. Like *os.File, it returns
// io.EOF when it reads fewer than len(p) bytes.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	// The checks in *os.File's order.
	if off < 0 {
		return 0, pathErr("readat", f.name, errors.New("negative offset"))
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Write writes at the file's position (at its end for OpenReadWrite), filling
// any gap past the end with zeros, and advances the position.
func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil // not even an appending write moves the position
	}
	n := f.n
	if f.appendMode {
		f.pos = int64(len(n.data))
	}
	end := f.pos + int64(len(p))
	if end > maxFileSize {
		return 0, pathErr("write", f.name, syscall.EFBIG)
	}
	n.markDirty(min(f.pos, int64(len(n.data))))
	if end > int64(len(n.data)) {
		n.data = growZero(n.data, end)
	}
	copy(n.data[f.pos:], p)
	f.pos = end
	return len(p), nil
}

// growZero extends b to size bytes, the new bytes zero.
func growZero(b []byte, size int64) []byte {
	old := len(b)
	b = growCap(b, int(size))[:size]
	clear(b[old:]) // stale bytes from before a Truncate may lie there
	return b
}

// growCap returns b with capacity for size bytes, doubling when it grows:
// files mostly grow by small appends, and append's gentler growth for large
// slices would copy a big file many times over.
func growCap(b []byte, size int) []byte {
	if size <= cap(b) {
		return b
	}
	nb := make([]byte, len(b), max(size, 2*cap(b)))
	copy(nb, b)
	return nb
}

// Sync makes the file's content, including truncations, durable.
func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("sync", f.name, os.ErrClosed)
	}
	f.n.sync()
	return nil
}

// Stat returns the file's metadata.
func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if f.closed {
		return nil, pathErr("stat", f.name, os.ErrClosed)
	}
	return f.n.info(f.name), nil
}

// Truncate changes the file's size, zero-filling when it grows. The position
// does not move. It is durable after Sync.
func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	if size > maxFileSize {
		return pathErr("truncate", f.name, syscall.EFBIG)
	}
	n := f.n
	if size == int64(len(n.data)) {
		return nil
	}
	n.markDirty(min(size, int64(len(n.data))))
	if size < int64(len(n.data)) {
		n.data = n.data[:size]
	} else {
		n.data = growZero(n.data, size)
	}
	return nil
}

// Close closes the file. Closing twice returns an error wrapping
// os.ErrClosed, as *os.File does.
func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, os.ErrClosed)
	}
	f.closed = true
	return nil
}
