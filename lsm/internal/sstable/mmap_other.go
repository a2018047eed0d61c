//go:build !unix

package sstable

import "github.com/logkv/logkv/vfs"

// mapTable maps nothing here: Readers read through ReadAt.
func mapTable(vfs.File, int64) []byte { return nil }

// unmapTable has nothing to release.
func unmapTable([]byte) error { return nil }
