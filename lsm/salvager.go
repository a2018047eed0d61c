package lsm

import (
	"github.com/logkv/logkv"
	"github.com/logkv/logkv/vfs"
)

var _ logkv.Salvager = (*Options)(nil)

// Salvage reads back every entry of the tables and WAL segments in dir that
// passes its checks, through o.FS (Salvage, as logkv.Salvager asks: kvnode
// salvage).
func (o *Options) Salvage(dir string, keep func(logkv.SalvagedEntry) error, skip func(logkv.Skipped) error) error {
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	return Salvage(fs, dir, func(e SalvagedEntry) error {
		return keep(logkv.SalvagedEntry{Seq: e.Seq, Key: e.Key, Value: e.Value, Delete: e.Delete})
	}, skip)
}
