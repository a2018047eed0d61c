package node

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"strconv"
	"strings"

	"github.com/logkv/logkv"
)

// The generic key commands: KEYS, RENAME, RENAMENX, COPY, MOVE, RANDOMKEY,
// TOUCH, OBJECT, DUMP and RESTORE. Each runs on a tx (keyspace.go), so it is
// atomic with every other command on the same keys, and inside MULTI part of
// the transaction's one batch.

// maxKeysReply bounds what one KEYS may return: past it KEYS fails and asks
// for SCAN, instead of building an unbounded reply.
const maxKeysReply = 1 << 20

func init() {
	for _, c := range []*command{
		// KEYS walks the whole database: it runs off the event loop.
		{name: "keys", arity: 2, slow: true, heavy: true, run: cmdKeys},
		{name: "rename", arity: 3, write: true, run: cmdRename, first: 1, last: 2, step: 1},
		{name: "renamenx", arity: 3, write: true, run: cmdRename, first: 1, last: 2, step: 1},
		{name: "copy", arity: -3, write: true, run: cmdCopy, first: 1, last: 2, step: 1},
		{name: "move", arity: 3, write: true, run: cmdMove, first: 1, last: 1, step: 1},
		{name: "randomkey", arity: 1, run: cmdRandomKey},
		{name: "touch", arity: -2, slowArgs: manyArgs, run: cmdExists, first: 1, last: -1, step: 1},
		{name: "object", arity: -2, run: cmdObject, first: 2, last: 2, step: 1},
		{name: "dump", arity: 2, run: cmdDump, first: 1, last: 1, step: 1},
		{name: "restore", arity: -4, write: true, run: cmdRestore, first: 1, last: 1, step: 1},
	} {
		register(c)
	}
}

// cmdKeys: KEYS pattern, in key order, expired keys skipped.
func cmdKeys(n *Node, c *client, args [][]byte) {
	var keys [][]byte
	var start []byte
	for {
		batch, next, err := n.scanKeys(c, start, args[1], 10000, "")
		if err != nil {
			n.replyErr(c, err)
			return
		}
		keys = append(keys, batch...)
		if len(keys) > maxKeysReply {
			c.fail(fmt.Sprintf("ERR KEYS matches more than %d keys; use SCAN with MATCH to walk them in steps", maxKeysReply))
			return
		}
		if next == nil {
			break
		}
		start = next
	}
	c.conn.WriteArray(len(keys))
	for _, k := range keys {
		c.conn.WriteBulk(k)
	}
}

// change starts a command that changes, copies or moves keys[0] only if it
// exists (RENAME, COPY, MOVE, EXPIRE, PERSIST, GETEX): it begins a tx on
// keys and reads keys[0]'s value, deadline and presence. It is modify
// without the key check: a key too long (or empty) to have been written
// does not exist, and the command answers as for a missing key, as Redis
// does. If ok is false the command has replied (a failed read) and there is
// no tx; otherwise the caller closes t.
func (n *Node) change(c *client, keys [][]byte) (t *tx, value []byte, expireAt int64, found, ok bool) {
	t = n.begin(c, keys)
	value, expireAt, found, err := t.get(keys[0])
	if err != nil {
		t.close()
		n.replyErr(c, err)
		return nil, nil, 0, false, false
	}
	return t, value, expireAt, found, true
}

// cmdRename: RENAME key newkey, RENAMENX key newkey. The value keeps its TTL.
func cmdRename(n *Node, c *client, args [][]byte) {
	nx := strings.EqualFold(string(args[0]), "renamenx")
	if !n.checkKey(c, args[2]) {
		return
	}
	t, v, at, found, ok := n.change(c, args[1:3])
	if !ok {
		return
	}
	defer t.close()
	if !found {
		c.fail("ERR no such key")
		return
	}
	if bytes.Equal(args[1], args[2]) {
		if nx {
			c.conn.WriteInt(0)
		} else {
			c.conn.WriteString("OK")
		}
		return
	}
	if nx {
		exists, err := t.exists(args[2])
		if err != nil {
			n.replyErr(c, err)
			return
		}
		if exists {
			c.conn.WriteInt(0)
			return
		}
	} else if _, err := t.load(args[2]); err != nil { // its old index entry goes
		n.replyErr(c, err)
		return
	}
	t.del(args[1])
	t.set(args[2], v, at)
	if !t.commit() {
		return
	}
	if nx {
		c.conn.WriteInt(1)
	} else {
		c.conn.WriteString("OK")
	}
}

