package vfs

import (
	"io"
	"os"
)

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	// Sync makes the file's written data durable.
	Sync() error
	// Stat returns the file's metadata; Size is what engines use.
	Stat() (os.FileInfo, error)
	// Truncate changes the file's size. It is durable after Sync.
	Truncate(size int64) error
}

// FS is a filesystem. Names are slash- or OS-separated paths as built with
// path/filepath.
type FS interface {
	// Create creates or truncates the named file, open for reading and
	// writing.
	Create(name string) (File, error)
	// Open opens the named file read-only.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing; writes
	// append at its end.
	OpenReadWrite(name string) (File, error)
	// Remove removes the named file or empty directory.
	Remove(name string) error
	// Rename renames oldname to newname, replacing newname atomically if it
	// exists.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names (not paths) of the entries in dir, sorted.
	List(dir string) ([]string, error)
	// Stat returns the named file's metadata.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory's entries durable: files created, renamed
	// into or removed from it.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on the named file, creating it if needed,
	// so that a second process (or a second Lock in this one) opening the same
	// directory fails with an error wrapping ErrLocked. Close releases it.
	Lock(name string) (io.Closer, error)
}
