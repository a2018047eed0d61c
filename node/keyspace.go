package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logkv/logkv"
)

// The keyspace: how Redis keys, values, deadlines and databases live in one
// ordered logkv engine, and the transaction (tx) every data command runs on.
//
// # How to write a command
//
// A command that writes declares its keys and runs on a tx:
//
//	t := n.begin(c, args[1:2]) // locks the keys, makes earlier writes readable
//	defer t.close()            // unlocks
//	v, expireAt, found, err := t.get(args[1])
//	if err != nil { n.replyErr(c, err); return }
//	t.set(args[1], newValue, keepOrNewDeadline)
//	if !t.commit() { return }  // one logkv.Batch, one commit-log record; replied the error
//	c.conn.WriteInt(1)
//
// A command that only reads uses n.read(c) (no locks; a snapshot with
// n.readSnapshot(c) when it reads several keys). Reads go through the tx's
// own writes and never see an expired key. Inside EXEC, begin and read
// return the EXEC's shared tx: its keys are locked already, commit is a
// no-op, and EXEC applies every command's writes as one batch (multi.go).
// Never write to the engine or the backend directly: the tx keeps the
// deadline index, the watchers and the generation right.
//
// # Engine encoding (keyspace format 1)
//
// Every engine key starts with a one-byte tag, so the ranges below are
// disjoint and no client key can reach a reserved one (a client key is
// always preceded by tagData, its database and its generation):
//
//	meta   0x00 name                                node state, value below
//	       0x00 "format"                            -> 1 byte: format version (1)
//	       0x00 "gen" db                            -> 4 bytes BE: db's generation
//	data   0x01 db gen[4 BE] key                    -> value (below)
//	expiry 0x02 db gen[4 BE] deadline[8 BE] key     -> empty
//
// db is the database number (0..15, SELECT). gen is the database's
// generation: FLUSHDB/FLUSHALL bump it with one meta write, which hides every
// older key at once; a background sweeper deletes older generations in
// chunks (flush.go). The expiry range is an index by deadline (Unix
// milliseconds, big-endian so it sorts by time): it is written in the same
// batch as the value, so the active expirer finds exactly the keys due
// (expire.go). An index entry is a hint checked against the value's own
// deadline, so a stale one (the key was overwritten by a blind SET) is
// harmless and swept when its time comes.
//
// A value is a header, then the payload (a string's bytes):
//
//	byte 0      flags: bit 7 set = a deadline follows; bits 0..3 type
//	            (0 = string); bits 4..6 reserved, zero
//	bytes 1..8  deadline, Unix milliseconds, BE (only with bit 7)
//
// A key without a TTL costs 6 bytes of key prefix and 1 byte of header; with
// a TTL, 8 more bytes of value and an index entry (the key plus 14 bytes,
// empty value).
//
// Data written before format 1 (raw client keys, no header) has no "format"
// meta key: a node refuses to open such an engine with an error naming the
// format, rather than misreading it (see checkFormat).
//
// # Cluster hook
//
// A Redis Cluster mode would put the key's 2-byte hash slot (CRC16 mod
// 16384, big-endian) between gen and key in both the data and the expiry
// range: 0x01 db gen slot key. A slot is then an ordered key range, so
// migrating one is a range scan and DBSIZE/SCAN per slot are bounded
// iterations. Only dataKey, expiryKey and their decoders would change.

// Tags of the engine key ranges.
const (
	tagMeta   = 0x00
	tagData   = 0x01
	tagExpiry = 0x02
)

// keyspaceFormat is the engine encoding this node reads and writes.
const keyspaceFormat = 1

// maxDBs is the number of databases the encoding allows (SELECT 0..15,
// Redis' default).
const maxDBs = 16

// dataPrefixLen is the prefix before a client key: tag, db, gen.
const dataPrefixLen = 1 + 1 + 4

// expiryPrefixLen is the prefix before a client key in the expiry index.
const expiryPrefixLen = dataPrefixLen + 8

// valueHeaderMax is the longest value header (flags and a deadline).
const valueHeaderMax = 9

// Value header flags.
const (
	valHasDeadline = 0x80
	valTypeMask    = 0x0f
	valReserved    = 0x70
	typeString     = 0
)

var (
	metaFormatKey = []byte{tagMeta, 'f', 'o', 'r', 'm', 'a', 't'}
)

