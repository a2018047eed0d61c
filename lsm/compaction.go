package lsm

import (
	"bytes"
	"fmt"
	"runtime"
	"sort"

	"github.com/logkv/logkv/lsm/internal/base"
	"github.com/logkv/logkv/lsm/internal/manifest"
	"github.com/logkv/logkv/lsm/internal/sstable"
)

// flushLoop flushes immutable memtables to L0, oldest first.
func (d *DB) flushLoop() {
	defer d.bg.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		for !d.closing && (len(d.imm) == 0 || d.bgErr != nil) {
			d.cond.Wait()
		}
		if d.closing {
			return
		}
		m := d.imm[0]
		next := d.mem
		if len(d.imm) > 1 {
			next = d.imm[1]
		}
		d.flushing = true
		d.mu.Unlock()
		err := d.flush(m, next.logNum)
		d.mu.Lock()
		d.flushing = false
		if err != nil && !d.closing {
			d.failLocked(fmt.Errorf("lsm: flush: %w", err))
		}
		d.cond.Broadcast()
	}
}

// flush writes m to an L0 table and records it, with nextLog (the WAL
// segment of the memtable after m) as the oldest WAL still needed; then m's
// WAL segment is deleted.
func (d *DB) flush(m *memTable, nextLog uint64) error {
	e := &manifest.Edit{LastSeq: m.maxSeq.Load(), LogNum: nextLog}
	if !m.empty() {
		meta, err := d.writeL0(m)
		if err != nil {
			return err
		}
		if d.testHooks.afterFlushTable != nil {
			d.testHooks.afterFlushTable()
		}
		if err := d.fs.SyncDir(d.dir); err != nil {
			return fmt.Errorf("lsm: sync directory: %w", err)
		}
		e.Added = []manifest.NewFile{{Level: 0, Meta: meta}}
	}
	err := d.logAndApply(e, func() { d.imm = d.imm[1:] })
	if err != nil {
		return err
	}
	if m.logNum != 0 && !d.noDelete.Load() {
		_ = d.fs.Remove(joinPath(d.dir, logName(m.logNum)))
	}
	return nil
}

// compaction is one unit of compaction work: the inputs of level and
// level+1, written out as level+1.
type compaction struct {
	level   int
	inputs  [2][]*manifest.FileMeta
	trivial bool
	bottom  bool // no level below the output holds keys in its range
	score   float64
}

// compactLoop runs compactions while some level's score is at least 1.
func (d *DB) compactLoop() {
	defer d.bg.Done()
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		var c *compaction
		for !d.closing && d.bgErr == nil {
			if c = d.pickCompactionLocked(); c != nil {
				break
			}
			d.cond.Wait()
		}
		if d.closing || d.bgErr != nil {
			return
		}
		d.compacting = true
		d.mu.Unlock()
		err := d.runCompaction(c)
		d.mu.Lock()
		d.compacting = false
		if err != nil && err != errClosing && !d.closing {
			d.failLocked(fmt.Errorf("lsm: compaction: %w", err))
		}
		d.cond.Broadcast()
	}
}

