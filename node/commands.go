package node

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/logkv/logkv"
)

// command is one entry of the command table.
type command struct {
	name string
	// arity follows Redis: n > 0 means exactly n arguments (the name
	// included), n < 0 at least -n.
	arity int
	// write marks commands that change data: refused on a follower, and
	// followed by a Sync before the pipeline's replies go out.
	write bool
	// noAuth commands run before AUTH.
	noAuth bool
	// slow commands may wait long (for followers, or a new leader): they
	// run off the event loop (see server.go).
	slow bool
	// slowArgs, if not 0, makes the command slow past that many
	// arguments: a DEL of a million keys must not hold the event loop
	// for seconds.
	slowArgs int
	// heavy commands keep a CPU busy for long (KEYS, DBSIZE, a DEL or
	// MGET past slowArgs): off the loop they run under the node-wide cap
	// of Node.heavy, so a flood of them cannot starve the event loops.
	// Commands that are slow because they wait (WAIT, REPLICAOF) are not
	// heavy: they hold no CPU while they wait.
	heavy bool
	// admin commands can destroy data or stop the node: only an
	// authenticated admin may run them (see access.go).
	admin bool
	run   func(n *Node, c *client, args [][]byte)
	// first, last and step give the positions of the keys the command
	// names, as COMMAND reports them (last < 0 counts from the end); EXEC
	// locks them. first is 0 for a command without keys.
	first, last, step int
	// id indexes the command's per-node metrics.
	id int
}

var (
	commandTable = map[string]*command{}
	commandList  []*command
	// commandIndex finds commands by name on the request path (lookup).
	commandIndex cmdIndex
)

func init() {
	for _, c := range []*command{
		{name: "ping", arity: -1, noAuth: true, run: cmdPing},
		{name: "echo", arity: 2, run: cmdEcho},
		{name: "get", arity: 2, run: cmdGet, first: 1, last: 1, step: 1},
		{name: "set", arity: -3, write: true, run: cmdSet, first: 1, last: 1, step: 1},
		{name: "setnx", arity: 3, write: true, run: cmdSetNX, first: 1, last: 1, step: 1},
		{name: "del", arity: -2, write: true, slowArgs: manyArgs, run: cmdDel, first: 1, last: -1, step: 1},
		{name: "unlink", arity: -2, write: true, slowArgs: manyArgs, run: cmdDel, first: 1, last: -1, step: 1},
		{name: "exists", arity: -2, slowArgs: manyArgs, run: cmdExists, first: 1, last: -1, step: 1},
		{name: "mget", arity: -2, slowArgs: manyArgs, run: cmdMGet, first: 1, last: -1, step: 1},
		{name: "mset", arity: -3, write: true, slowArgs: manyArgs, run: cmdMSet, first: 1, last: -1, step: 2},
		{name: "incr", arity: 2, write: true, run: cmdIncr, first: 1, last: 1, step: 1},
		{name: "decr", arity: 2, write: true, run: cmdIncr, first: 1, last: 1, step: 1},
		{name: "incrby", arity: 3, write: true, run: cmdIncr, first: 1, last: 1, step: 1},
		{name: "decrby", arity: 3, write: true, run: cmdIncr, first: 1, last: 1, step: 1},
		{name: "type", arity: 2, run: cmdType, first: 1, last: 1, step: 1},
		{name: "scan", arity: -2, run: cmdScan},
		{name: "info", arity: -1, run: cmdInfo},
		{name: "role", arity: 1, run: cmdRole},
		{name: "wait", arity: 3, slow: true, run: cmdWait},
		{name: "replicaof", arity: -3, slow: true, admin: true, run: cmdReplicaOf},
		{name: "slaveof", arity: -3, slow: true, admin: true, run: cmdReplicaOf},
		{name: "auth", arity: -2, noAuth: true, run: cmdAuth},
		{name: "select", arity: 2, run: cmdSelect},
		{name: "config", arity: -2, run: cmdConfig},
		{name: "command", arity: -1, run: cmdCommand},
		{name: "hello", arity: -1, noAuth: true, run: cmdHello},
		{name: "client", arity: -2, noAuth: true, run: cmdClient},
		{name: "quit", arity: -1, noAuth: true, run: cmdQuit},
	} {
		register(c)
	}
	cmdSetEntry, cmdMSetEntry = commandTable["set"], commandTable["mset"]
}

