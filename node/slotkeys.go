package node

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/logkv/logkv"
)

// A hash slot's keys as a range of the engine. Keyspace format 2 stores a
// key under its slot, right after its database's dbgen code (keyspace.go),
// so one slot of one database is the contiguous range
//
//	[dbgen slot, dbgen slot+1)
//
// and what Redis Cluster asks of a slot is a range read that touches only
// that slot's rows, never a walk of the keyspace:
//
//	CLUSTER COUNTKEYSINSLOT slot        -> the live keys in the slot
//	CLUSTER GETKEYSINSLOT slot count    -> up to count of them, in key order
//
// and a slot move (docs/cluster.md, "Moving slots online") copies a slot
// from a snapshot of its range (SnapshotSlot).
//
// Both commands read the client's database (a cluster has only database 0)
// as it is committed: inside MULTI they do not see the transaction's own
// writes. Keys past their deadline and not yet reclaimed are not counted or
// listed, as DBSIZE and SCAN skip them (Redis counts such keys until it
// reclaims them).

// errInvalidSlot and errInvalidSlotCount are redis-server 7.0.15's replies
// to a slot out of range.
const (
	errInvalidSlot      = "ERR Invalid slot"
	errInvalidSlotCount = "ERR Invalid slot or number of keys"
)

// cmdClusterCountKeysInSlot: CLUSTER COUNTKEYSINSLOT slot.
func cmdClusterCountKeysInSlot(n *Node, c *client, args [][]byte) {
	slot, err := strconv.ParseInt(string(args[2]), 10, 64)
	if err != nil {
		c.fail(errNotInteger)
		return
	}
	if slot < 0 || slot >= numSlots {
		c.fail(errInvalidSlot)
		return
	}
	count := int64(0)
	err = n.walkSlot(c.ks.db, uint16(slot), func([]byte) bool { count++; return true })
	if err != nil {
		n.replyErr(c, err)
		return
	}
	c.conn.WriteInt64(count)
}

// cmdClusterGetKeysInSlot: CLUSTER GETKEYSINSLOT slot count.
func cmdClusterGetKeysInSlot(n *Node, c *client, args [][]byte) {
	slot, err1 := strconv.ParseInt(string(args[2]), 10, 64)
	count, err2 := strconv.ParseInt(string(args[3]), 10, 64)
	if err1 != nil || err2 != nil {
		c.fail(errNotInteger)
		return
	}
	if slot < 0 || slot >= numSlots || count < 0 {
		c.fail(errInvalidSlotCount)
		return
	}
	// The reply is bounded as KEYS' is: a count past it asks for more than
	// one reply should hold, and the slot is walked in key order, so a
	// client pages by asking again after moving or deleting what it got.
	limit := min(count, maxKeysReply)
	var keys [][]byte
	if limit > 0 {
		err := n.walkSlot(c.ks.db, uint16(slot), func(k []byte) bool {
			keys = append(keys, bytes.Clone(k))
			return int64(len(keys)) < limit
		})
		if err != nil {
			n.replyErr(c, err)
			return
		}
	}
	c.conn.WriteArray(len(keys))
	for _, k := range keys {
		c.conn.WriteBulk(k)
	}
}

// slotPrefix is the first engine key of slot s in (db, gen)'s data range:
// the slot's keys are [slotPrefix(db, gen, s), slotPrefix(db, gen, s+1))
// (s+1 fits in the 2 bytes: slots are below 2^14).
func slotPrefix(db int, gen uint32, s uint16) []byte {
	return binary.BigEndian.AppendUint16(appendDBGen(nil, db, gen), s)
}

