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
// # Engine encoding (keyspace format 2)
//
// An engine key is a client key behind a short code naming its database and
// generation and the key's hash slot, or one of two reserved ranges whose
// first byte no code can have, so no client key can reach them:
//
//	data   dbgen slot[2 BE] key                     -> value (below)
//	expiry 0xFE dbgen deadline[8 BE] key            -> empty
//	meta   0xFF "format"                            -> 1 byte: format version (2)
//	       0xFF "gen" db                            -> 4 bytes BE: (store XOR db)<<24
//	                                                   | db's generation (store = db
//	                                                   until SWAPDB: appendDBGen)
//	       0xFF "convert"                           -> 1 byte (1): a conversion from
//	                                                   format 1 runs (keyspace_convert.go)
//
// slot is the key's Redis Cluster hash slot (keySlot, slots.go: CRC-16 of the
// key or of its {hash tag}, mod 16384), so each slot of a database is one
// contiguous range of the engine, [dbgen slot, dbgen slot+1): a slot is
// counted, listed and moved as a range read (slotkeys.go), never by a scan
// of the keyspace. Plain (unsharded) nodes store it too, so there is one
// format whatever the node is. The expiry index does not carry the slot: an
// entry's slot is derived from its key when needed (a range move writes the
// target's entries from the values' headers), and an entry is only a hint
// checked against the value's own deadline, so one left behind by a moved
// range is harmless and swept when due.
//
// dbgen encodes x = db<<24 | gen, big-endian in 1 to 4 bytes, the length
// told by the first byte, so the encoding sorts as x does and no code is a
// prefix of another:
//
//	x < 2^7     0xxxxxxx
//	x < 2^14    10xxxxxx xxxxxxxx
//	x < 2^21    110xxxxx xxxxxxxx xxxxxxxx
//	x < 2^28    1110xxxx xxxxxxxx xxxxxxxx xxxxxxxx
//
// First bytes 0xF0..0xFF are left for reserved ranges. Database 0 before
// its first flush, where most keys live, costs one byte (0x00); the other
// databases cost 4. The prefix is short on purpose: engines compare keys
// by their first bytes (bitcask's keydir keeps 16 of them inline), so a
// long shared prefix would push what tells keys apart out of reach and slow
// every lookup (a 6-byte prefix cost bitcask 2-3x on GET, measured; what the
// slot's 2 bytes cost is in docs/keyspace.md).
//
// db is the database number (0..15, SELECT). gen is the database's
// generation (below 2^24): FLUSHDB/FLUSHALL bump it with one meta write,
// which hides every older key at once; a background sweeper deletes older
// generations in chunks (flush.go). A missing "gen" row is generation 0.
// The expiry range is an index by deadline (Unix milliseconds, big-endian
// so it sorts by time): it is written in the same batch as the value, so
// the active expirer finds exactly the keys due (expire.go). An index entry
// is a hint checked against the value's own deadline, so a stale one (the
// key was overwritten by a blind SET) is harmless and swept when its time
// comes.
//
// A value is a header, then the payload (a string's bytes):
//
//	byte 0      flags: bit 7 set = a deadline follows; bits 0..3 type
//	            (0 = string); bits 4..6 reserved, zero
//	bytes 1..8  deadline, Unix milliseconds, BE (only with bit 7)
//
// A key of database 0 without a TTL costs 3 bytes of key prefix (dbgen and
// slot) and 1 byte of header; with a TTL, 8 more bytes of value and an index
// entry (the key plus 10 bytes, empty value).
//
// Format 1 was format 2 without the slot (data: dbgen key -> value); its
// meta and expiry rows are format 2's. A leader converts a format-1
// keyspace when it opens it, in batches, crash-safe (keyspace_convert.go);
// a follower gets the conversion through its leader's log and answers reads
// with an error until then. Data from before format 1 (raw client keys, no
// header, no "format" row) and formats above 2 are refused with an error
// naming the format (checkFormat).