// register adds c to the command table. Command families in other files
// register theirs from their own init.
func register(c *command) {
	if commandTable[c.name] != nil {
		panic("node: command registered twice: " + c.name)
	}
	if c.name != strings.ToLower(c.name) {
		panic("node: command names are registered in lowercase: " + c.name)
	}
	guardStaleRead(c) // cluster.max_read_lag (cluster.go)
	c.id = len(commandList)
	commandList = append(commandList, c)
	commandTable[c.name] = c
	commandIndex.add(c)
}

// manyArgs is where a multi-key command starts to run off the event loop:
// a few milliseconds of engine reads or writes.
const manyArgs = 4096

// cmdSetEntry and cmdMSetEntry are the table's SET and MSET, whose plain
// forms queue their writes (see writepath.go, the queue stage).
var cmdSetEntry, cmdMSetEntry *command

// lookup finds a command by its case-insensitive name without allocating.
func lookup(name []byte) *command { return commandIndex.find(name) }

// cmdIndex finds a command by its name, ASCII case-insensitively, with one
// pass over the name: the name is hashed as it is lowercased, one slot of an
// open-addressing table (linear probing, at most half full) is usually
// enough, and the compare folds case as it goes. This is Redis' way (its
// command dict is hashed once per request, case-insensitively); a Go map
// needed a lowercased copy, then its own hash and compare, 2.7% of a
// pipelined GET's CPU (docs/keyspace.md has the split).
//
// A name of at most 8 bytes is folded (each byte |0x20) into one word as it
// is read, and hashed from the word; a command whose name is that short and
// all letters is found by comparing words (words), as a byte b|0x20 equals
// the lowercase letter l only if b is l or its uppercase.
type cmdIndex struct {
	slots []*command // len is a power of two; nil: empty
	// words[i] is slots[i]'s name folded (foldWord), if the name is at
	// most 8 letters; 0 if not.
	words []uint64
	n     int
}

// foldWord packs name, each byte |0x20, into a word (its last byte in the
// low byte), if name has at most 8 bytes. No folded byte is 0, so names of
// different lengths have different words.
func foldWord(name []byte) (w uint64, ok bool) {
	if len(name) > 8 {
		return 0, false
	}
	for _, b := range name {
		w = w<<8 | uint64(b|0x20)
	}
	return w, true
}

// hashName hashes name with ASCII letters lowercased: a name of at most 8
// bytes by its folded word, a longer one by FNV-1a over the folded bytes.
// Other bytes that |0x20 changes only hash alike; find compares exactly.
func hashName(name []byte) uint32 {
	if w, ok := foldWord(name); ok {
		return hashWord(w)
	}
	h := uint32(2166136261)
	for _, b := range name {
		h = (h ^ uint32(b|0x20)) * 16777619
	}
	return h
}

// hashWord hashes a folded word (Fibonacci hashing: the high bits of its
// product with 2^64/phi).
func hashWord(w uint64) uint32 { return uint32((w * 0x9e3779b97f4a7c15) >> 32) }

// lettersWord is name's folded word if name is 1 to 8 lowercase letters,
// else 0.
func lettersWord(name string) uint64 {
	if len(name) == 0 || len(name) > 8 {
		return 0
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 'a' || name[i] > 'z' {
			return 0
		}
	}
	w, _ := foldWord([]byte(name))
	return w
}

// add adds c under c.name, which is lowercase.
func (x *cmdIndex) add(c *command) {
	if 2*(x.n+1) > len(x.slots) {
		old := x.slots
		size := max(64, 2*len(old))
		x.slots, x.words, x.n = make([]*command, size), make([]uint64, size), 0
		for _, o := range old {
			if o != nil {
				x.add(o)
			}
		}
	}
	mask := uint32(len(x.slots) - 1)
	for i := hashName([]byte(c.name)) & mask; ; i = (i + 1) & mask {
		if x.slots[i] == nil {
			x.slots[i], x.words[i] = c, lettersWord(c.name)
			x.n++
			return
		}
	}
}

// find returns the command named name in any case, or nil.
func (x *cmdIndex) find(name []byte) *command {
	if len(x.slots) == 0 {
		return nil
	}
	mask := uint32(len(x.slots) - 1)
	w, short := foldWord(name)
	var h uint32
	if short {
		h = hashWord(w)
	} else {
		h = hashName(name)
	}
	for i := h & mask; ; i = (i + 1) & mask {
		c := x.slots[i]
		if c == nil {
			return nil
		}
		if short && x.words[i] != 0 {
			if x.words[i] == w {
				return c
			}
			continue
		}
		if equalFoldLower(name, c.name) {
			return c
		}
	}
}

