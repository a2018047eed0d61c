package lsm

// Close makes every committed write durable and releases the DB. Iterators
// and snapshots still open become invalid. A second Close returns nil.
func (d *DB) Close() error {
	d.commitMu.Lock()
	if d.closed.Load() {
		d.commitMu.Unlock()
		return nil
	}
	d.commitMu.Unlock()
	var err error
	if d.opts.DisableWAL {
		err = d.flushAll()
	}
	d.commitMu.Lock()
	d.closed.Store(true)
	d.mu.Lock()
	d.closing = true
	d.cond.Broadcast()
	d.mu.Unlock()
	d.commitMu.Unlock()
	d.bg.Wait()
	if d.wal != nil {
		if werr := d.wal.close(); werr != nil && err == nil {
			err = werr
		}
	}
	d.manifestMu.Lock()
	if d.manifest != nil {
		d.manifest.f.Close()
	}
	d.manifestMu.Unlock()
	d.noDelete.Store(true)
	d.mu.Lock()
	d.m.final = d.metricsLocked()
	d.mu.Unlock()
	d.tc.close()
	d.lock.Close()
	return err
}
