//go:build !unix

package bitcask

import "github.com/logkv/logkv/vfs"

func mapFile(f vfs.File, size int64) []byte { return nil }

func unmapFile(b []byte) {}