// equalFoldLower reports whether b equals the lowercase lower with ASCII
// letters of b folded to lowercase.
func equalFoldLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Replies Redis clients expect, word for word.
const (
	errSyntax       = "ERR syntax error"
	errNotInteger   = "ERR value is not an integer or out of range"
	errOverflow     = "ERR increment or decrement would overflow"
	errNoAuth       = "NOAUTH Authentication required."
	errWrongPass    = "WRONGPASS invalid username-password pair or user is disabled."
	errReadOnly     = "READONLY You can't write against a read only replica."
	errDBIndex      = "ERR DB index is out of range"
	errNoPassword   = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	errTooManyConns = "ERR max number of clients reached"
)

func unknownCommand(args [][]byte) string {
	// As Redis builds it: each argument as a C string (up to a NUL byte),
	// quoted, while the list is under 128 bytes, each cut to what is left.
	cstr := func(b []byte) []byte {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			return b[:i]
		}
		return b
	}
	var list []byte
	for _, a := range args[1:] {
		if len(list) >= 128 {
			break
		}
		a = cstr(a)
		a = a[:min(len(a), 128-len(list))]
		list = append(append(append(list, '\''), a...), "' "...)
	}
	name := cstr(args[0])
	return fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", name[:min(len(name), 128)], list)
}

func wrongArity(name string) string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", name)
}

// replyErr writes err as a Redis error, mapping the engine's errors to what a
// user can act on.
func (n *Node) replyErr(c *client, err error) {
	c.fail(n.errReply(err))
}

// errReply is the Redis error reply for err.
func (n *Node) errReply(err error) string {
	switch {
	case errors.Is(err, logkv.ErrClosed):
		return "ERR server is shutting down"
	case errors.Is(err, logkv.ErrCorrupt):
		n.log.Error("corruption reading data", "err", err)
	case errors.Is(err, errFenced):
		return err.Error() // TRYAGAIN, which clients retry (cluster.go)
	}
	return "ERR " + err.Error()
}

func (n *Node) checkKey(c *client, key []byte) bool {
	if len(key) == 0 {
		c.fail("ERR empty keys are not allowed")
		return false
	}
	if len(key) > n.cfg.Limits.MaxKeySize {
		c.fail(fmt.Sprintf("ERR key too large: %d bytes, the limit is %d (limits.max_key_size)", len(key), n.cfg.Limits.MaxKeySize))
		return false
	}
	if len(key) > encodedKeyLimit {
		c.fail(fmt.Sprintf("ERR key too large: %d bytes, the limit is %d (the engine's key limit less the keyspace's %d-byte prefix)", len(key), encodedKeyLimit, maxExpiryPrefixLen))
		return false
	}
	return true
}

func (n *Node) checkValue(c *client, v []byte) bool {
	if len(v) > n.cfg.Limits.MaxValueSize {
		c.fail(fmt.Sprintf("ERR value too large: %d bytes, the limit is %d (limits.max_value_size)", len(v), n.cfg.Limits.MaxValueSize))
		return false
	}
	if len(v) > encodedValueLimit {
		c.fail(fmt.Sprintf("ERR value too large: %d bytes, the limit is %d (the engine's value limit less the keyspace's %d-byte header)", len(v), encodedValueLimit, valueHeaderMax))
		return false
	}
	return true
}

func cmdPing(n *Node, c *client, args [][]byte) {
	switch len(args) {
	case 1:
		c.conn.WriteString("PONG")
	case 2:
		c.conn.WriteBulk(args[1])
	default:
		c.fail(wrongArity("ping"))
	}
}

func cmdEcho(n *Node, c *client, args [][]byte) { c.conn.WriteBulk(args[1]) }

func cmdGet(n *Node, c *client, args [][]byte) {
	var v []byte
	var found bool
	var err error
	if c.ks.exec == nil {
		v, found, err = n.getFast(c, args[1])
	} else {
		t := n.read(c)
		defer t.close()
		v, _, found, err = t.get(args[1])
	}
	switch {
	case err != nil:
		n.replyErr(c, err)
	case !found:
		c.misses++
		c.conn.WriteNull()
	default:
		c.hits++
		c.conn.WriteBulk(v)
	}
}

