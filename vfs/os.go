package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
)

// ErrLocked is returned by Lock when another process or handle holds the lock.
var ErrLocked = errors.New("vfs: locked by another process")

// Default is the operating system's filesystem.
var Default FS = osFS{}

type osFS struct{}

// Modes of what the OS filesystem creates: data is readable by its owner
// only (any local user could otherwise read every value), as Redis and
// etcd keep theirs. The umask can only make them tighter.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

func (osFS) Create(name string) (File, error) {
	return osFile(os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode))
}

func (osFS) Open(name string) (File, error) { return osFile(os.Open(name)) }

func (osFS) OpenReadWrite(name string) (File, error) {
	return osFile(os.OpenFile(name, os.O_RDWR|os.O_APPEND, 0))
}

// osFile returns a nil File on error, not a File holding a nil *os.File.
func osFile(f *os.File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll creates dir and its parents with mode 0700, or perm where perm is
// tighter: callers pass the conventional 0755, which would let every local
// user list the data files.
func (osFS) MkdirAll(dir string, perm os.FileMode) error {
	return os.MkdirAll(dir, perm&dirMode)
}
func (osFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

func (osFS) List(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (osFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held; is another logkv process using this directory?", ErrLocked, name)
		}
		return nil, fmt.Errorf("vfs: lock %s: %w", name, err)
	}
	return f, nil
}