// metaGenKey is the key of db's generation.
func metaGenKey(db int) []byte { return []byte{tagMeta, 'g', 'e', 'n', byte(db)} }

// appendDataKey appends the engine key of (db, gen, key) to dst.
func appendDataKey(dst []byte, db int, gen uint32, key []byte) []byte {
	dst = append(dst, tagData, byte(db))
	dst = binary.BigEndian.AppendUint32(dst, gen)
	return append(dst, key...)
}

// dataPrefix is the first engine key of (db, gen)'s data range.
func dataPrefix(db int, gen uint32) []byte { return appendDataKey(nil, db, gen, nil) }

// appendExpiryKey appends the expiry index key of (db, gen, at, key).
func appendExpiryKey(dst []byte, db int, gen uint32, at int64, key []byte) []byte {
	dst = append(dst, tagExpiry, byte(db))
	dst = binary.BigEndian.AppendUint32(dst, gen)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at))
	return append(dst, key...)
}

// decodeDataKey splits an engine data key.
func decodeDataKey(k []byte) (db int, gen uint32, key []byte, ok bool) {
	if len(k) <= dataPrefixLen || k[0] != tagData {
		return 0, 0, nil, false
	}
	return int(k[1]), binary.BigEndian.Uint32(k[2:6]), k[dataPrefixLen:], true
}

// decodeExpiryKey splits an expiry index key.
func decodeExpiryKey(k []byte) (db int, gen uint32, at int64, key []byte, ok bool) {
	if len(k) <= expiryPrefixLen || k[0] != tagExpiry {
		return 0, 0, 0, nil, false
	}
	return int(k[1]), binary.BigEndian.Uint32(k[2:6]), int64(binary.BigEndian.Uint64(k[6:14])), k[expiryPrefixLen:], true
}

// appendValue appends the engine value of a string with deadline expireAt
// (0: none).
func appendValue(dst []byte, expireAt int64, payload []byte) []byte {
	if expireAt == 0 {
		dst = append(dst, typeString)
	} else {
		dst = append(dst, valHasDeadline|typeString)
		dst = binary.BigEndian.AppendUint64(dst, uint64(expireAt))
	}
	return append(dst, payload...)
}

// errBadValue reports a value this format cannot read.
var errBadValue = fmt.Errorf("%w: value header is not keyspace format %d", logkv.ErrCorrupt, keyspaceFormat)

// decodeValue splits an engine value into its payload and deadline.
func decodeValue(v []byte) (payload []byte, expireAt int64, err error) {
	if len(v) == 0 || v[0]&valReserved != 0 || v[0]&valTypeMask != typeString {
		return nil, 0, errBadValue
	}
	if v[0]&valHasDeadline == 0 {
		return v[1:], 0, nil
	}
	if len(v) < valueHeaderMax {
		return nil, 0, errBadValue
	}
	at := int64(binary.BigEndian.Uint64(v[1:9]))
	if at <= 0 {
		return nil, 0, errBadValue
	}
	return v[9:], at, nil
}

// keyspace is the node's keyspace state: the databases' generations, the
// clock, the watchers and the background expirer.
type keyspace struct {
	// gens caches each database's generation on a leader (a follower reads
	// the meta keys, which its leader's writes change).
	gens       [maxDBs]atomic.Uint32
	gensLoaded atomic.Bool
	// genMu orders generation bumps (FLUSHDB/FLUSHALL).
	genMu sync.Mutex
	// fixedNow, when non-zero, is the clock in Unix milliseconds: tests set
	// it (setClock) instead of sleeping.
	fixedNow atomic.Int64

	watch watchRegistry
	bg    bgState

	stopBG chan struct{}
	bgDone chan struct{}
	// bgKick wakes the background worker early (a flush to sweep).
	bgKick chan struct{}
}

// nowMs is the node's clock in Unix milliseconds.
func (n *Node) nowMs() int64 {
	if f := n.ks.fixedNow.Load(); f != 0 {
		return f
	}
	return time.Now().UnixMilli()
}

// setClock fixes the node's clock at ms (0: the real clock again). Tests use
// it to expire keys without sleeping.
func (n *Node) setClock(ms int64) { n.ks.fixedNow.Store(ms) }