// setOptions are SET's options: SET key value [NX | XX] [GET] [EX s | PX ms
// | EXAT unix-s | PXAT unix-ms | KEEPTTL].
type setOptions struct {
	nx, xx, get, keepTTL bool
	// expireAt is the absolute deadline in Unix ms, 0 for none.
	expireAt int64
}

// parseSetOptions parses SET's options from args (after key and value) the
// way Redis does, replying the error and returning false on bad ones.
func (n *Node) parseSetOptions(c *client, args [][]byte) (setOptions, bool) {
	var o setOptions
	expiry := false
	for i := 0; i < len(args); i++ {
		a := strings.ToLower(string(args[i]))
		switch {
		case a == "nx" && !o.xx:
			o.nx = true
		case a == "xx" && !o.nx:
			o.xx = true
		case a == "get":
			o.get = true
		case a == "keepttl" && !expiry:
			o.keepTTL = true
		case (a == "ex" || a == "px" || a == "exat" || a == "pxat") && !o.keepTTL && !expiry && i+1 < len(args):
			expiry = true
			i++
			at, msg := n.deadline(args[i], a, "set")
			if msg != "" {
				c.fail(msg)
				return o, false
			}
			o.expireAt = at
		default:
			c.fail(errSyntax)
			return o, false
		}
	}
	return o, true
}

func cmdSet(n *Node, c *client, args [][]byte) {
	key, value := args[1], args[2]
	o, ok := n.parseSetOptions(c, args[3:])
	if !ok || !n.checkKey(c, key) || !n.checkValue(c, value) {
		return
	}
	if c.ks.exec == nil && queueable(cmdSetEntry, args) {
		n.queueWriteAt(c, cmdSetEntry, args[1:3], o.expireAt)
		return
	}
	t := n.begin(c, args[1:2])
	defer t.close()
	old, oldAt, exists, err := t.get(key)
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if (o.nx && exists) || (o.xx && !exists) {
		if o.get && exists {
			c.conn.WriteBulk(old)
		} else {
			c.conn.WriteNull()
		}
		return
	}
	at := o.expireAt
	if o.keepTTL {
		at = oldAt
	}
	if at != 0 && at <= t.now {
		_, err = t.del(key) // a deadline in the past: set, then expired at once
	} else {
		t.set(key, value, at)
	}
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if !t.commit() {
		return
	}
	switch {
	case o.get && exists:
		c.conn.WriteBulk(old)
	case o.get:
		c.conn.WriteNull()
	default:
		c.conn.WriteString("OK")
	}
}

