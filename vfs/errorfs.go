package vfs

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
)

// ErrInjected is wrapped by the errors ErrorFS's ready-made injectors
// return.
var ErrInjected = errors.New("vfs: injected error")

// OpKind is the kind of an operation ErrorFS passes to its Injector. Kinds
// are bits, so a set of kinds is their OR.
type OpKind uint32

// The kinds of operation.
const (
	OpCreate        OpKind = 1 << iota // FS.Create
	OpOpen                             // FS.Open
	OpOpenReadWrite                    // FS.OpenReadWrite
	OpRemove                           // FS.Remove
	OpRename                           // FS.Rename (Op.Path is the old name)
	OpMkdirAll                         // FS.MkdirAll
	OpList                             // FS.List
	OpStat                             // FS.Stat and File.Stat
	OpSyncDir                          // FS.SyncDir
	OpLock                             // FS.Lock
	OpRead                             // File.Read
	OpReadAt                           // File.ReadAt
	OpWrite                            // File.Write
	OpSync                             // File.Sync
	OpTruncate                         // File.Truncate
	OpClose                            // File.Close (the file is closed all the same)

	// OpReads is every kind that reads and changes nothing.
	OpReads = OpOpen | OpList | OpStat | OpRead | OpReadAt
	// OpWrites is every kind that changes the filesystem, as a disk turning
	// read-only or full would refuse.
	OpWrites = OpCreate | OpOpenReadWrite | OpRemove | OpRename | OpMkdirAll |
		OpSyncDir | OpLock | OpWrite | OpSync | OpTruncate
	// OpAll is every kind.
	OpAll = OpClose<<1 - 1
)

var opNames = [...]string{
	"create", "open", "open-rw", "remove", "rename", "mkdirall", "list", "stat",
	"syncdir", "lock", "read", "readat", "write", "sync", "truncate", "close",
}

// String returns the kind's name, or the names of a set's kinds joined by
// "|".
func (k OpKind) String() string {
	var names []string
	for i, name := range opNames {
		if k&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("OpKind(%#x)", uint32(k))
	}
	return strings.Join(names, "|")
}

// Op is an operation ErrorFS is about to perform.
type Op struct {
	Kind OpKind
	// Path is the name the operation acts on: the file's name as opened for
	// File methods, the old name for a rename.
	Path string
}

// Injector decides whether an operation fails. ErrorFS calls it before each
// operation, from any goroutine: implementations must be safe for
// concurrent use.
type Injector interface {
	// MaybeError returns nil to let op run, or the error op fails with
	// instead; the operation then does not happen (but see
	// ErrorFS.SetShortWrites). Errors should wrap ErrInjected, or an error
	// the OS could return (syscall.ENOSPC, say) for tests of such.
	MaybeError(op Op) error
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op) error

// MaybeError calls f(op).
func (f InjectorFunc) MaybeError(op Op) error { return f(op) }

// ErrorFS wraps an FS, and the Files it opens, failing the operations its
// Injector picks. Create it with NewErrorFS. A failed operation does not
// reach the wrapped FS (short writes aside): a failed Sync over a MemFS
// leaves the data unsynced, so a crash loses it.
type ErrorFS struct {
	fs  FS
	inj Injector

	mu    sync.Mutex
	short *rand.Rand
}

var _ FS = (*ErrorFS)(nil)

// NewErrorFS returns fs with errors injected by inj.
func NewErrorFS(fs FS, inj Injector) *ErrorFS {
	return &ErrorFS{fs: fs, inj: inj}
}

// Unwrap returns the wrapped FS.
func (e *ErrorFS) Unwrap() FS { return e.fs }

// SetShortWrites sets what a Write that the injector fails does first. With
// r nil (the default) it writes nothing. Otherwise it writes a prefix of its
// buffer, of a length drawn from r in [0, len(p)), and returns that length
// with the error, as a write interrupted by a full disk or an I/O error
// would: the case a log's recovery must handle.
func (e *ErrorFS) SetShortWrites(r *rand.Rand) {
	e.mu.Lock()
	e.short = r
	e.mu.Unlock()
}

