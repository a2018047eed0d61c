package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/logkv/logkv"
)

// Converting a keyspace of format 1 to format 2 (keyspace.go, "Engine
// encoding"), which a leader does when it opens one, before it serves.
//
// Format 2 differs from format 1 only in the data keys, which carry the
// key's hash slot: dbgen key -> dbgen slot key. A key cannot be rewritten in
// place (both encodings live in the same dbgen range, and a format-1 key may
// read as another key's format-2 key), so each database with keys moves to
// its next generation, as a flush does, with its keys copied under their
// slots:
//
//  1. One batch: format = 2 and the "convert" row. From here an older kvnode
//     refuses the data_dir (it reads format 1 only) and this one knows a
//     conversion is under way.
//  2. Batches of up to convertBatchKeys keys: every key of each database's
//     current generation g, its value as it is, to generation g+1 under its
//     slot, with its expiry index entry. Nothing reads g+1 yet.
//  3. One batch: each converted database's "gen" row to g+1, and the
//     "convert" row deleted. The keyspace is format 2 from this batch on.
//  4. The background sweeper deletes generation g as it deletes a flushed
//     one (flush.go), and the expirer drops g's index entries when due.
//
// A crash before 3 leaves format 2 with the "convert" row and the "gen" rows
// unchanged: the next start runs 2 and 3 again. Copying is a function of
// generation g, which nothing changes meanwhile (the node does not serve),
// so a rerun writes the same keys and values over what the crashed run left
// and nothing else (expired keys are copied too, deadline and all, so the
// set does not depend on the clock). A crash after 3 leaves format 2. Every
// batch goes through the backend, so the commit log holds the conversion and
// followers apply it as they apply any write (they answer reads with an
// error until it is done: followerFormat).
//
// Converting rather than refusing: format 1 is what every kvnode before this
// one wrote, on every node, so refusing would make each upgrade an export
// and a reload by hand. The price is the time to copy the keyspace once at
// the first start (docs/keyspace.md has the figure) and its space until the
// sweeper has deleted the old generation.

// convertBatchKeys and convertBatchBytes bound one copying batch.
const (
	convertBatchKeys  = 4096
	convertBatchBytes = 4 << 20
)

// convertHook, if set (tests), runs after each copying batch is applied,
// with the count of batches so far; an error stops the conversion there, as
// a crash would.
var convertHook func(batches int) error

// convertFormat1 converts a keyspace of format 1, or finishes a conversion
// that a crash interrupted.
func (n *Node) convertFormat1() error {
	e := n.eng()
	gens := make([]uint32, maxDBs)
	var todo []int // databases with keys
	for db := range maxDBs {
		g, err := n.readGen(db)
		if err != nil {
			return err
		}
		gens[db] = g
		has, err := hasKeys(e, dataPrefix(db, g))
		if err != nil {
			return err
		}
		if !has {
			continue
		}
		if g >= maxGen {
			return fmt.Errorf("node: converting keyspace format 1 to 2 moves each database to its next generation, and database %d is at the last (%d): export its keys (SCAN, DUMP) with the kvnode that wrote them and load them into an empty data_dir", db, maxGen)
		}
		todo = append(todo, db)
	}
	n.log.Info("converting the keyspace from format 1 to format 2 (keys stored under their hash slot)", "databases", len(todo))
	var b logkv.Batch
	b.Set(metaFormatKey, []byte{keyspaceFormat})
	b.Set(metaConvertKey, []byte{1})
	if err := n.applyAtOpen(&b); err != nil {
		return fmt.Errorf("node: start converting keyspace format 1: %w", err)
	}
	batches, keys := 0, 0
	for _, db := range todo {
		k, err := n.convertDB(db, gens[db], &batches)
		if err != nil {
			return fmt.Errorf("node: converting keyspace format 1, database %d (start the node again to finish the conversion): %w", db, err)
		}
		keys += k
	}
	b.Reset()
	for _, db := range todo {
		b.Set(metaGenKey(db), binary.BigEndian.AppendUint32(nil, gens[db]+1))
	}
	b.Delete(metaConvertKey)
	if err := n.applyAtOpen(&b); err != nil {
		return fmt.Errorf("node: finish converting keyspace format 1 (start the node again to finish it): %w", err)
	}
	n.log.Info("converted the keyspace to format 2; the old keys are deleted in the background", "keys", keys, "batches", batches)
	return nil
}

// convertDB copies database db's keys of generation g (format 1) to
// generation g+1 (format 2), and returns how many it copied.
func (n *Node) convertDB(db int, g uint32, batches *int) (int, error) {
	snap, err := n.eng().NewSnapshot()
	if err != nil {
		return 0, err
	}
	defer snap.Close()
	lower := dataPrefix(db, g)
	it, err := snap.NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var b logkv.Batch
	var kbuf []byte
	keys := 0
	flush := func() error {
		if b.Empty() {
			return nil
		}
		if err := n.applyAtOpen(&b); err != nil {
			return err
		}
		b.Reset()
		*batches++
		if convertHook != nil {
			return convertHook(*batches)
		}
		return nil
	}
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()[len(lower):] // format 1: dbgen key
		if len(key) == 0 {
			return keys, fmt.Errorf("%w: an empty key in database %d", logkv.ErrCorrupt, db)
		}
		v := it.Value()
		_, at, err := decodeValue(v)
		if err != nil {
			return keys, fmt.Errorf("key %q: %w", key, err)
		}
		kbuf = appendDataKey(kbuf[:0], db, g+1, key)
		b.Set(kbuf, v)
		if at != 0 {
			b.Set(appendExpiryKey(kbuf[:0], db, g+1, at, key), nil)
		}
		keys++
		if b.Len() >= convertBatchKeys || b.Size() >= convertBatchBytes {
			if err := flush(); err != nil {
				return keys, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return keys, err
	}
	return keys, flush()
}

// hasKeys reports whether e holds a key with the prefix.
func hasKeys(e logkv.Reader, prefix []byte) (bool, error) {
	it, err := e.NewIter(&logkv.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return false, err
	}
	has := it.First()
	return has, errors.Join(it.Error(), it.Close())
}