func cmdSetNX(n *Node, c *client, args [][]byte) {
	if !n.checkKey(c, args[1]) || !n.checkValue(c, args[2]) {
		return
	}
	t := n.begin(c, args[1:2])
	defer t.close()
	exists, err := t.exists(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if exists {
		c.conn.WriteInt(0)
		return
	}
	t.set(args[1], args[2], 0)
	if t.commit() {
		c.conn.WriteInt(1)
	}
}

// cmdDel deletes the keys in one batch and counts those that existed.
func cmdDel(n *Node, c *client, args [][]byte) {
	t := n.begin(c, args[1:])
	defer t.close()
	count := 0
	for _, k := range args[1:] {
		existed, err := t.del(k)
		if err != nil {
			n.replyErr(c, err)
			return
		}
		if existed {
			count++
		}
	}
	if t.commit() {
		c.conn.WriteInt(count)
	}
}

// cmdExists counts the keys that exist, a key named twice twice, as Redis.
func cmdExists(n *Node, c *client, args [][]byte) {
	t := n.read(c)
	defer t.close()
	count := 0
	for _, k := range args[1:] {
		found, err := t.exists(k)
		if err != nil {
			n.replyErr(c, err)
			return
		}
		if found {
			count++
		}
	}
	c.conn.WriteInt(count)
}

// cmdMGet reads from one snapshot, so the values are from one moment.
func cmdMGet(n *Node, c *client, args [][]byte) {
	t, err := n.readSnapshot(c)
	if err != nil {
		n.replyErr(c, err)
		return
	}
	defer t.close()
	// Each value is written as it is read, so the client's output limits
	// (limits.go) see the reply grow and can cut it: an MGET naming a large
	// key thousands of times never holds more than the hard limit. A read
	// error replaces the whole reply; nothing has left the node before the
	// pipeline's replies are written.
	c.conn.checkLimits()
	mark := len(c.conn.out)
	c.conn.WriteArray(len(args) - 1)
	for _, k := range args[1:] {
		v, _, found, err := t.get(k)
		if err != nil {
			if !c.conn.cut {
				c.conn.out = c.conn.out[:mark]
			}
			n.replyErr(c, err)
			return
		}
		if found {
			c.conn.WriteBulk(v)
		} else {
			c.conn.WriteNull()
		}
		if c.conn.cut {
			return // over the hard limit: the client is closing
		}
	}
}

// cmdMSet writes every pair in one atomic batch, clearing their TTLs.
func cmdMSet(n *Node, c *client, args [][]byte) {
	if len(args)%2 != 1 {
		c.fail(wrongArity("mset"))
		return
	}
	for i := 1; i < len(args); i += 2 {
		if !n.checkKey(c, args[i]) || !n.checkValue(c, args[i+1]) {
			return
		}
	}
	if c.ks.exec == nil && queueable(cmdMSetEntry, args) {
		// Far under MaxBatchSize: it joins the client's run (writepath.go).
		n.queueWrite(c, cmdMSetEntry, args[1:])
		return
	}
	keys := make([][]byte, 0, len(args)/2)
	for i := 1; i < len(args); i += 2 {
		keys = append(keys, args[i])
	}
	t := n.begin(c, keys)
	defer t.close()
	for i := 1; i < len(args); i += 2 {
		t.set(args[i], args[i+1], 0)
	}
	if t.commit() {
		c.conn.WriteString("OK")
	}
}

// cmdIncr: INCR, DECR, INCRBY, DECRBY. The key keeps its TTL, as in Redis.
func cmdIncr(n *Node, c *client, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	delta := int64(1)
	if len(args) == 3 {
		d, ok := redisInt(args[2]) // as strict as Redis: no "+5", no "007"
		if !ok {
			c.fail(errNotInteger)
			return
		}
		delta = d
	}
	if name == "decr" || name == "decrby" {
		if delta == math.MinInt64 {
			c.fail("ERR decrement would overflow") // Redis' words for this case
			return
		}
		delta = -delta
	}
	key := args[1]
	if !n.checkKey(c, key) {
		return
	}
	t := n.begin(c, args[1:2])
	defer t.close()
	var cur int64
	v, at, found, err := t.get(key)
	switch {
	case err != nil:
		n.replyErr(c, err)
		return
	case found:
		var ok bool
		if cur, ok = redisInt(v); !ok {
			c.fail(errNotInteger)
			return
		}
	}
	if (delta > 0 && cur > math.MaxInt64-delta) || (delta < 0 && cur < math.MinInt64-delta) {
		c.fail(errOverflow)
		return
	}
	cur += delta
	t.set(key, strconv.AppendInt(nil, cur, 10), at)
	if t.commit() {
		c.conn.WriteInt64(cur)
	}
}

func cmdType(n *Node, c *client, args [][]byte) {
	t := n.read(c)
	defer t.close()
	found, err := t.exists(args[1])
	switch {
	case err != nil:
		n.replyErr(c, err)
	case found:
		c.conn.WriteString("string")
	default:
		c.conn.WriteString("none")
	}
}

// cmdScan: SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. Keys come
// in order; COUNT bounds the keys examined per call, as in Redis.
func cmdScan(n *Node, c *client, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.fail("ERR invalid cursor")
		return
	}
	var pattern []byte
	count := 10
	typeFilter := ""
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.fail(errSyntax)
			return
		}
		switch strings.ToLower(string(args[i])) {
		case "match":
			pattern = args[i+1]
		case "count":
			v, err := strconv.Atoi(string(args[i+1]))
			if err != nil {
				c.fail(errNotInteger)
				return
			}
			if v < 1 {
				c.fail(errSyntax)
				return
			}
			count = min(v, 100000)
		case "type":
			typeFilter = strings.ToLower(string(args[i+1]))
		default:
			c.fail(errSyntax)
			return
		}
	}
	var start []byte
	if cursor != 0 {
		start = n.scans.resume(cursor)
	}
	keys, next, err := n.scanKeys(c, start, pattern, count, typeFilter)
	if err != nil {
		n.replyErr(c, err)
		return
	}
	cur := uint64(0)
	if next != nil {
		cur = n.scans.cursor(next)
	}
	c.conn.WriteArray(2)
	c.conn.WriteBulkString(strconv.FormatUint(cur, 10))
	c.conn.WriteArray(len(keys))
	for _, k := range keys {
		c.conn.WriteBulk(k)
	}
}