// pickCompactionLocked returns the compaction of the level with the highest
// score >= 1, or nil. L0's score is its file count over
// L0CompactionThreshold; Ln's is its size over its target size.
func (d *DB) pickCompactionLocked() *compaction {
	v := d.current
	best, bestScore := -1, 1.0
	if s := float64(len(v.Levels[0])) / float64(d.opts.L0CompactionThreshold); s >= bestScore {
		best, bestScore = 0, s
	}
	for lvl := 1; lvl < manifest.NumLevels-1; lvl++ {
		if s := float64(v.LevelSize(lvl)) / d.opts.levelMaxBytes(lvl); s > bestScore {
			best, bestScore = lvl, s
		}
	}
	if best < 0 {
		return nil
	}
	c := &compaction{level: best, score: bestScore}
	if best == 0 {
		c.inputs[0] = append([]*manifest.FileMeta(nil), v.Levels[0]...)
	} else {
		files := v.Levels[best]
		i := 0
		if ptr := d.compactPtr[best]; ptr != nil {
			i = manifest.SearchLevel(files, ptr)
			if i < len(files) && bytes.Equal(base.UserKey(files[i].Largest), ptr) {
				i++
			}
			if i == len(files) {
				i = 0
			}
		}
		c.inputs[0] = []*manifest.FileMeta{files[i]}
		d.compactPtr[best] = append([]byte(nil), base.UserKey(files[i].Largest)...)
	}
	lo, hi := keyRange(c.inputs[0])
	c.inputs[1] = v.Overlaps(best+1, lo, hi)
	if len(c.inputs[1]) > 0 {
		l2, h2 := keyRange(c.inputs[1])
		if bytes.Compare(l2, lo) < 0 {
			lo = l2
		}
		if bytes.Compare(h2, hi) > 0 {
			hi = h2
		}
	}
	c.trivial = len(c.inputs[0]) == 1 && len(c.inputs[1]) == 0
	c.bottom = true
	for lvl := best + 2; lvl < manifest.NumLevels; lvl++ {
		if len(v.Overlaps(lvl, lo, hi)) > 0 {
			c.bottom = false
			break
		}
	}
	return c
}

// keyRange returns the smallest and largest user keys of files.
func keyRange(files []*manifest.FileMeta) (lo, hi []byte) {
	for _, f := range files {
		s, l := base.UserKey(f.Smallest), base.UserKey(f.Largest)
		if lo == nil || bytes.Compare(s, lo) < 0 {
			lo = s
		}
		if hi == nil || bytes.Compare(l, hi) > 0 {
			hi = l
		}
	}
	return lo, hi
}

