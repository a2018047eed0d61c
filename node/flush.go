package node

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
)

// FLUSHDB and FLUSHALL, DBSIZE, and the background worker that expires keys
// and sweeps flushed generations.
//
// A flush is one write: the database's generation (keyspace.go) moves on,
// so every key of the old generation is out of reach at once, whatever the
// engine and however many keys (O(1), and one commit-log record that
// followers apply as such). The old generation's keys are deleted later by
// the leader's background worker, sweepBatch keys a batch, replicated as
// ordinary deletes.
//
// DBSIZE counts: it walks the database's current generation and skips
// expired keys, so it equals what a full SCAN returns, on every engine, after
// any writes, expiries, flushes, restarts and resyncs. It costs O(keys)
// (docs/keyspace.md has the figures) and nothing on the write path, so it
// runs off the event loop.

// sweepBatch bounds the deletes of one sweeping batch; one batch a tick.
const sweepBatch = 5000

func init() {
	for _, c := range []*command{
		{name: "flushdb", arity: -1, write: true, admin: true, run: cmdFlush},
		{name: "flushall", arity: -1, write: true, admin: true, run: cmdFlush},
		{name: "dbsize", arity: 1, slow: true, heavy: true, run: cmdDBSize},
	} {
		register(c)
	}
}

// cmdFlush: FLUSHDB [ASYNC | SYNC], FLUSHALL [ASYNC | SYNC]. Both modes
// return once the flush is committed; the space is reclaimed in the
// background either way.
func cmdFlush(n *Node, c *client, args [][]byte) {
	if len(args) > 2 {
		c.fail(errSyntax)
		return
	}
	if len(args) == 2 {
		if m := strings.ToLower(string(args[1])); m != "async" && m != "sync" {
			c.fail(errSyntax)
			return
		}
	}
	t := n.begin(c, nil)
	defer t.close()
	dbs := []int{c.ks.db}
	if strings.EqualFold(string(args[0]), "flushall") {
		dbs = dbs[:0]
		for db := range maxDBs {
			dbs = append(dbs, db)
		}
	}
	for _, db := range dbs {
		if err := t.flushDB(db); err != nil {
			n.replyErr(c, err)
			return
		}
	}
	if t.commit() {
		c.conn.WriteString("OK")
	}
}

func cmdDBSize(n *Node, c *client, args [][]byte) {
	count := n.countKeys
	if t := c.ks.exec; t != nil {
		// Inside EXEC: with the transaction's own writes (txview.go).
		count = func(db int) (int64, int64, error) { k, err := t.countKeys(db); return k, 0, err }
	}
	keys, _, err := count(c.ks.db)
	if err != nil {
		n.replyErr(c, err)
		return
	}
	c.conn.WriteInt64(keys)
}

// countKeys counts db's live keys, and those of them with a deadline, in
// one snapshot. It walks the data range's keys without reading their values
// (bitcask reads a value from disk, 2 s for 1M keys), then corrects with
// the expiry index: every key with a deadline has the entry of that
// deadline, so the entries whose key carries the same deadline are exactly
// the keys with one; those past it are not live. Stale entries (the key
// was rewritten) do not match and count for nothing.
func (n *Node) countKeys(db int) (keys, expires int64, err error) {
	gen, err := n.gen(db)
	if err != nil {
		return 0, 0, err
	}
	now := n.nowMs()
	snap, err := n.eng().NewSnapshot()
	if err != nil {
		return 0, 0, err
	}
	defer snap.Close()
	count := func(lower []byte, each func(k []byte) error) error {
		it, err := snap.NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			if err := each(it.Key()); err != nil {
				return err
			}
		}
		return it.Error()
	}
	if err := count(dataPrefix(db, gen), func([]byte) error { keys++; return nil }); err != nil {
		return 0, 0, err
	}
	var kbuf []byte
	err = count(expiryPrefix(db, gen), func(k []byte) error {
		_, _, at, key, ok := decodeExpiryKey(k)
		if !ok {
			return fmt.Errorf("%w: expiry index key %q", logkv.ErrCorrupt, k)
		}
		kbuf = appendDataKey(kbuf[:0], db, gen, key)
		v, err := snap.Get(kbuf)
		if errors.Is(err, logkv.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, vat, err := decodeValue(v); err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		} else if vat == at {
			if at <= now {
				keys--
			} else {
				expires++
			}
		}
		return nil
	})
	return keys, expires, err
}

// bgState is the background worker's state.
type bgState struct {
	// sweep: an older generation may still hold keys.
	sweep atomic.Bool
}