// First bytes of the reserved key ranges; dataEnd bounds the data range.
const (
	dataEnd   = 0xF0
	tagExpiry = 0xFE
	tagMeta   = 0xFF
)

// keyspaceFormat is the engine encoding this node reads and writes.
const keyspaceFormat = 2

// maxDBs is the number of databases the encoding allows (SELECT 0..15,
// Redis' default).
const maxDBs = 16

// maxGen is the last generation: a database can be flushed this many times.
const maxGen = 1<<24 - 1

// slotLen is the bytes of a data key's hash slot.
const slotLen = 2

// maxDataPrefixLen is the longest prefix before a client key (dbgen, slot).
const maxDataPrefixLen = 4 + slotLen

// maxExpiryPrefixLen is the longest prefix before a client key in the
// expiry index.
const maxExpiryPrefixLen = 1 + maxDataPrefixLen + 8

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
	metaFormatKey  = []byte{tagMeta, 'f', 'o', 'r', 'm', 'a', 't'}
	metaConvertKey = []byte{tagMeta, 'c', 'o', 'n', 'v', 'e', 'r', 't'}
)

// metaGenKey is the key of db's generation.
func metaGenKey(db int) []byte { return []byte{tagMeta, 'g', 'e', 'n', byte(db)} }

// appendDBGen appends the dbgen code of (db, gen), gen as db's gen row
// holds it. The row's top byte is the database's store XOR db (0 for
// every row written so far: store = db), so the code is that of the store
// the database's keys live in: the indirection SWAPDB will use
// (docs/keyspace.md, "SWAPDB: design"). For gen below 2^24 the XOR is the
// OR of (db, gen) it replaced.
func appendDBGen(dst []byte, db int, gen uint32) []byte {
	x := uint32(db)<<24 ^ gen
	switch {
	case x < 1<<7:
		return append(dst, byte(x))
	case x < 1<<14:
		return append(dst, 0x80|byte(x>>8), byte(x))
	case x < 1<<21:
		return append(dst, 0xC0|byte(x>>16), byte(x>>8), byte(x))
	}
	return append(dst, 0xE0|byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
}

// decodeDBGen reads a dbgen code from the start of b.
func decodeDBGen(b []byte) (db int, gen uint32, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, 0, false
	}
	var x uint32
	switch c := b[0]; {
	case c < 0x80:
		x, n = uint32(c), 1
	case c < 0xC0 && len(b) >= 2:
		x, n = uint32(c&0x3F)<<8|uint32(b[1]), 2
	case c < 0xE0 && len(b) >= 3:
		x, n = uint32(c&0x1F)<<16|uint32(b[1])<<8|uint32(b[2]), 3
	case c < dataEnd && len(b) >= 4:
		x, n = uint32(c&0x0F)<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]), 4
	default:
		return 0, 0, 0, false
	}
	return int(x >> 24), x & maxGen, n, true
}

// appendDataKey appends the engine key of (db, gen, key) to dst: dbgen,
// the key's slot, the key.
func appendDataKey(dst []byte, db int, gen uint32, key []byte) []byte {
	dst = appendDBGen(dst, db, gen)
	return append(binary.BigEndian.AppendUint16(dst, keySlot(key)), key...)
}

// dataPrefix is the first engine key of (db, gen)'s data range.
func dataPrefix(db int, gen uint32) []byte { return appendDBGen(nil, db, gen) }

// expiryPrefix is the first key of (db, gen)'s part of the expiry index.
func expiryPrefix(db int, gen uint32) []byte { return appendDBGen([]byte{tagExpiry}, db, gen) }

// appendExpiryKey appends the expiry index key of (db, gen, at, key).
func appendExpiryKey(dst []byte, db int, gen uint32, at int64, key []byte) []byte {
	dst = appendDBGen(append(dst, tagExpiry), db, gen)
	dst = binary.BigEndian.AppendUint64(dst, uint64(at))
	return append(dst, key...)
}

