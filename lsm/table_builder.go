package lsm

import (
	"fmt"

	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
	"github.com/logkv/logkv/vfs"
)

// tableBuilder is a compaction output table being written.
type tableBuilder struct {
	d   *DB
	num uint64
	f   vfs.File
	w   *sstable.Writer
}

func (d *DB) newTableBuilder() (*tableBuilder, error) {
	d.mu.Lock()
	num := d.nextFileNum
	d.nextFileNum++
	d.mu.Unlock()
	f, err := d.fs.Create(joinPath(d.dir, tableName(num)))
	if err != nil {
		return nil, fmt.Errorf("lsm: create table %s: %w", tableName(num), err)
	}
	return &tableBuilder{d: d, num: num, f: f, w: sstable.NewWriter(f, d.wo)}, nil
}

func (b *tableBuilder) finish() (*manifest.FileMeta, error) {
	sm, err := b.w.Close()
	if err != nil {
		_ = b.d.fs.Remove(joinPath(b.d.dir, tableName(b.num)))
		return nil, fmt.Errorf("lsm: write table %s: %w", tableName(b.num), err)
	}
	return metaOf(b.num, sm), nil
}

func (b *tableBuilder) abandon() {
	b.w.Close()
	_ = b.d.fs.Remove(joinPath(b.d.dir, tableName(b.num)))
}