// databases is how many databases SELECT may choose from.
func (n *Node) databases() int {
	if d := n.cfg.Databases; d > 0 {
		return d
	}
	return maxDBs
}

// gen returns db's current generation.
func (n *Node) gen(db int) (uint32, error) {
	ks := &n.ks
	if n.backend.IsFollower() {
		ks.gensLoaded.Store(false) // a leader reloads after promotion
		return n.readGen(db)
	}
	if ks.gensLoaded.Load() {
		return ks.gens[db].Load(), nil
	}
	ks.genMu.Lock()
	defer ks.genMu.Unlock()
	if !ks.gensLoaded.Load() {
		for i := range maxDBs {
			g, err := n.readGen(i)
			if err != nil {
				return 0, err
			}
			ks.gens[i].Store(g)
		}
		ks.gensLoaded.Store(true)
	}
	return ks.gens[db].Load(), nil
}

// readGen reads db's generation from the engine.
func (n *Node) readGen(db int) (uint32, error) {
	v, err := n.eng().Get(metaGenKey(db))
	switch {
	case errors.Is(err, logkv.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case len(v) != 4:
		return 0, fmt.Errorf("%w: generation of db %d is %d bytes, want 4", logkv.ErrCorrupt, db, len(v))
	}
	return binary.BigEndian.Uint32(v), nil
}

// checkFormat makes sure the engine holds keyspace format 1, or nothing: an
// empty engine of a leader gets the format key.
func (n *Node) checkFormat() error {
	e := n.eng()
	v, err := e.Get(metaFormatKey)
	if err == nil {
		if len(v) != 1 || v[0] != keyspaceFormat {
			return fmt.Errorf("node: data_dir holds keyspace format %v; this kvnode reads format %d only: run the kvnode that wrote it, or start on an empty data_dir", v, keyspaceFormat)
		}
		return nil
	}
	if !errors.Is(err, logkv.ErrNotFound) {
		return fmt.Errorf("node: read keyspace format: %w", err)
	}
	it, err := e.NewIter(nil)
	if err != nil {
		return err
	}
	nonEmpty := it.First()
	err = errors.Join(it.Error(), it.Close())
	if err != nil {
		return err
	}
	if nonEmpty {
		return errors.New("node: data_dir holds data from before keyspace format 1 (keys without a database, generation or value header); this kvnode cannot read it: export it with the kvnode that wrote it (SCAN and GET) and load it into an empty data_dir")
	}
	if n.backend.IsFollower() {
		return nil // its leader's data brings the format key
	}
	var b logkv.Batch
	b.Set(metaFormatKey, []byte{keyspaceFormat})
	return errors.Join(n.backend.Apply(&b), n.backend.Sync())
}

// tx is one command's view of the keyspace, or one EXEC's: the keys it
// read, the writes it will commit as one batch, and the locks it holds.
type tx struct {
	n *Node
	c *client
	// db is the database the current command addresses (SELECT).
	db  int
	now int64
	r   logkv.Reader // the engine, or a snapshot
	// snap is the snapshot r is, if it is one.
	snap logkv.Snapshot
	// write: the tx holds its keys' locks and may write.
	write bool
	// shared: the EXEC's tx, committed by EXEC, not by its commands.
	shared bool
	unlock func()
	keys   []txKey
	index  map[string]int // position in keys, once there are many
	// gens are the generations used, per database (valid where genSet).
	gens    [maxDBs]uint32
	genSet  uint16
	flushed uint16 // databases flushed by this tx
	err     error  // the first error reading generations
}

// txKey is a key the tx read or wrote.
type txKey struct {
	db  int
	key []byte
	// The key's state as the tx sees it.
	val      []byte
	expireAt int64
	found    bool
	// engineAt is the deadline of the engine's version (its index entry),
	// 0 if none or unknown.
	engineAt int64
	dirty    bool
}

// begin starts a writing command on keys: it locks them and makes every
// write submitted before readable. Inside EXEC it returns the EXEC's tx.
func (n *Node) begin(c *client, keys [][]byte) *tx {
	if t := c.ks.exec; t != nil {
		t.db = c.ks.db
		return t
	}
	t := &tx{n: n, c: c, db: c.ks.db, now: n.nowMs(), r: n.eng(), write: true}
	t.unlock = n.locks.lockAll(keys)
	if err := n.backend.Barrier(); err != nil {
		t.err = err
	}
	return t
}

// read starts a reading command: no locks, reads from the engine now.
func (n *Node) read(c *client) *tx {
	if t := c.ks.exec; t != nil {
		t.db = c.ks.db
		return t
	}
	return &tx{n: n, c: c, db: c.ks.db, now: n.nowMs(), r: n.eng()}
}

// readSnapshot starts a reading command whose reads come from one moment.
func (n *Node) readSnapshot(c *client) (*tx, error) {
	t := n.read(c)
	if t.shared {
		return t, nil
	}
	snap, err := n.eng().NewSnapshot()
	if err != nil {
		return nil, err
	}
	t.r, t.snap = snap, snap
	return t, nil
}

// close releases what the tx holds. The EXEC's tx is closed by EXEC.
func (t *tx) close() {
	if t.shared {
		return
	}
	t.release()
}

func (t *tx) release() {
	if t.unlock != nil {
		t.unlock()
		t.unlock = nil
	}
	if t.snap != nil {
		t.snap.Close()
		t.snap = nil
	}
}

// genOf is the generation the tx uses for db.
func (t *tx) genOf(db int) (uint32, error) {
	if t.genSet&(1<<db) != 0 {
		return t.gens[db], nil
	}
	g, err := t.n.gen(db)
	if err != nil {
		return 0, err
	}
	t.gens[db], t.genSet = g, t.genSet|1<<db
	return g, nil
}

// find returns the tx's entry for (t.db, key), or nil.
func (t *tx) find(key []byte) *txKey {
	if t.index != nil {
		if i, ok := t.index[indexKey(t.db, key)]; ok {
			return &t.keys[i]
		}
		return nil
	}
	for i := range t.keys {
		if k := &t.keys[i]; k.db == t.db && bytes.Equal(k.key, key) {
			return k
		}
	}
	return nil
}

func indexKey(db int, key []byte) string { return string(append([]byte{byte(db)}, key...)) }

// add records a new entry for (t.db, key).
func (t *tx) add(e txKey) *txKey {
	e.db = t.db
	e.key = bytes.Clone(e.key)
	t.keys = append(t.keys, e)
	if t.index == nil && len(t.keys) > 16 {
		t.index = make(map[string]int, 2*len(t.keys))
		for i, k := range t.keys {
			t.index[indexKey(k.db, k.key)] = i
		}
	} else if t.index != nil {
		t.index[indexKey(t.db, e.key)] = len(t.keys) - 1
	}
	return &t.keys[len(t.keys)-1]
}

// load reads key from the engine (or the tx's own writes).
func (t *tx) load(key []byte) (*txKey, error) {
	if t.err != nil {
		return nil, t.err
	}
	if k := t.find(key); k != nil {
		if k.found && k.expireAt != 0 && k.expireAt <= t.now {
			// Expired while the tx ran (the clock is fixed per tx, so
			// only a tx's own deadline in the past gets here).
			k.found, k.val, k.dirty = false, nil, true
		}
		return k, nil
	}
	e := txKey{key: key}
	if t.flushed&(1<<t.db) == 0 {
		gen, err := t.genOf(t.db)
		if err != nil {
			return nil, err
		}
		var buf [64]byte
		v, err := t.r.Get(appendDataKey(buf[:0], t.db, gen, key))
		switch {
		case errors.Is(err, logkv.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			payload, at, err := decodeValue(v)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", key, err)
			}
			e.engineAt = at
			if at != 0 && at <= t.now {
				// Expired: invisible. A writing tx deletes it (lazy
				// expiry, on the leader only: a follower never decides).
				e.dirty = t.write && !t.n.backend.IsFollower()
			} else {
				e.val, e.expireAt, e.found = payload, at, true
			}
		}
	}
	if !t.write && !t.shared {
		return &e, nil // a read: nothing to remember
	}
	return t.add(e), nil
}

// get returns key's value and deadline (0: none), if the key exists.
func (t *tx) get(key []byte) (value []byte, expireAt int64, found bool, err error) {
	k, err := t.load(key)
	if err != nil {
		return nil, 0, false, err
	}
	return k.val, k.expireAt, k.found, nil
}

// exists reports whether key exists.
func (t *tx) exists(key []byte) (bool, error) {
	_, _, found, err := t.get(key)
	return found, err
}

// set writes key with value and deadline expireAt (0: none). The key must
// be one the tx locked.
func (t *tx) set(key, value []byte, expireAt int64) {
	k := t.find(key)
	if k == nil {
		k = t.add(txKey{key: key})
	}
	k.val, k.expireAt, k.found, k.dirty = value, expireAt, true, true
}

// del deletes key and reports whether it existed.
func (t *tx) del(key []byte) (bool, error) {
	k, err := t.load(key)
	if err != nil {
		return false, err
	}
	existed := k.found
	if existed {
		k.val, k.expireAt, k.found, k.dirty = nil, 0, false, true
	}
	return existed, nil
}

// flushDB empties database db within the tx: its generation moves on, so
// every key of it disappears at once when the tx commits.
func (t *tx) flushDB(db int) error {
	gen, err := t.genOf(db)
	if err != nil {
		return err
	}
	t.gens[db] = gen + 1
	t.flushed |= 1 << db
	kept := t.keys[:0]
	for _, k := range t.keys {
		if k.db != db {
			kept = append(kept, k)
		}
	}
	clear(t.keys[len(kept):])
	t.keys = kept
	if t.index != nil {
		t.index = make(map[string]int, len(kept))
		for i, k := range kept {
			t.index[indexKey(k.db, k.key)] = i
		}
	}
	return nil
}

// commit applies a command's writes, or replies the error and reports false.
// Inside EXEC it does nothing: EXEC commits.
func (t *tx) commit() bool {
	if t.shared {
		return true
	}
	if err := t.apply(); err != nil {
		t.n.replyErr(t.c, err)
		return false
	}
	return true
}

// apply writes the tx's changes as one batch: one commit-log record, so
// readers, followers and recovery see all of it or none.
func (t *tx) apply() error {
	var b logkv.Batch
	for db := range maxDBs {
		if t.flushed&(1<<db) != 0 {
			b.Set(metaGenKey(db), binary.BigEndian.AppendUint32(nil, t.gens[db]))
		}
	}
	var kbuf, vbuf []byte
	for i := range t.keys {
		k := &t.keys[i]
		if !k.dirty {
			continue
		}
		gen, err := t.genOf(k.db)
		if err != nil {
			return err
		}
		kbuf = appendDataKey(kbuf[:0], k.db, gen, k.key)
		if k.found {
			vbuf = appendValue(vbuf[:0], k.expireAt, k.val)
			b.Set(kbuf, vbuf)
			if k.expireAt != 0 {
				b.Set(appendExpiryKey(kbuf[:0], k.db, gen, k.expireAt, k.key), nil)
			}
		} else {
			b.Delete(kbuf)
		}
		if k.engineAt != 0 && k.engineAt != k.expireAt && t.flushed&(1<<k.db) == 0 {
			b.Delete(appendExpiryKey(kbuf[:0], k.db, gen, k.engineAt, k.key))
		}
	}
	if b.Empty() {
		return nil
	}
	if err := b.Err(); err != nil {
		return err
	}
	if err := t.n.backend.Apply(&b); err != nil {
		return err
	}
	t.c.dirty = true
	if t.flushed != 0 {
		t.n.publishGens(t.flushed, &t.gens)
	}
	t.n.touchTx(t)
	for i := range t.keys {
		k := &t.keys[i]
		if k.dirty {
			k.dirty, k.engineAt = false, k.expireAt
		}
	}
	t.flushed = 0
	return nil
}

// publishGens makes the flushed databases' new generations current.
func (n *Node) publishGens(flushed uint16, gens *[maxDBs]uint32) {
	ks := &n.ks
	ks.genMu.Lock()
	defer ks.genMu.Unlock()
	for db := range maxDBs {
		if flushed&(1<<db) != 0 && gens[db] > ks.gens[db].Load() {
			ks.gens[db].Store(gens[db])
		}
	}
	if ks.bgKick != nil {
		select {
		case ks.bgKick <- struct{}{}:
		default:
		}
	}
}

// encodedKeyLimit and encodedValueLimit are the largest client key and value
// the encoding leaves room for in the engine's limits.
const (
	encodedKeyLimit   = logkv.MaxKeySize - expiryPrefixLen
	encodedValueLimit = logkv.MaxValueSize - valueHeaderMax
)
