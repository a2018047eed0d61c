package lsm

import (
	"fmt"
	"sync"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/lsm/internal/base"
)

// Set stores value under key.
func (d *DB) Set(key, value []byte, o *logkv.WriteOptions) error {
	b := batchPool.Get().(*logkv.Batch)
	b.Reset()
	b.Set(key, value)
	err := d.Apply(b, o)
	batchPool.Put(b)
	return err
}

// Delete removes key.
func (d *DB) Delete(key []byte, o *logkv.WriteOptions) error {
	b := batchPool.Get().(*logkv.Batch)
	b.Reset()
	b.Delete(key)
	err := d.Apply(b, o)
	batchPool.Put(b)
	return err
}

var batchPool = sync.Pool{New: func() any { return new(logkv.Batch) }}

// PrefersKeyOrder reports that this DB wants a large batch's keys in order,
// which was measured to make the batch cheaper to Apply before the batched
// memtable insert: each insert into the memtable's skiplist found most of
// its path in cache after the previous key's. A replicated node's
// coalescer (replicate.KeyOrderApplier) sorts the big batches it builds,
// a follower's catch-up, for it: CPU a key was 25-35% lower on batches of
// 4,800-6,400 random keys (BenchmarkCoalescerApply), a follower's CPU a
// SET 3.54 -> 2.98 us (6 alternating pairs, load 14-25).
//
// Those figures predate the batched memtable insert (skiplist.AddBatch),
// which overlaps the misses of 16 keys' searches in any order. Measured
// with it, the sort no longer paid for itself: BenchmarkCoalescerApply on
// lsm, this flag on against off (6 alternating pairs, load 10-17), cpu-ns
// a key at 4,800 keys median 1574 against 1431, at 6,400 1579 against
// 1395 (at 4,800 off was lower in 4 of the 6 pairs, on in 1, and 1 was
// a tie at 1402; at 6,400 off was lower in 5 of 6);
// BenchmarkMemtableApply, the insert alone, 4,096 sorted keys
// 1007/866/1120 against unsorted 1193/1055/1407. It stays on until the
// follower's own figures (compare-redis REPLICAS=1, whose catch-up
// batches it touches) are taken against it off.
func (d *DB) PrefersKeyOrder() bool { return true }

// Apply commits b atomically at one sequence number.
//
// The commit path: under commitMu, assign the seq, make room (rotating the
// memtable or stalling), append the record to the WAL buffer, insert into
// the memtable, and publish the seq to readers. A synced write then waits,
// outside the lock, for the WAL's group commit to cover its record, so
// concurrent synced writers share fsyncs. A write is visible to readers
// before it is durable; a synced write returns only once it is durable.
func (d *DB) Apply(b *logkv.Batch, o *logkv.WriteOptions) error {
	if d.closed.Load() {
		return errClosedDB
	}
	if err := b.Err(); err != nil {
		return err
	}
	if b.Empty() {
		if o != nil && o.Seq != 0 {
			d.commitMu.Lock()
			_, err := logkv.SeqFor(o, d.lastSeq.Load())
			d.commitMu.Unlock()
			return err
		}
		return nil
	}
	sync := d.opts.SyncWrites || (o != nil && o.Sync)
	if d.l0Count.Load() >= int64(d.opts.L0SlowdownWritesThreshold) && d.l0Count.Load() < int64(d.opts.L0StopWritesThreshold) {
		start := time.Now()
		time.Sleep(time.Millisecond)
		d.m.slowdowns.Add(1)
		d.m.stallNanos.Add(uint64(time.Since(start)))
	}
	d.commitMu.Lock()
	if d.closed.Load() {
		d.commitMu.Unlock()
		return errClosedDB
	}
	seq, err := logkv.SeqFor(o, d.lastSeq.Load())
	if err == nil && seq > base.MaxSeq {
		err = fmt.Errorf("lsm: sequence number %d over the maximum %d", seq, uint64(base.MaxSeq))
	}
	if err == nil {
		err = d.makeRoomForWrite(b)
	}
	if err != nil {
		d.commitMu.Unlock()
		return err
	}
	w := d.wal
	var end int64
	if w != nil {
		if end, err = w.append(seq, b.Repr()); err != nil {
			d.commitMu.Unlock()
			return err
		}
	}
	nbytes, err := d.mem.apply(b, seq)
	if err != nil {
		// roomFor guarantees the space; a failure here would leave part of
		// a batch in the memtable, so the DB stops taking writes.
		d.mu.Lock()
		d.failLocked(fmt.Errorf("lsm: memtable insert: %w", err))
		d.mu.Unlock()
		d.commitMu.Unlock()
		return err
	}
	d.lastSeq.Store(seq)
	d.visible.Store(seq)
	d.commitMu.Unlock()
	d.m.writes.Add(1)
	d.m.writeOps.Add(uint64(b.Len()))
	d.m.bytesWritten.Add(uint64(nbytes))
	if sync {
		if w != nil {
			return w.syncTo(end)
		}
		return d.flushAll()
	}
	return nil
}