// decodeDataKey splits an engine data key. It does not check the slot
// against the key (a CRC a key on every walk): keys are written only by
// appendDataKey.
func decodeDataKey(k []byte) (db int, gen uint32, key []byte, ok bool) {
	db, gen, n, ok := decodeDBGen(k)
	if !ok || len(k) <= n+slotLen {
		return 0, 0, nil, false
	}
	return db, gen, k[n+slotLen:], true
}

// scanPos is where a walk of a database's data range stands at engine key
// k: the key without its dbgen, so slot then client key. SCAN cursors and
// KEYS resume at a position (scanSeek), and positions order as the walk
// does.
func scanPos(k []byte) []byte {
	_, _, n, ok := decodeDBGen(k)
	if !ok {
		return nil
	}
	return k[n:]
}

// appendScanPos appends client key's position (scanPos).
func appendScanPos(dst, key []byte) []byte {
	return append(binary.BigEndian.AppendUint16(dst, keySlot(key)), key...)
}

// scanBounds bounds a walk of (db, gen)'s keys that may match pattern: the
// whole database, or one slot's keys with the pattern's literal prefix when
// that prefix holds a complete {hash tag} (every matching key then hashes
// the same bytes: the prefix's first '{' is the key's first, and the first
// '}' after it, with at least one byte between, is the key's too).
func scanBounds(db int, gen uint32, pattern []byte) (lower, upper []byte) {
	lower = dataPrefix(db, gen)
	if prefix := globPrefix(pattern); len(prefix) > 0 {
		if open := bytes.IndexByte(prefix, '{'); open >= 0 {
			if close := bytes.IndexByte(prefix[open+1:], '}'); close > 0 {
				lower = append(binary.BigEndian.AppendUint16(lower, keySlot(prefix)), prefix...)
			}
		}
	}
	return lower, prefixEnd(lower)
}