// scanKeys examines up to count keys of the client's database from start
// (a position, keyspace.go's scanPos: slot then key; nil: the first) and
// returns those matching pattern and typ, and the position to resume from
// (nil: done). Expired keys are skipped.
func (n *Node) scanKeys(c *client, start, pattern []byte, count int, typ string) (keys [][]byte, next []byte, err error) {
	if err := checkPattern(pattern); err != nil {
		return nil, nil, err
	}
	db := c.ks.db
	gen, err := n.gen(db)
	if err != nil {
		return nil, nil, err
	}
	now := n.nowMs()
	lower, upper := scanBounds(db, gen, pattern) // one slot's keys if the pattern fixes the slot
	it, err := n.eng().NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	ok := it.First()
	if start != nil {
		ok = it.SeekGE(append(dataPrefix(db, gen), start...))
	}
	for i := 0; ok && i < count; i++ {
		_, _, k, _ := decodeDataKey(it.Key())
		if (pattern == nil || globMatch(pattern, k)) && (typ == "" || typ == "string") {
			if _, at, err := decodeValue(it.Value()); err != nil {
				return nil, nil, fmt.Errorf("key %q: %w", k, err)
			} else if at == 0 || at > now {
				keys = append(keys, bytes.Clone(k))
			}
		}
		ok = it.Next()
	}
	if err := it.Error(); err != nil {
		return nil, nil, err
	}
	if ok {
		next = bytes.Clone(scanPos(it.Key()))
	}
	if t := c.ks.exec; t != nil { // inside EXEC: with its own writes (txview.go)
		keys, next = t.overlayScan(db, keys, start, next, pattern, typ)
	}
	return keys, next, nil
}

// prefixEnd returns the smallest key greater than every key with the prefix,
// or nil if there is none (the prefix is all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func cmdWait(n *Node, c *client, args [][]byte) {
	replicas, err1 := strconv.Atoi(string(args[1]))
	timeout, err2 := strconv.ParseInt(string(args[2]), 10, 64)
	if err1 != nil || err2 != nil || timeout < 0 {
		c.fail(errNotInteger)
		return
	}
	// Make this client's writes durable locally first, as WAIT implies.
	if c.dirty {
		if err := n.backend.Sync(); err != nil {
			n.replyErr(c, err)
			return
		}
		c.dirty = false
	}
	c.conn.WriteInt(n.backend.Wait(c.gone, replicas, time.Duration(timeout)*time.Millisecond))
}

// cmdReplicaOf: REPLICAOF host port [FORCE] | REPLICAOF NO ONE. FORCE
// follows even if that throws away more records this node applied than
// replication.max_discard allows.
func cmdReplicaOf(n *Node, c *client, args [][]byte) {
	host, port := string(args[1]), string(args[2])
	force := false
	switch {
	case len(args) == 4 && strings.EqualFold(string(args[3]), "force"):
		force = true
	case len(args) > 3:
		c.fail(errSyntax)
		return
	}
	if strings.EqualFold(host, "no") && strings.EqualFold(port, "one") {
		if force {
			c.fail(errSyntax)
			return
		}
		host, port = "", ""
	}
	if err := n.backend.ReplicaOf(host, port, force); err != nil {
		n.replyErr(c, err)
		return
	}
	c.conn.WriteString("OK")
}

// cmdAuth: AUTH [username] password, checked by access.go.
func cmdAuth(n *Node, c *client, args [][]byte) { n.cmdAuthUser(c, args) }

// cmdSelect: SELECT db, 0 to databases-1.
func cmdSelect(n *Node, c *client, args [][]byte) {
	db, err := strconv.Atoi(string(args[1]))
	if err != nil {
		c.fail(errNotInteger)
		return
	}
	if db < 0 || db >= n.databases() {
		c.fail(errDBIndex)
		return
	}
	c.ks.db = db
	c.conn.WriteString("OK")
}

func cmdQuit(n *Node, c *client, args [][]byte) {
	c.conn.WriteString("OK")
	c.quit = true
}

// redisVersion is what the node reports as redis_version, for clients that
// check features by version.
const redisVersion = "7.2.0"