// cmdCopy: COPY source destination [DB destination-db] [REPLACE].
func cmdCopy(n *Node, c *client, args [][]byte) {
	srcDB, dstDB := c.ks.db, c.ks.db
	replace := false
	for i := 3; i < len(args); i++ {
		switch a := strings.ToLower(string(args[i])); {
		case a == "replace":
			replace = true
		case a == "db" && i+1 < len(args):
			i++
			db, err := strconv.Atoi(string(args[i]))
			if err != nil {
				c.fail(errNotInteger)
				return
			}
			if db < 0 || db >= n.databases() {
				c.fail(errDBIndex)
				return
			}
			dstDB = db
		default:
			c.fail(errSyntax)
			return
		}
	}
	if srcDB == dstDB && bytes.Equal(args[1], args[2]) {
		c.fail("ERR source and destination objects are the same")
		return
	}
	if !n.checkKey(c, args[2]) {
		return
	}
	t, v, at, found, ok := n.change(c, args[1:3])
	if !ok {
		return
	}
	defer t.close()
	defer func() { t.db = srcDB }()
	if !found {
		c.conn.WriteInt(0)
		return
	}
	t.db = dstDB
	exists, err := t.exists(args[2])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if exists && !replace {
		c.conn.WriteInt(0)
		return
	}
	t.set(args[2], bytes.Clone(v), at)
	if t.commit() {
		c.conn.WriteInt(1)
	}
}

// cmdMove: MOVE key db. The value keeps its TTL.
func cmdMove(n *Node, c *client, args [][]byte) {
	db, err := strconv.Atoi(string(args[2]))
	if err != nil {
		c.fail(errNotInteger)
		return
	}
	if db < 0 || db >= n.databases() {
		c.fail(errDBIndex)
		return
	}
	srcDB := c.ks.db
	if db == srcDB {
		c.fail("ERR source and destination objects are the same")
		return
	}
	t, v, at, found, ok := n.change(c, args[1:2])
	if !ok {
		return
	}
	defer t.close()
	defer func() { t.db = srcDB }()
	if !found {
		c.conn.WriteInt(0)
		return
	}
	t.db = db
	exists, err := t.exists(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if exists {
		c.conn.WriteInt(0)
		return
	}
	t.set(args[1], v, at)
	t.db = srcDB
	t.del(args[1])
	if t.commit() {
		c.conn.WriteInt(1)
	}
}

// cmdRandomKey seeks to a random point of the database's key range (a
// random slot, then a random key in it) and returns the first live key at
// or after it (wrapping around): keys after a long gap are likelier, which
// Redis' sampling does not promise against either.
func cmdRandomKey(n *Node, c *client, args [][]byte) {
	var probe [10]byte
	rand.Read(probe[:])
	probe[0] &= (numSlots - 1) >> 8 // a slot below 16384
	db := c.ks.db
	gen, err := n.gen(db)
	if err != nil {
		n.replyErr(c, err)
		return
	}
	now := n.nowMs()
	lower := dataPrefix(db, gen)
	it, err := n.eng().NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		n.replyErr(c, err)
		return
	}
	defer it.Close()
	ok := it.SeekGE(append(lower, probe[:]...)) // probe's first 2 bytes are the slot
	wrapped := false
	// Bounded: expired keys not reclaimed yet are skipped, up to a limit.
	for range 1000 {
		if !ok {
			if wrapped {
				break
			}
			wrapped, ok = true, it.First()
			continue
		}
		if _, at, err := decodeValue(it.Value()); err == nil && (at == 0 || at > now) {
			_, _, k, _ := decodeDataKey(it.Key())
			c.conn.WriteBulk(k)
			return
		}
		ok = it.Next()
	}
	if err := it.Error(); err != nil {
		n.replyErr(c, err)
		return
	}
	c.conn.WriteNull()
}