// makeRoomForWrite makes sure the mutable memtable can take b, rotating it
// (and the WAL segment) when full, and stalls while the memtables waiting
// to flush or L0 are at their limits. The caller holds commitMu.
func (d *DB) makeRoomForWrite(b *logkv.Batch) error {
	// The fast path, without d.mu: d.mem changes only under commitMu, which
	// the caller holds.
	if !d.failed.Load() && d.l0Count.Load() < int64(d.opts.L0StopWritesThreshold) && d.mem.roomFor(b.Size(), b.Len()) {
		return nil
	}
	stalled := false
	var start time.Time
	defer func() {
		if stalled {
			d.m.stalls.Add(1)
			d.m.stallNanos.Add(uint64(time.Since(start)))
		}
	}()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.bgErr != nil {
			return d.bgErr
		}
		if d.closing {
			return errClosedDB
		}
		if len(d.current.Levels[0]) >= d.opts.L0StopWritesThreshold {
			if !stalled {
				stalled, start = true, time.Now()
			}
			d.cond.Wait()
			continue
		}
		if d.mem.roomFor(b.Size(), b.Len()) {
			return nil
		}
		if len(d.imm)+1 >= d.opts.MemtableStopWritesThreshold {
			if !stalled {
				stalled, start = true, time.Now()
			}
			d.cond.Wait()
			continue
		}
		if err := d.rotateMemtableLocked(int64(b.Size() + b.Len()*entryBound)); err != nil {
			return err
		}
	}
}

// rotateMemtableLocked freezes the mutable memtable, starts a new WAL
// segment for its successor, and wakes the flusher. The caller holds
// commitMu and d.mu. need is the room the next write needs.
func (d *DB) rotateMemtableLocked(need int64) error {
	var walNum uint64
	if !d.opts.DisableWAL {
		// The old segment is synced whole before the new one exists, so
		// only the last segment can have a torn tail after a crash, and a
		// synced write in the new segment never follows lost writes.
		if err := d.wal.close(); err != nil {
			return d.failLocked(err)
		}
		walNum = d.nextFileNum
		d.nextFileNum++
		f, err := d.fs.Create(joinPath(d.dir, logName(walNum)))
		if err == nil {
			err = d.fs.SyncDir(d.dir)
		}
		if err != nil {
			return d.failLocked(fmt.Errorf("lsm: create WAL segment: %w", err))
		}
		d.wal = d.newWAL(f, walNum)
	}
	size := max(d.opts.MemtableSize, need+4096)
	d.imm = append(d.imm, d.mem)
	old := d.mem
	d.mem = newMemTable(size, walNum)
	// The Gets that index the new memtable (memTable.catchUp) size its
	// index once, for as many keys as they indexed in its predecessor.
	d.mem.keysHint = int(old.indexKeys.Load())
	d.updateReadStateLocked()
	d.cond.Broadcast()
	return nil
}

// failLocked records a background error: the DB stops taking writes. The
// caller holds d.mu.
func (d *DB) failLocked(err error) error {
	if d.bgErr == nil {
		d.bgErr = err
		d.failed.Store(true)
	}
	return d.bgErr
}

// flushAll freezes the mutable memtable (if it holds anything) and waits
// until every memtable is flushed: with DisableWAL, this is what makes
// writes durable.
func (d *DB) flushAll() error {
	d.commitMu.Lock()
	d.mu.Lock()
	var err error
	if !d.mem.empty() {
		for len(d.imm)+1 >= d.opts.MemtableStopWritesThreshold && d.bgErr == nil && !d.closing {
			d.cond.Wait()
		}
		if d.bgErr == nil && !d.closing {
			err = d.rotateMemtableLocked(0)
		}
	}
	d.commitMu.Unlock()
	for err == nil && len(d.imm) > 0 && d.bgErr == nil && !d.closing {
		d.cond.Wait()
	}
	if err == nil {
		err = d.bgErr
	}
	if err == nil && len(d.imm) > 0 {
		err = errClosedDB
	}
	d.mu.Unlock()
	return err
}

// Sync makes every committed write durable: it syncs the WAL, or, with
// DisableWAL, flushes the memtables to tables.
func (d *DB) Sync() error {
	if d.closed.Load() {
		return errClosedDB
	}
	if d.opts.DisableWAL {
		return d.flushAll()
	}
	d.commitMu.Lock()
	w := d.wal
	d.commitMu.Unlock()
	w.mu.Lock()
	end := w.appended
	w.mu.Unlock()
	// Rotated meanwhile: close synced w whole and the round returns nil
	// (syncFlush). An error here is close's own failure (or a round's) and
	// must reach the caller: the bytes up to end may not be durable.
	return w.syncTo(end)
}
