package lsm

import "github.com/logkv/logkv/lsm/internal/sstable"

// ErrFormat reports a file in a format this version cannot read (a table
// whose footer names another format version). The wrapping error names the
// file and offset. It wraps logkv.ErrFormat (and so logkv.ErrCorrupt):
// errors.Is with either holds.
var ErrFormat = sstable.ErrFormat