// startBackground starts the worker that sweeps flushed generations, on a
// leader, every bgInterval, and the active expirer (expire.go).
func (n *Node) startBackground() {
	ks := &n.ks
	ks.stopBG, ks.bgDone, ks.bgKick = make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
	ks.bg.sweep.Store(true)
	go func() {
		defer close(ks.bgDone)
		expirer := n.runExpirer(ks.stopBG) // expire.go
		defer func() { <-expirer }()
		tick := time.NewTicker(bgInterval)
		defer tick.Stop()
		for {
			select {
			case <-ks.stopBG:
				return
			case <-tick.C:
			case <-ks.bgKick:
				ks.bg.sweep.Store(true)
			}
			n.backgroundRound()
		}
	}()
}

// backgroundRound is one round of the worker.
func (n *Node) backgroundRound() {
	if n.closing.Load() {
		return
	}
	if n.backend.IsFollower() {
		// A promoted follower sweeps what its leader left, and reads the
		// index it was sent.
		n.ks.bg.sweep.Store(true)
		n.ks.nextDue.Store(0)
		return
	}
	if n.ks.bg.sweep.Load() {
		more, err := n.sweepOld()
		if err != nil {
			n.log.Warn("sweeping flushed keys failed; retrying next round", "err", err)
			return
		}
		n.ks.bg.sweep.Store(more)
	}
}

// stopBackground stops the worker and waits for its round to end.
func (n *Node) stopBackground() {
	ks := &n.ks
	if ks.stopBG != nil {
		close(ks.stopBG)
		<-ks.bgDone
		ks.stopBG = nil
	}
}

// sweepOld deletes up to sweepBatch keys of flushed generations, and reports
// whether more may remain.
func (n *Node) sweepOld() (more bool, err error) {
	var b logkv.Batch
	for db := range maxDBs {
		gen, err := n.gen(db)
		if err != nil {
			return true, err
		}
		if gen == 0 {
			continue
		}
		for _, prefix := range []func(int, uint32) []byte{dataPrefix, expiryPrefix} {
			lower, upper := prefix(db, 0), prefix(db, gen)
			it, err := n.eng().NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: upper})
			if err != nil {
				return true, err
			}
			for ok := it.First(); ok && b.Len() < sweepBatch; ok = it.Next() {
				b.Delete(it.Key())
			}
			more = more || it.Valid()
			err = it.Error()
			it.Close()
			if err != nil {
				return true, err
			}
		}
		if b.Len() >= sweepBatch {
			more = true
			break
		}
	}
	if b.Empty() {
		return more, nil
	}
	return true, errors.Join(n.backend.Submit(&b), n.backend.Sync())
}

// keyspaceInfo adds INFO keyspace's line for each database with keys.
// Counting is O(keys) (countKeys) and INFO runs on the event loop, which
// monitoring polls every few seconds: so INFO shows the counts of the last
// count, taken on a goroutine at most once a second and started by the INFO
// that finds them older than that. Only the first INFO counts on the loop.
// DBSIZE is the exact, current count.
func (n *Node) keyspaceInfo(add func(string, any)) {
	ks := &n.ks.info
	ks.mu.Lock()
	lines, at, running := ks.lines, ks.at, ks.running
	if lines == nil && !running {
		ks.mu.Unlock()
		lines = n.keyspaceLines()
		ks.mu.Lock()
		ks.lines, ks.at = lines, time.Now()
	} else if time.Since(at) > time.Second && !running {
		ks.running = true
		go func() {
			l := n.keyspaceLines()
			ks.mu.Lock()
			ks.lines, ks.at, ks.running = l, time.Now(), false
			ks.mu.Unlock()
		}()
	}
	ks.mu.Unlock()
	for _, l := range lines {
		add(l[0], l[1])
	}
}

// keyspaceInfoCache is the last INFO keyspace count.
type keyspaceInfoCache struct {
	mu      sync.Mutex
	lines   [][2]string // non-nil once counted
	at      time.Time
	running bool
}

// keyspaceLines counts every database: INFO keyspace's lines.
func (n *Node) keyspaceLines() [][2]string {
	lines := [][2]string{}
	for db := range n.databases() {
		keys, expires, err := n.countKeys(db)
		if err != nil {
			lines = append(lines, [2]string{fmt.Sprintf("db%d_error", db), err.Error()})
			continue
		}
		if keys > 0 {
			lines = append(lines, [2]string{fmt.Sprintf("db%d", db), fmt.Sprintf("keys=%d,expires=%d,avg_ttl=0", keys, expires)})
		}
	}
	return lines
}
