//go:build unix

package bitcask

import (
	"syscall"

	"github.com/logkv/logkv/vfs"
)

// mapFile maps the first size bytes of a data file read-only (the mapping
// may reach past the file's end; readers stay within what was written), or
// returns nil when f is not an OS file (MemFS, ErrorFS) or mapping fails;
// reads then go through ReadAt.
func mapFile(f vfs.File, size int64) []byte {
	fd, ok := f.(interface{ Fd() uintptr })
	if !ok || size <= 0 || size > maxFileSizeLimit+maxBatchRecordBytes || ^uint(0)>>32 == 0 {
		return nil
	}
	b, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return b
}

func unmapFile(b []byte) {
	if b != nil {
		_ = syscall.Munmap(b)
	}
}
