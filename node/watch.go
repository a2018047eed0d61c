package node

import (
	"sync"
	"sync/atomic"
)

// WATCH. A client's watched keys are registered here; every write that
// commits (a tx, a pending run of blind writes, the expirer, a flush)
// touches its keys, which marks each client watching one of them dirty, and
// a dirty client's EXEC fails with a null reply. A key that was alive when
// watched and has expired by EXEC counts as modified too, as in Redis, even
// if no delete reached it yet. While nobody watches, writers pay one atomic
// load.

// watchRegistry maps watched keys to their watchers.
type watchRegistry struct {
	// count is how many (client, key) pairs are registered.
	count atomic.Int64
	mu    sync.Mutex
	keys  map[string]map[*client]struct{} // indexKey(db, key) -> watchers
}

// watchedKey is one key a client watches.
type watchedKey struct {
	db  int
	key string
	// expireAt is the key's deadline when watched, if it was alive with
	// one: past it, EXEC fails.
	expireAt int64
}

// clientKS is a client's keyspace state.
type clientKS struct {
	// db is the selected database (SELECT).
	db int
	// multi is the queue between MULTI and EXEC/DISCARD, or nil.
	multi *multiState
	// exec is the EXEC's tx while EXEC runs its commands.
	exec *tx
	// watched are the keys WATCHed since the last EXEC/DISCARD/UNWATCH;
	// watchDirty is set (by any client's loop) when one was modified.
	watched    []watchedKey
	watchDirty atomic.Bool
}

func init() {
	for _, c := range []*command{
		{name: "watch", arity: -2, run: cmdWatch, first: 1, last: -1, step: 1},
		{name: "unwatch", arity: 1, run: cmdUnwatch},
	} {
		register(c)
	}
}

func cmdWatch(n *Node, c *client, args [][]byte) {
	if c.ks.multi != nil {
		c.fail("ERR WATCH inside MULTI is not allowed")
		return
	}
	t := n.read(c)
	defer t.close()
	for _, k := range args[1:] {
		_, at, found, err := t.get(k)
		if err != nil {
			n.replyErr(c, err)
			return
		}
		w := watchedKey{db: c.ks.db, key: string(k)}
		if found {
			w.expireAt = at
		}
		n.watchKey(c, w)
	}
	c.conn.WriteString("OK")
}

func cmdUnwatch(n *Node, c *client, args [][]byte) {
	n.unwatchAll(c)
	c.conn.WriteString("OK")
}

// watchKey registers c as a watcher of w.
func (n *Node) watchKey(c *client, w watchedKey) {
	r := &n.ks.watch
	ik := string(byte(w.db)) + w.key
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = map[string]map[*client]struct{}{}
	}
	m := r.keys[ik]
	if m == nil {
		m = map[*client]struct{}{}
		r.keys[ik] = m
	}
	if _, ok := m[c]; ok {
		return
	}
	m[c] = struct{}{}
	c.ks.watched = append(c.ks.watched, w)
	r.count.Add(1)
}

// unwatchAll forgets c's watched keys and their modification. EXEC,
// DISCARD, UNWATCH and a closing connection call it.
func (n *Node) unwatchAll(c *client) {
	if len(c.ks.watched) > 0 {
		r := &n.ks.watch
		r.mu.Lock()
		for _, w := range c.ks.watched {
			ik := string(byte(w.db)) + w.key
			if m := r.keys[ik]; m != nil {
				delete(m, c)
				if len(m) == 0 {
					delete(r.keys, ik)
				}
			}
			r.count.Add(-1)
		}
		r.mu.Unlock()
		c.ks.watched = nil
	}
	c.ks.watchDirty.Store(false)
}

// watchFailed reports whether EXEC must fail: a watched key was modified,
// or has expired since it was watched.
func (n *Node) watchFailed(c *client) bool {
	if c.ks.watchDirty.Load() {
		return true
	}
	now := n.nowMs()
	for _, w := range c.ks.watched {
		if w.expireAt != 0 && w.expireAt <= now {
			return true
		}
	}
	return false
}

// touchKey marks the watchers of (db, key) dirty.
func (n *Node) touchKey(db int, key []byte) {
	r := &n.ks.watch
	if r.count.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.keys[indexKey(db, key)] {
		c.ks.watchDirty.Store(true)
	}
}

// watchedIn returns the keys of database db that some client watches.
func (n *Node) watchedIn(db int) [][]byte {
	r := &n.ks.watch
	if r.count.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var keys [][]byte
	for ik := range r.keys {
		if int(ik[0]) == db {
			keys = append(keys, []byte(ik[1:]))
		}
	}
	return keys
}

// touchTx marks the watchers of what tx t just committed.
func (n *Node) touchTx(t *tx) {
	if n.ks.watch.count.Load() == 0 {
		return
	}
	for i := range t.flushTouch {
		n.touchKey(t.flushTouch[i].db, t.flushTouch[i].key)
	}
	for i := range t.keys {
		if k := &t.keys[i]; k.dirty {
			n.touchKey(k.db, k.key)
		}
	}
}