// cmdObject: OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP key.
// ENCODING names the encoding Redis would use for the string (logkv stores
// every value as bytes); logkv tracks no access times or frequencies, and
// says so.
func cmdObject(n *Node, c *client, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	c.noteSub("object", sub)
	if sub == "help" {
		lines := []string{
			"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"ENCODING <key>", "    Return the kind of internal representation Redis would use for the value of <key>.",
			"FREQ <key>", "    Not tracked by logkv: an error.",
			"IDLETIME <key>", "    Not tracked by logkv: an error.",
			"REFCOUNT <key>", "    Return the number of references of the value of <key>: always 1.",
			"HELP", "    Print this help.",
		}
		c.conn.WriteArray(len(lines))
		for _, l := range lines {
			c.conn.WriteBulkString(l)
		}
		return
	}
	switch sub {
	case "encoding", "refcount", "idletime", "freq":
	default:
		c.fail(fmt.Sprintf("ERR unknown subcommand '%.128s'. Try OBJECT HELP.", args[1]))
		return
	}
	if len(args) != 3 {
		c.fail(wrongArity("object|" + sub))
		return
	}
	t := n.read(c)
	defer t.close()
	v, _, found, err := t.get(args[2])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if !found {
		c.conn.WriteNull()
		return
	}
	switch sub {
	case "encoding":
		c.conn.WriteBulkString(stringEncoding(v))
	case "refcount":
		c.conn.WriteInt(1)
	case "idletime":
		c.fail("ERR logkv does not track key access times (it evicts nothing)")
	default: // freq: Redis' own reply without an LFU policy, which is true here
		c.fail("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
	}
}

// stringEncoding is the encoding Redis reports for a string value: int for
// a canonical 64-bit integer, embstr up to 44 bytes, raw beyond.
func stringEncoding(v []byte) string {
	if len(v) <= 20 {
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil && strconv.FormatInt(i, 10) == string(v) {
			return "int"
		}
	}
	if len(v) <= 44 {
		return "embstr"
	}
	return "raw"
}

// DUMP's payload (logkv's own, not Redis' RDB encoding):
//
//	bytes 0..3   "LKV" and the payload version, 1
//	byte  4      type: 0 = string
//	bytes 5..    the value
//	last 8       CRC-64 (ECMA) of everything before, big-endian
//
// The TTL is not in it, as in Redis: RESTORE takes one.
const dumpVersion = 1

var (
	dumpMagic = []byte{'L', 'K', 'V', dumpVersion}
	crcTable  = crc64.MakeTable(crc64.ECMA)
)

// dumpOverhead is the payload's bytes besides the value.
const dumpOverhead = 4 + 1 + 8

func dumpPayload(v []byte) []byte {
	out := make([]byte, 0, len(v)+dumpOverhead)
	out = append(out, dumpMagic...)
	out = append(out, typeString)
	out = append(out, v...)
	return binary.BigEndian.AppendUint64(out, crc64.Checksum(out, crcTable))
}

// undump checks a payload and returns its value.
func undump(p []byte) ([]byte, bool) {
	if len(p) < dumpOverhead || !bytes.Equal(p[:4], dumpMagic) || p[4] != typeString {
		return nil, false
	}
	body := p[:len(p)-8]
	if crc64.Checksum(body, crcTable) != binary.BigEndian.Uint64(p[len(p)-8:]) {
		return nil, false
	}
	return body[5:], true
}

func cmdDump(n *Node, c *client, args [][]byte) {
	t := n.read(c)
	defer t.close()
	v, _, found, err := t.get(args[1])
	switch {
	case err != nil:
		n.replyErr(c, err)
	case !found:
		c.conn.WriteNull()
	default:
		c.conn.WriteBulk(dumpPayload(v))
	}
}

// cmdRestore: RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s]
// [FREQ f]. IDLETIME and FREQ are checked as Redis checks them, then
// ignored: logkv tracks neither.
func cmdRestore(n *Node, c *client, args [][]byte) {
	ttl, err := strconv.ParseInt(string(args[2]), 10, 64)
	if err != nil {
		c.fail(errNotInteger)
		return
	}
	replace, abs := false, false
	for i := 4; i < len(args); i++ {
		switch a := strings.ToLower(string(args[i])); {
		case a == "replace":
			replace = true
		case a == "absttl":
			abs = true
		case (a == "idletime" || a == "freq") && i+1 < len(args):
			i++
			v, err := strconv.ParseInt(string(args[i]), 10, 64)
			if err != nil {
				c.fail(errNotInteger)
				return
			}
			if a == "idletime" && v < 0 {
				c.fail("ERR Invalid IDLETIME value, must be >= 0")
				return
			}
			if a == "freq" && (v < 0 || v > 255) {
				c.fail("ERR Invalid FREQ value, must be >= 0 and <= 255")
				return
			}
		default:
			c.fail(errSyntax)
			return
		}
	}
	if ttl < 0 {
		c.fail("ERR Invalid TTL value, must be >= 0")
		return
	}
	if !n.checkKey(c, args[1]) {
		return
	}
	t := n.begin(c, args[1:2])
	defer t.close()
	exists, err := t.exists(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if exists && !replace { // checked before the payload, as Redis
		c.fail("BUSYKEY Target key name already exists.")
		return
	}
	v, ok := undump(args[3])
	if !ok {
		c.fail("ERR DUMP payload version or checksum are wrong")
		return
	}
	if !n.checkValue(c, v) {
		return
	}
	at := ttl
	if ttl != 0 && !abs {
		at = t.now + ttl
		if at < ttl { // overflow
			c.fail("ERR Invalid TTL value, must be >= 0")
			return
		}
	}
	if at != 0 && at <= t.now {
		_, err = t.del(args[1]) // already expired: nothing to create
	} else {
		t.set(args[1], v, at)
	}
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if t.commit() {
		c.conn.WriteString("OK")
	}
}