// decodeExpiryKey splits an expiry index key.
func decodeExpiryKey(k []byte) (db int, gen uint32, at int64, key []byte, ok bool) {
	if len(k) == 0 || k[0] != tagExpiry {
		return 0, 0, 0, nil, false
	}
	db, gen, n, ok := decodeDBGen(k[1:])
	if !ok || len(k) <= 1+n+8 {
		return 0, 0, 0, nil, false
	}
	return db, gen, int64(binary.BigEndian.Uint64(k[1+n:])), k[1+n+8:], true
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
	// followerGens caches each database's generation on a follower, for
	// the engine and the applied seq it was read at (followerGen).
	followerGens [maxDBs]atomic.Pointer[followerGen]
	// genMu orders generation bumps (FLUSHDB/FLUSHALL).
	genMu sync.Mutex
	// format2 is set once a follower has seen its engine hold format 2
	// (followerFormat).
	format2 atomic.Bool
	// fixedNow, when non-zero, is the clock in Unix milliseconds: tests set
	// it (setClock) instead of sleeping.
	fixedNow atomic.Int64
	// settles counts the reads that found an expired version and read it
	// again under the key's lock (settleExpired).
	settles atomic.Int64
	// settlesPassed counts the settles that found the expirer holding the
	// key's stripe, its writes readable, and did not wait for it.
	settlesPassed atomic.Int64
	// expiring marks the key-lock stripes the active expirer holds with
	// every write submitted before it took them readable: a read that
	// finds an expired version in such a stripe settles without waiting
	// for the expirer (settleExpired).
	expiring stripeSet
	// stripeWritten is, per key-lock stripe, the backend's last submitted
	// seq (writeSeqs) when a tx last wrote a key of the stripe, stored
	// under the stripe's lock: once the backend has applied it, every
	// write a tx made under that stripe is readable, and a read that
	// settles an expired key of the stripe needs no Barrier.
	stripeWritten [len(keyLocks{}.stripes)]atomic.Uint64
	// settlesBarrier counts the settles that made submitted writes
	// readable (a Barrier) before reading again.
	settlesBarrier atomic.Int64

	watch watchRegistry
	bg    bgState
	info  keyspaceInfoCache // INFO keyspace's last count (flush.go)
	// nextDue is no later than the earliest deadline in the expiry index
	// (math.MaxInt64: none; 0: unknown), so the expirer reads the index only
	// when something may be due. Writes of a deadline lower it.
	nextDue atomic.Int64
	// dueWritten is the earliest deadline written since the expirer's
	// current walk of the index began (math.MaxInt64: none), so that the
	// walk does not move its floor or nextDue past an entry its iterator
	// could not see (expire.go, startWalk).
	dueWritten atomic.Int64

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
		if ks.gensLoaded.Load() {
			ks.gensLoaded.Store(false) // a leader reloads after promotion
		}
		if !ks.format2.Load() {
			if err := n.followerFormat(); err != nil {
				return 0, err
			}
		}
		return n.followerGen(db)
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

// followerGen is a generation a follower read: db's generation in eng once
// the engine had applied every batch through seq.
type followerGen struct {
	seq uint64
	eng logkv.Engine
	gen uint32
}

// followerGen returns db's generation on a follower, read from the engine
// only when a batch was applied (or the engine replaced) since it was last
// read. The leader's FLUSHDB arrives as a batch that changes the meta key;
// the backend's readableSeq moves only once a batch is applied (replicate's
// applied seq, stored after the engine's Apply returns), and a full resync
// replaces the engine before it moves. The seq is taken before the engine
// is read, so a cached generation is never older than the engine at its
// seq; a batch applied but not yet counted may show in it early, as it
// would in the engine read.
func (n *Node) followerGen(db int) (uint32, error) {
	ws, ok := n.backend.(writeSeqs)
	if !ok {
		return n.readGen(db)
	}
	seq := ws.readableSeq()
	eng := n.eng()
	if c := n.ks.followerGens[db].Load(); c != nil && c.seq == seq && c.eng == eng {
		return c.gen, nil
	}
	g, err := readGenFrom(eng, db)
	if err != nil {
		return 0, err
	}
	n.ks.followerGens[db].Store(&followerGen{seq: seq, eng: eng, gen: g})
	return g, nil
}

// readGen reads db's generation from the engine.
func (n *Node) readGen(db int) (uint32, error) { return readGenFrom(n.eng(), db) }

// readGenFrom reads db's generation from r (the engine or a snapshot).
func readGenFrom(r logkv.Reader, db int) (uint32, error) {
	v, err := r.Get(metaGenKey(db))
	switch {
	case errors.Is(err, logkv.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case len(v) != 4:
		return 0, fmt.Errorf("%w: generation of db %d is %d bytes, want 4", logkv.ErrCorrupt, db, len(v))
	case v[0] >= maxDBs:
		return 0, fmt.Errorf("%w: generation of db %d names store %d, past the last (%d)", logkv.ErrCorrupt, db, int(v[0])^db, maxDBs-1)
	}
	return binary.BigEndian.Uint32(v), nil
}

// errNotFormat2 is a follower's answer while its engine holds a keyspace of
// format 1: its leader runs an older kvnode, or has not converted yet.
var errNotFormat2 = errors.New("this follower's data is keyspace format 1: its leader runs an older kvnode or is converting; start the leader on this kvnode (it converts the keyspace at start and ships the conversion here), then retry")

// followerFormat checks that a follower's engine holds format 2 (or nothing
// yet), before it reads: its leader's log may still bring format 1 (an older
// leader) or a conversion in progress. Once format 2 is seen it is not
// checked again, so a follower's reads cost nothing more.
func (n *Node) followerFormat() error {
	e := n.eng()
	v, err := e.Get(metaFormatKey)
	switch {
	case errors.Is(err, logkv.ErrNotFound):
		return nil // nothing from the leader yet: an empty keyspace
	case err != nil:
		return err
	case len(v) != 1 || v[0] != keyspaceFormat:
		return errNotFormat2
	}
	if _, err := e.Get(metaConvertKey); err == nil {
		return errNotFormat2
	} else if !errors.Is(err, logkv.ErrNotFound) {
		return err
	}
	n.ks.format2.Store(true)
	return nil
}

// checkFormat makes sure the engine holds keyspace format 2, or nothing: an
// empty engine of a leader gets the format key, and a leader converts
// format 1 (or finishes a conversion a crash interrupted). A follower leaves
// that to its leader. Anything else is refused, saying what to do.
func (n *Node) checkFormat() error {
	e := n.eng()
	v, err := e.Get(metaFormatKey)
	if err == nil {
		_, cerr := e.Get(metaConvertKey)
		if cerr != nil && !errors.Is(cerr, logkv.ErrNotFound) {
			return fmt.Errorf("node: read keyspace format: %w", cerr)
		}
		converting := cerr == nil
		switch {
		case len(v) != 1 || v[0] == 0 || v[0] > keyspaceFormat:
			return fmt.Errorf("node: data_dir holds keyspace format %v; this kvnode reads formats 1 (which it converts to 2 at start) and 2: run a kvnode that reads it, or start on an empty data_dir", v)
		case v[0] == keyspaceFormat && !converting:
			return nil
		case n.backend.IsFollower():
			return nil // its leader converts; reads wait for it (followerFormat)
		}
		return n.convertFormat1()
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
	return n.applyAtOpen(&b)
}

// applyAtOpen applies b durably before the node serves. Replicated, it waits
// for the local log only: with -ack sync, waiting for the quorum failed
// every new leader's start after ack_timeout, since its followers connect
// only once it serves. They get these records first.
func (n *Node) applyAtOpen(b *logkv.Batch) error {
	if rb, ok := n.backend.(*replicatedBackend); ok {
		seq, err := rb.r.Submit(b)
		if err != nil {
			return err
		}
		return rb.r.AwaitLocal(seq)
	}
	return errors.Join(n.backend.Submit(b), n.backend.Sync())
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
	// last is the entry a read tx's load returned last.
	last  txKey
	index map[string]int // position in keys, once there are many
	// gens are the generations used, per database (valid where genSet).
	gens    [maxDBs]uint32
	genSet  uint16
	flushed uint16 // databases flushed by this tx
	// flushTouch are the watched keys the tx's flushes removed: their
	// watchers see a modification (a watched key that did not exist does
	// not, as in Redis 7).
	flushTouch []txKey
	err        error // the first error reading generations
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
//
// The tx's clock is read after the locks and the barrier, never before:
// a tx that read it first and then waited (for the locks, for an fsync)
// could find alive a key that readers already saw expire meanwhile, and a
// PERSIST, EXPIRE or INCR on it would bring it back (issue #15; see
// "Expiry and writes" below).
func (n *Node) begin(c *client, keys [][]byte) *tx {
	if t := c.ks.exec; t != nil {
		t.db = c.ks.db
		return t
	}
	t := &tx{n: n, c: c, db: c.ks.db, r: n.eng(), write: true}
	t.unlock = n.locks.lockAll(keys)
	if err := n.backend.Barrier(); err != nil {
		t.err = err
	}
	t.now = n.nowMs()
	return t
}

// # Expiry and writes
//
// An expired key must stay gone: once any reader was told a key does not
// exist because its deadline passed, no write may find it alive (issue
// #15). Readers take no locks and decide with their own clock, so the rule
// needs both sides:
//
//   - A writing tx reads its clock (t.now) only once it holds its keys'
//     locks and every earlier write is readable (begin).
//   - A reader that finds a key whose deadline has passed does not trust
//     what it read: a writer may hold the key's lock, having found the key
//     alive before its deadline, with its write not yet readable (submitted
//     to the commit log and waiting for the fsync or the quorum, or, in
//     async mode, readable only at the next Barrier). settleExpired takes
//     the key's lock (the writer is done), makes every submitted write
//     readable (Barrier) and reads the key again with a fresh clock.
//
// Why it holds: say a writer W found key k alive at its clock C < D, k's
// deadline, and a reader R decided k expired with clock r >= D. R read its
// clock after W read C (the clock only moves forward; a wall clock stepped
// back breaks this, as it breaks expiry itself), so W had taken k's lock
// by then. R decides under k's lock after a Barrier, so W's write is
// readable by then and R reads it, not the old version. Conversely, a
// writer that takes k's lock after R decided reads a clock >= r >= D and
// finds k expired. So W's decision holds at the moment its write becomes
// readable, wherever that moment is (the engine's Apply standalone, the
// apply after the local fsync, or after the quorum, replicated).
//
// The cost is on the reads of expired keys not yet removed (the active
// expirer removes them within its cycle): one stripe lock, which waits
// while a writer holds that stripe, and a Barrier, which waits for the
// writes submitted and not yet readable (async mode: their fsync). A
// follower decides nothing (its leader's writes arrive in log order, and
// its reads may lag anyway: max_read_lag), and a read from a snapshot
// (MGET, SCAN, ...) keeps the snapshot's view.

// settleExpired reads key of (db, gen) again under its lock after a
// Barrier, with a fresh clock, once a read found its version expired: see
// "Expiry and writes".
//
// When the active expirer holds the key's stripe, the read does not wait
// for it (most reads of an expired key meet the expirer, which is removing
// that very key; the wait, on the client's event loop, was the largest
// part of the GET p99 during a mass expiry, issue #15). It re-reads at
// once if the expirer has made every write submitted before it took the
// stripe readable (n.ks.expiring). That is what the lock and Barrier
// would give: a writer W that found the key alive at C < D <= r (r this
// read's clock) took the stripe before this read read r, and does not
// hold it now, so it released it before the expirer took it, and its
// write was submitted before, so it is readable. A writer that takes the
// stripe after the expirer releases it reads a clock later than this
// read saw the mark, so at least r, and finds the key expired.
//
// Nor does it wait when the writes that matter are readable already: a
// writer W as above wrote under the key's stripe, and a tx records the
// backend's submitted seq, at least its own write's, in stripeWritten
// before it releases the stripe (tx.apply). This read holds the stripe
// after W released it, so it sees W's seq or a later one, and once the
// backend has applied that seq W's write is readable. Only then is the
// Barrier skipped; it made every write submitted by anyone readable, on
// the client's event loop: during a mass expiry that the expirer is
// behind on, most of them the expirer's deletes, applied to the engine
// (an lsm's memtable) by the GET.
func (n *Node) settleExpired(db int, gen uint32, key []byte) (payload []byte, expireAt int64, found bool, err error) {
	n.ks.settles.Add(1)
	s := n.locks.stripe(key)
	m := &n.locks.stripes[s]
	if m.TryLock() {
		defer m.Unlock()
		if err := n.settleBarrier(s); err != nil {
			return nil, 0, false, err
		}
	} else if n.ks.expiring.has(s) {
		n.ks.settlesPassed.Add(1)
	} else {
		m.Lock()
		defer m.Unlock()
		if err := n.settleBarrier(s); err != nil {
			return nil, 0, false, err
		}
	}
	v, err := n.eng().Get(appendDataKey(nil, db, gen, key))
	switch {
	case errors.Is(err, logkv.ErrNotFound):
		return nil, 0, false, nil
	case err != nil:
		return nil, 0, false, err
	}
	payload, at, err := decodeValue(v)
	if err != nil {
		return nil, 0, false, fmt.Errorf("key %q: %w", key, err)
	}
	if at != 0 && at <= n.nowMs() {
		return nil, 0, false, nil
	}
	return payload, at, true, nil
}

// settleBarrier makes the writes made under key-lock stripe s readable,
// for settleExpired, which holds s: at once if the backend has applied the
// last seq a tx recorded for s, else by a Barrier.
func (n *Node) settleBarrier(s int) error {
	if ws, ok := n.backend.(writeSeqs); ok && n.ks.stripeWritten[s].Load() <= ws.readableSeq() {
		return nil
	}
	n.ks.settlesBarrier.Add(1)
	return n.backend.Barrier()
}

// barrier is backend.Barrier, at no cost when there is nothing to do:
// every write whose Submit returned is applied already (writeSeqs), as
// Barrier would read it. A replicated Barrier with nothing to do still
// yields the CPU (runtime.Gosched, for the group commit of writes to
// come) and takes the apply lock: the expirer made its batch's Barrier
// holding the batch's stripes, not yet marked expiring, and a GET that met
// one of its keys expired waited for the batch, yield included
// (docs/keyspace.md).
func (n *Node) barrier() error {
	if ws, ok := n.backend.(writeSeqs); ok && ws.submittedSeq() <= ws.readableSeq() {
		return nil
	}
	return n.backend.Barrier()
}

// writeSeqs is a backend that numbers its writes in the order they are
// submitted (replicatedBackend: the commit log's seqs), so a reader can
// tell whether a given write is readable without a Barrier. A backend
// without it (standalone: a write is readable once submitted) is asked for
// a Barrier, which costs it nothing.
type writeSeqs interface {
	// submittedSeq is at least the seq of every write whose Submit has
	// returned.
	submittedSeq() uint64
	// readableSeq is the seq through which every write is applied to the
	// engine, and so readable.
	readableSeq() uint64
}

// The methods are here, with the one reader that needs them; the backend
// is in replicated.go. A sync-mode write (syncAck) is applied before Submit
// returns and does not move submitted: its seq is at or below readableSeq.
func (b *replicatedBackend) submittedSeq() uint64 { return b.submitted.Load() }
func (b *replicatedBackend) readableSeq() uint64  { return b.r.LastSeq() }

// modify starts a read-modify-write command on keys[0]: it checks the key,
// begins a tx on it and reads the key's value, deadline and presence. If ok
// is false the command has replied (a bad key, a failed read) and there is
// no tx; otherwise the caller closes t.
func (n *Node) modify(c *client, keys [][]byte) (t *tx, value []byte, expireAt int64, found, ok bool) {
	key := keys[0]
	if !n.checkKey(c, key) {
		return nil, nil, 0, false, false
	}
	t = n.begin(c, keys[:1])
	value, expireAt, found, err := t.get(key)
	if err != nil {
		t.close()
		n.replyErr(c, err)
		return nil, nil, 0, false, false
	}
	return t, value, expireAt, found, true
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

// load reads key from the engine (or the tx's own writes). The entry of a
// read tx is valid until its next load.
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
		c := t.c
		c.kbuf = appendDataKey(c.kbuf[:0], t.db, gen, key) // see getFast
		v, err := t.r.Get(c.kbuf)
		if cap(c.kbuf) > maxKeptKeyBuf {
			c.kbuf = nil
		}
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
			if at != 0 && at <= t.now && !t.write && t.snap == nil && !t.n.backend.IsFollower() {
				// A read: a writer may have found it alive before its
				// deadline, its write not readable yet.
				payload, at, e.found, err = t.n.settleExpired(t.db, gen, key)
				if err != nil {
					return nil, err
				}
				e.engineAt = at
				if e.found {
					e.val, e.expireAt = payload, at
				}
			} else if at != 0 && at <= t.now {
				// Expired: invisible. A writing tx deletes it (lazy
				// expiry, on the leader only: a follower never decides).
				e.dirty = t.write && !t.n.backend.IsFollower()
			} else {
				e.val, e.expireAt, e.found = payload, at, true
			}
		}
	}
	if !t.write && !t.shared {
		// A read: nothing to remember. Callers use the entry before they
		// load the next key, so one slot serves (a new one would be an
		// allocation a key: MGET of 100 keys made 200).
		t.last = e
		return &t.last, nil
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
	if gen&maxGen >= maxGen {
		return fmt.Errorf("database %d was flushed %d times, the most its encoding allows: delete its keys instead (DEL, or UNLINK from a SCAN)", db, maxGen)
	}
	saved := t.db
	t.db = db
	for _, key := range t.n.watchedIn(db) {
		found, err := t.exists(key)
		if err != nil {
			t.db = saved
			return err
		}
		if found {
			t.flushTouch = append(t.flushTouch, txKey{db: db, key: key})
		}
	}
	t.db = saved
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
				t.n.lowerNextDue(k.expireAt)
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
	// Dirty before Submit: a write Submit refuses after logging it (a sync
	// leader whose leadership ended: errFenced) may have been applied, and
	// its error must reach the client as the read index (readindex.go) lets
	// a write's reply through, not be taken for a read's and replaced by
	// READONLY, which says it was refused.
	t.c.dirty = true
	err := t.n.backend.Submit(&b)
	var seq uint64
	if ws, ok := t.n.backend.(writeSeqs); ok {
		seq = ws.submittedSeq() // at least this write's
	}
	for i := range t.keys {
		k := &t.keys[i]
		// Again once applied: an expirer walk that read nextDue before
		// this write and the index before it was visible must not hide it.
		// Whatever Submit answered: a write refused after it was logged
		// (errFenced, a quorum timeout) may be applied, and lowering
		// nextDue for one that was not costs one spare walk.
		if k.dirty && k.found && k.expireAt != 0 {
			t.n.lowerNextDue(k.expireAt)
		}
		if k.dirty && seq != 0 {
			// Under the key's lock, so the next holder sees it
			// (settleExpired); whatever Submit answered, as above.
			w := &t.n.ks.stripeWritten[t.n.locks.stripe(k.key)]
			if w.Load() < seq {
				w.Store(seq)
			}
		}
	}
	if err != nil {
		return err
	}
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
	t.flushed, t.flushTouch = 0, nil
	return nil
}

// lowerNextDue makes the expirer look at the index by at. The walk under
// way, if any, learns of at first (dueWritten): it may have read nextDue
// before this write and the index before the write was visible.
func (n *Node) lowerNextDue(at int64) {
	lowerTo(&n.ks.dueWritten, at)
	lowerTo(&n.ks.nextDue, at)
}

// lowerTo sets v to at if at is lower.
func lowerTo(v *atomic.Int64, at int64) {
	for {
		cur := v.Load()
		if cur <= at || v.CompareAndSwap(cur, at) {
			return
		}
	}
}

// raiseTo sets v to at if at is higher.
func raiseTo(v *atomic.Int64, at int64) {
	for {
		cur := v.Load()
		if cur >= at || v.CompareAndSwap(cur, at) {
			return
		}
	}
}

// publishGens makes the flushed databases' new generations current.
func (n *Node) publishGens(flushed uint16, gens *[maxDBs]uint32) {
	ks := &n.ks
	ks.genMu.Lock()
	defer ks.genMu.Unlock()
	for db := range maxDBs {
		if flushed&(1<<db) != 0 && gens[db]&maxGen > ks.gens[db].Load()&maxGen {
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
	encodedKeyLimit   = logkv.MaxKeySize - maxExpiryPrefixLen
	encodedValueLimit = logkv.MaxValueSize - valueHeaderMax
)

// stripeSet is a set of key-lock stripes (keyLocks), safe for concurrent
// use.
type stripeSet [len(keyLocks{}.stripes) / 64]atomic.Uint64

func (s *stripeSet) has(i int) bool { return s[i/64].Load()&(1<<(i%64)) != 0 }

// add adds the stripes of keys, and remove removes them.
func (s *stripeSet) add(l *keyLocks, keys [][]byte) {
	for _, k := range keys {
		i := l.stripe(k)
		s[i/64].Or(1 << (i % 64))
	}
}

func (s *stripeSet) remove(l *keyLocks, keys [][]byte) {
	for _, k := range keys {
		i := l.stripe(k)
		s[i/64].And(^uint64(1 << (i % 64)))
	}
}