// runCompaction merges c's inputs into new tables of level+1 and installs
// the result.
//
// Versions are dropped by snapshot stripe: the open snapshots' seqs split
// the sequence space into stripes (seq <= s0, s0 < seq <= s1, ..., above the
// newest snapshot), and a reader at any snapshot, or at the latest state,
// sees only the newest version of a key within a stripe. So within a stripe
// only the newest version is kept. A tombstone that is the newest version of
// its key in the lowest stripe hides everything any reader could see below
// it; at the bottom of the tree (no lower level holds the key) it has
// nothing left to hide and is dropped too.
func (d *DB) runCompaction(c *compaction) error {
	out := c.level + 1
	e := &manifest.Edit{}
	for i, files := range c.inputs {
		for _, f := range files {
			e.Deleted = append(e.Deleted, manifest.DeletedFile{Level: c.level + i, Num: f.Num})
		}
	}
	if c.trivial {
		e.Added = []manifest.NewFile{{Level: out, Meta: c.inputs[0][0]}}
		d.m.trivialMoves.Add(1)
		return d.logAndApply(e, nil)
	}
	d.mu.Lock()
	snaps := append([]uint64(nil), d.snapshots...)
	d.mu.Unlock()

	var iters []internalIter
	var inBytes uint64
	for _, files := range c.inputs {
		for _, f := range files {
			inBytes += f.Size
			ti, err := d.newCompactionIter(f)
			if err != nil {
				closeIters(iters)
				return err
			}
			iters = append(iters, ti)
		}
	}
	mi := newMergingIter(iters)
	defer mi.Close()

	var (
		outputs   []*manifest.FileMeta
		w         *tableBuilder
		prevUK    []byte
		hasPrev   bool
		lastStrip = -1
		n         int
	)
	finish := func() error {
		if w == nil {
			return nil
		}
		meta, err := w.finish()
		w = nil
		if err != nil {
			return err
		}
		outputs = append(outputs, meta)
		return nil
	}
	fail := func(err error) error {
		if w != nil {
			w.abandon()
		}
		for _, m := range outputs {
			_ = d.fs.Remove(joinPath(d.dir, tableName(m.Num)))
		}
		return err
	}
	for ok := mi.First(); ok; ok = mi.Next() {
		if n++; n%256 == 0 {
			// Let a goroutine that waits for a P run. A merge does not
			// block for long stretches: on a 2-core node it held one of
			// the two Ps until the runtime preempted it (10 ms) while the
			// other was taken by the expirer or by a goroutine in a system
			// call, and kvnode's event loop, back from epoll, waited. In a
			// runtime trace of kvnode during a mass expiry
			// (cmd/kvbench/expiry-latency TRACE=, lsm, load 9-13) the
			// compaction ran in stretches of p90 6.6-12.3 ms and was
			// running through 86-182 ms of the event loop's waits of 200
			// us or more in 5 s. With this yield (lsm's BenchmarkNodeSetGet
			// under go test -trace, 1.6M SETs, 2 alternating pairs at load
			// 10-15) its stretches are p90 85-91 us, were 13.0-13.4 ms; a
			// Gosched with nothing else to run costs about 100 ns, some
			// 0.1% of 256 entries' merge.
			runtime.Gosched()
		}
		if n%1024 == 0 {
			d.mu.Lock()
			closing := d.closing
			d.mu.Unlock()
			if closing {
				return fail(errClosing)
			}
		}
		ik := mi.Key()
		uk := base.UserKey(ik)
		seq := base.Seq(ik)
		newKey := !hasPrev || !bytes.Equal(uk, prevUK)
		if newKey {
			prevUK = append(prevUK[:0], uk...)
			hasPrev = true
			lastStrip = -1
		}
		stripe := sort.Search(len(snaps), func(i int) bool { return snaps[i] >= seq })
		if stripe == lastStrip {
			continue // shadowed by a newer version in the same stripe
		}
		lastStrip = stripe
		if base.KindOf(ik) == base.KindDelete && stripe == 0 && c.bottom {
			continue
		}
		if w != nil && newKey && w.w.EstimatedSize() >= uint64(d.opts.TargetFileSize) {
			if err := finish(); err != nil {
				return fail(err)
			}
		}
		if w == nil {
			var err error
			if w, err = d.newTableBuilder(); err != nil {
				return fail(err)
			}
		}
		if err := w.w.Add(ik, mi.Value()); err != nil {
			return fail(err)
		}
	}
	if err := mi.Error(); err != nil {
		return fail(err)
	}
	if err := finish(); err != nil {
		return fail(err)
	}
	if d.testHooks.afterCompactionTables != nil {
		d.testHooks.afterCompactionTables()
	}
	if err := d.fs.SyncDir(d.dir); err != nil {
		return fail(fmt.Errorf("lsm: sync directory: %w", err))
	}
	var outBytes uint64
	for _, m := range outputs {
		e.Added = append(e.Added, manifest.NewFile{Level: out, Meta: m})
		outBytes += m.Size
	}
	if err := d.logAndApply(e, nil); err != nil {
		return fail(err)
	}
	d.m.compactions.Add(1)
	d.m.compactBytesIn.Add(inBytes)
	d.m.compactBytesOut.Add(outBytes)
	return nil
}

// compactionIter reads one compaction input through a reader of its own,
// without the block cache: a compaction reads each block once, and caching
// its blocks would evict the blocks that reads need (Pebble and RocksDB do
// the same).
type compactionIter struct {
	*sstable.Iter
	r *sstable.Reader
}

func (d *DB) newCompactionIter(f *manifest.FileMeta) (*compactionIter, error) {
	r, err := d.tc.openWith(f, nil)
	if err != nil {
		return nil, err
	}
	return &compactionIter{Iter: r.NewIter(nil, nil), r: r}, nil
}

func (c *compactionIter) Close() error {
	err := c.Iter.Close()
	if cerr := c.r.Close(); err == nil {
		err = cerr
	}
	return err
}
