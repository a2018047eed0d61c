package node

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/logkv/logkv"
)

// What the commands that walk a database (DBSIZE, SCAN, KEYS) see inside
// EXEC: the engine as it is, with the transaction's own earlier writes laid
// over it, as Redis, whose transaction writes in place, shows them.
//
// A transaction's writes are in its tx (keyspace.go) until EXEC commits
// them as one batch. Every key it wrote is locked by EXEC, so the engine's
// version of such a key cannot change while EXEC runs: the overlay compares
// the tx's version of each key it wrote with the engine's, and corrects the
// walk by the difference. A database the transaction flushed is the tx's
// keys alone. The cost is O(keys the transaction wrote) on top of the walk.

// liveInTx reports whether k exists as the tx sees it now.
func (t *tx) liveInTx(k *txKey) bool {
	return k.found && (k.expireAt == 0 || k.expireAt > t.now)
}

// liveInEngine reports whether key exists in db's engine version, as of the
// tx's clock. The tx must hold key's lock (EXEC does).
func (t *tx) liveInEngine(db int, key []byte) (bool, error) {
	if t.flushed&(1<<db) != 0 {
		return false, nil // the walk of the engine is skipped altogether
	}
	gen, err := t.n.gen(db)
	if err != nil {
		return false, err
	}
	v, err := t.n.eng().Get(appendDataKey(nil, db, gen, key))
	switch {
	case errors.Is(err, logkv.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	_, at, err := decodeValue(v)
	if err != nil {
		return false, fmt.Errorf("key %q: %w", key, err)
	}
	return at == 0 || at > t.now, nil
}

// countKeys is DBSIZE inside EXEC: db's live keys with the transaction's
// writes applied.
func (t *tx) countKeys(db int) (int64, error) {
	var keys int64
	if t.flushed&(1<<db) == 0 {
		var err error
		if keys, _, err = t.n.countKeys(db); err != nil {
			return 0, err
		}
	}
	for i := range t.keys {
		k := &t.keys[i]
		if k.db != db || !k.dirty {
			continue
		}
		inEngine, err := t.liveInEngine(db, k.key)
		if err != nil {
			return 0, err
		}
		switch inTx := t.liveInTx(k); {
		case inTx && !inEngine:
			keys++
		case !inTx && inEngine:
			keys--
		}
	}
	return keys, nil
}

// overlayScan corrects one step of a walk of db's engine keys inside EXEC:
// keys (matching pattern and typ) came from positions [start, next) of the
// engine (scanPos: slot, then key; nil start: the first key; nil next: to
// the end). It drops the keys the
// transaction removed and adds, in order, those it created in that range.
// In a database the transaction flushed, the engine's keys are not the
// database's: the step is every key the transaction created from start on,
// and the walk ends.
func (t *tx) overlayScan(db int, keys [][]byte, start, next, pattern []byte, typ string) ([][]byte, []byte) {
	if t.flushed&(1<<db) != 0 {
		keys, next = keys[:0], nil
	}
	gone := map[string]bool{}
	var added [][]byte
	for i := range t.keys {
		k := &t.keys[i]
		if k.db != db || !k.dirty {
			continue
		}
		if !t.liveInTx(k) {
			gone[string(k.key)] = true
			continue
		}
		pos := appendScanPos(nil, k.key)
		if (start != nil && bytes.Compare(pos, start) < 0) || (next != nil && bytes.Compare(pos, next) >= 0) {
			continue
		}
		if (pattern == nil || globMatch(pattern, k.key)) && (typ == "" || typ == "string") {
			added = append(added, k.key)
		}
	}
	if len(gone) == 0 && len(added) == 0 {
		return keys, next
	}
	out := keys[:0:0]
	have := make(map[string]bool, len(keys))
	for _, k := range keys {
		if !gone[string(k)] {
			out = append(out, k)
			have[string(k)] = true
		}
	}
	for _, k := range added {
		if !have[string(k)] {
			out = append(out, bytes.Clone(k))
		}
	}
	// In the walk's order: by slot, then key.
	slices.SortFunc(out, func(a, b []byte) int {
		if sa, sb := keySlot(a), keySlot(b); sa != sb {
			return cmp.Compare(sa, sb)
		}
		return bytes.Compare(a, b)
	})
	return out, next
}