// walkSlot calls each with every live key of slot in database db, in key
// order, until each returns false. It reads only the slot's range. The key
// is valid during the call.
func (n *Node) walkSlot(db int, slot uint16, each func(key []byte) bool) error {
	gen, err := n.gen(db)
	if err != nil {
		return err
	}
	now := n.nowMs()
	lower, upper := slotPrefix(db, gen, slot), slotPrefix(db, gen, slot+1)
	it, err := n.eng().NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()[len(lower):]
		_, at, err := decodeValue(it.Value())
		if err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		if at != 0 && at <= now {
			continue
		}
		if !each(key) {
			break
		}
	}
	return it.Error()
}

// SlotRows iterates over one hash slot's rows of one database as they were
// at one moment (an engine snapshot): what a slot move copies to the target
// shard before it ships the slot's log tail from Seq on (docs/cluster.md,
// "Moving slots online"). Rows come in key order, each with its value and
// deadline as stored; a row past its deadline is included (the target keeps
// the deadline, so the key stays invisible there too), and its engine key is
// the row's key in this keyspace, slot included, for the tail's filter.
//
// A SlotRows belongs to one goroutine; Close releases the snapshot (the
// engine may keep obsolete data alive while it is open).
type SlotRows struct {
	snap   logkv.Snapshot
	it     logkv.Iterator
	prefix int // bytes of dbgen and slot before the client key
	start  bool
	err    error
}

// SnapshotSlot returns the rows of slot in database db (a cluster has only
// database 0) at this moment. The caller must Close it.
func (n *Node) SnapshotSlot(db int, slot uint16) (*SlotRows, error) {
	if db < 0 || db >= maxDBs || slot >= numSlots {
		return nil, fmt.Errorf("node: no slot %d of database %d: slots are 0..%d, databases 0..%d", slot, db, numSlots-1, maxDBs-1)
	}
	snap, err := n.eng().NewSnapshot()
	if err != nil {
		return nil, err
	}
	// The generation is read from the snapshot itself, so rows and
	// generation are of one moment even if a FLUSHALL commits meanwhile.
	gen, err := readGenFrom(snap, db)
	if err != nil {
		snap.Close()
		return nil, err
	}
	lower, upper := slotPrefix(db, gen, slot), slotPrefix(db, gen, slot+1)
	it, err := snap.NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		snap.Close()
		return nil, err
	}
	return &SlotRows{snap: snap, it: it, prefix: len(lower), start: true}, nil
}

// Seq is the sequence number of the newest batch the snapshot holds: the
// slot's writes after it are the tail a move ships next.
func (r *SlotRows) Seq() uint64 { return r.snap.Seq() }

// Next moves to the next row and reports whether there is one; at the end,
// or on an error (Err), it returns false.
func (r *SlotRows) Next() bool {
	if r.err != nil {
		return false
	}
	var ok bool
	if r.start {
		ok, r.start = r.it.First(), false
	} else {
		ok = r.it.Next()
	}
	if !ok {
		r.err = r.it.Error()
		return false
	}
	if _, _, err := decodeValue(r.it.Value()); err != nil {
		r.err = fmt.Errorf("key %q: %w", r.Key(), err)
		return false
	}
	return true
}

// Key is the row's client key, valid until Next.
func (r *SlotRows) Key() []byte { return r.it.Key()[r.prefix:] }

// EngineKey is the row's engine key (dbgen, slot, key), valid until Next.
func (r *SlotRows) EngineKey() []byte { return r.it.Key() }

// Value is the row's value (a string's bytes), valid until Next.
func (r *SlotRows) Value() []byte {
	v, _, _ := decodeValue(r.it.Value()) // checked by Next
	return v
}

// ExpireAt is the row's deadline in Unix milliseconds, 0 for none.
func (r *SlotRows) ExpireAt() int64 {
	_, at, _ := decodeValue(r.it.Value())
	return at
}

// Err is the error that ended the iteration, if any.
func (r *SlotRows) Err() error { return r.err }

// Close releases the iterator and the snapshot. It is safe to call twice.
func (r *SlotRows) Close() error {
	if r.it == nil {
		return nil
	}
	err := r.it.Close()
	r.snap.Close()
	r.it = nil
	return err
}
