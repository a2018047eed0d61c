//go:build unix

package sstable

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/logkv/logkv/vfs"
)

// mapTable maps a table file of size bytes read-only, so that a Get that
// misses the block cache reads its block from the page cache without a
// system call (pread was a fifth of a Get's CPU at 8M keys). It returns nil,
// and the Reader falls back to ReadAt, when f is not an OS file (MemFS,
// ErrorFS: tests that inject faults keep going through ReadAt), when the
// file on disk is shorter than size (a truncated table: ReadAt reports it
// as corrupt, where touching a mapping past the file's end would raise
// SIGBUS), on a 32-bit platform, or when mmap fails.
func mapTable(f vfs.File, size int64) []byte {
	osf, isOS := f.(interface{ Fd() uintptr })
	if !isOS || size <= 0 || ^uint(0)>>32 == 0 {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Size() < size {
		return nil
	}
	m, err := syscall.Mmap(int(osf.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	// Gets read single blocks at random: without MADV_RANDOM a fault on
	// one page reads around it (up to 128 KiB on Linux), pages a point
	// read never uses. Advice only: a failure changes nothing.
	_ = unix.Madvise(m, unix.MADV_RANDOM)
	return m
}

// unmapTable releases a mapping mapTable made (nil: none).
func unmapTable(m []byte) error {
	if m == nil {
		return nil
	}
	return syscall.Munmap(m)
}