// shortLen returns how much of an n-byte failed write to perform.
func (e *ErrorFS) shortLen(n int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.short == nil || n == 0 {
		return 0
	}
	return e.short.IntN(n)
}

func (e *ErrorFS) maybe(kind OpKind, path string) error {
	return e.inj.MaybeError(Op{Kind: kind, Path: path})
}

// Create creates or truncates the named file.
func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.maybe(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Create(name)
	return e.wrap(f, name, err)
}

// Open opens the named file read-only.
func (e *ErrorFS) Open(name string) (File, error) {
	if err := e.maybe(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Open(name)
	return e.wrap(f, name, err)
}

// OpenReadWrite opens an existing file for reading and appending.
func (e *ErrorFS) OpenReadWrite(name string) (File, error) {
	if err := e.maybe(OpOpenReadWrite, name); err != nil {
		return nil, err
	}
	f, err := e.fs.OpenReadWrite(name)
	return e.wrap(f, name, err)
}

func (e *ErrorFS) wrap(f File, name string, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errorFile{f: f, fs: e, name: name}, nil
}

// Remove removes the named file or empty directory.
func (e *ErrorFS) Remove(name string) error {
	if err := e.maybe(OpRemove, name); err != nil {
		return err
	}
	return e.fs.Remove(name)
}

// Rename renames oldname to newname.
func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.maybe(OpRename, oldname); err != nil {
		return err
	}
	return e.fs.Rename(oldname, newname)
}

// MkdirAll creates a directory and its parents.
func (e *ErrorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.maybe(OpMkdirAll, dir); err != nil {
		return err
	}
	return e.fs.MkdirAll(dir, perm)
}

// List returns the sorted names of the entries in dir.
func (e *ErrorFS) List(dir string) ([]string, error) {
	if err := e.maybe(OpList, dir); err != nil {
		return nil, err
	}
	return e.fs.List(dir)
}

// Stat returns the named file's metadata.
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.maybe(OpStat, name); err != nil {
		return nil, err
	}
	return e.fs.Stat(name)
}

// SyncDir makes the directory's entries durable.
func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.maybe(OpSyncDir, dir); err != nil {
		return err
	}
	return e.fs.SyncDir(dir)
}

// Lock takes an exclusive lock on the named file.
func (e *ErrorFS) Lock(name string) (io.Closer, error) {
	if err := e.maybe(OpLock, name); err != nil {
		return nil, err
	}
	return e.fs.Lock(name)
}

// errorFile is a File opened through an ErrorFS.
type errorFile struct {
	f    File
	fs   *ErrorFS
	name string
}

func (f *errorFile) Read(p []byte) (int, error) {
	if err := f.fs.maybe(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.f.Read(p)
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.maybe(OpReadAt, f.name); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.maybe(OpWrite, f.name); err != nil {
		n := f.fs.shortLen(len(p))
		if n > 0 {
			// The prefix's own error, if any, is moot: the write fails.
			n, _ = f.f.Write(p[:n])
		}
		return n, err
	}
	return f.f.Write(p)
}

func (f *errorFile) Sync() error {
	if err := f.fs.maybe(OpSync, f.name); err != nil {
		return err
	}
	return f.f.Sync()
}

func (f *errorFile) Stat() (os.FileInfo, error) {
	if err := f.fs.maybe(OpStat, f.name); err != nil {
		return nil, err
	}
	return f.f.Stat()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.maybe(OpTruncate, f.name); err != nil {
		return err
	}
	return f.f.Truncate(size)
}

// Close closes the file even when the injector fails it, as close(2) does.
func (f *errorFile) Close() error {
	ierr := f.fs.maybe(OpClose, f.name)
	err := f.f.Close()
	if ierr != nil {
		return ierr
	}
	return err
}
