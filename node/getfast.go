package node

import (
	"errors"
	"fmt"

	"github.com/logkv/logkv"
)

// getFast is a read tx's get without the tx, for GET, the hottest read. The
// engine key is built in the client's buffer (a buffer on the stack escapes
// through the engine interface: 128 bytes a GET, 8% of its CPU in malloc and
// GC), and the value is read into another (c.vbuf) through
// logkv.AppendGet, so a hit allocates nothing on an engine that is a
// logkv.ValueAppender (every engine of this module; another falls back to
// its Get's copy).
//
// The value returned may be a slice of c.vbuf, which the client's next GET
// overwrites: the caller copies it out (the reply: WriteBulk copies it into
// the connection's output) before it reads again, and keeps nothing of it.
func (n *Node) getFast(c *client, key []byte) (value []byte, found bool, err error) {
	db := c.ks.db
	gen, err := n.gen(db)
	if err != nil {
		return nil, false, err
	}
	c.kbuf = appendDataKey(c.kbuf[:0], db, gen, key)
	v, err := logkv.AppendGet(n.eng(), c.vbuf[:0], c.kbuf)
	if cap(c.kbuf) > maxKeptKeyBuf {
		c.kbuf = nil // one huge key: do not keep its buffer
	}
	if cap(v) > maxKeptValueBuf {
		c.vbuf = nil // one big value: v stays valid, the client keeps no buffer
	} else {
		c.vbuf = v
	}
	switch {
	case errors.Is(err, logkv.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	payload, at, err := decodeValue(v)
	if err != nil {
		return nil, false, fmt.Errorf("key %q: %w", key, err)
	}
	if at != 0 && at <= n.nowMs() {
		if n.backend.IsFollower() {
			return nil, false, nil
		}
		payload, _, found, err = n.settleExpired(db, gen, key)
		return payload, found, err
	}
	return payload, true, nil
}

// maxKeptKeyBuf bounds the engine-key buffer a client keeps between
// commands, and maxKeptValueBuf its GET value buffer: a value bigger than
// that is read into a buffer the client drops after its reply (up to 10,000
// clients would otherwise each keep the biggest value they ever read).
const (
	maxKeptKeyBuf   = 4 << 10
	maxKeptValueBuf = 16 << 10
)

// maxPrefetchKeys bounds how many keys prefetchGets hands the engine for
// one pipeline: the lines a key's Get reads (keydir or tree nodes, record)
// must still be in the CPU's caches when its turn comes.
const maxPrefetchKeys = 64

// prefetchGets hints to the engine (logkv.Prefetcher) the keys of the GETs
// and MGETs at the head of c's buffered pipeline, buf, when there are at
// least two, so that the engine looks them up with their cache misses
// overlapped before the loop runs the commands one by one, and reports
// whether it did. It does nothing for a client in MULTI (its GETs only
// queue), before AUTH, for an engine without Prefetch, or while fewer than
// one in five of the client's recent GETs hit (hintGate). A hint changes
// no reply: a key that a SELECT, a write, a redirect or an expiry makes
// its GET read otherwise than hinted costs only the hint.
func (n *Node) prefetchGets(c *client, buf []byte) bool {
	if c.ks.multi != nil || !c.authed || !c.hint.open() {
		return false
	}
	p, ok := n.eng().(logkv.Prefetcher)
	if !ok {
		return false
	}
	if _, _, size := scanReadKeys(buf); size == 0 || size == len(buf) {
		return false // not a GET, or one alone: nothing to overlap
	}
	gen, err := n.gen(c.ks.db)
	if err != nil {
		return false
	}
	keys := pipelineKeys(c, buf, gen)
	hinted := len(keys) >= 2
	if hinted {
		p.Prefetch(keys)
	}
	clear(keys) // keep no slice of a key buffer dropped meanwhile
	return hinted
}

// hintGate decides whether prefetchGets hints a client's pipelines, by the
// hit ratio of the client's recent GETs: it hints unless fewer than one in
// five found their key (and always before it has seen hintMinGets).
//
// A hint walks each key's lookup ahead of its Get so that the keys' cache
// misses overlap, and the Get walks it again. Served, with the kernel's
// network stack and the client between pipelines, that pays on hits and
// about breaks even on misses in a full engine; where the lookups are
// cheap, it is only overhead. compare-redis-shaped runs (redis-benchmark
// -t get -P 16 -c 50, 400k GETs, kvnode's CPU time a GET, 3-4 rotating
// rounds, load 2-13): every GET a hit, the hint takes bitcask 2.275 ->
// 1.850 us, lsm 2.850 -> 2.475, memory 1.625 -> 1.525 (lower in 3 of 3
// rounds each); a third hit (the command), even or a little ahead;
// none hit in an engine of 333k other keys, about even on bitcask and
// memory, unresolved on lsm; none hit in an empty engine, it costs
// 0.075-0.19 us a GET (bitcask 1.000 -> 1.188, lsm 1.025 -> 1.100, memory
// 1.013 -> 1.088, medians). A first cut of the gate, shut below one hit in
// two, gave that back (1.025, 1.050, 1.013); this one's runs against the
// ungated build (medians 1.100/1.075/1.075 against 1.125/1.125/1.125, 3
// rounds, load 4.9-6.7) do not resolve a difference. In process, where the
// keys' lines stay in cache between pipelines, the hint pays on hits only
// for bitcask (BenchmarkPipelineGets): judge it served.
//
// The counts are the client's GETs (cmdGet's hits and misses; MGET's keys
// are not counted), noted at the end of each pipeline run on the loop, so
// they go on while the gate is shut, and halve when they pass hintWindow:
// the ratio follows the last 128-256 GETs, some 8-16 pipelines of 16. An
// INFO or CONFIG RESETSTAT inside a pipeline publishes and zeroes the
// counts before they are noted, and a pipeline that moves off the loop is
// not noted: those GETs are lost to the gate, which only decides a hint.
type hintGate struct {
	hits, gets uint32
}

const (
	// hintMinGets is how many GETs a client's gate sees before it may
	// shut.
	hintMinGets = 16
	// hintWindow is the count of GETs past which the gate's counts halve.
	hintWindow = 256
)

// open reports whether the client's next pipeline is hinted.
func (g *hintGate) open() bool {
	return g.gets < hintMinGets || 5*g.hits >= g.gets
}

// note adds a pipeline's GET hits and misses (a huge pipeline's scaled
// down to hintWindow GETs, its ratio kept).
func (g *hintGate) note(hits, misses int64) {
	gets := hits + misses
	if gets <= 0 || hits < 0 {
		return
	}
	if gets > hintWindow {
		hits, gets = hits*hintWindow/gets, hintWindow
	}
	g.hits += uint32(hits)
	g.gets += uint32(gets)
	for g.gets > hintWindow {
		g.hits /= 2
		g.gets /= 2
	}
}

// pipelineKeys returns the engine keys of the GETs and MGETs at the head
// of buf, built as getFast builds them (for c's database, at generation
// gen) in c.kbuf, which getFast overwrites afterwards, and kept in
// c.pfKeys. It reads only requests in the exact form a client library sends
// (a RESP array of bulk strings, GET or MGET in any case) and stops at the
// first other request, at an incomplete one or at maxPrefetchKeys keys.
func pipelineKeys(c *client, buf []byte, gen uint32) [][]byte {
	keys, kb := c.pfKeys[:0], c.kbuf[:0]
	for off := 0; len(keys) < maxPrefetchKeys; {
		first, count, size := scanReadKeys(buf[off:])
		if size == 0 {
			break
		}
		rest := buf[off+first : off+size]
		for range min(count, maxPrefetchKeys-len(keys)) {
			key, next := nextBulk(rest)
			rest = rest[next:]
			at := len(kb)
			kb = appendDataKey(kb, c.ks.db, gen, key)
			keys = append(keys, kb[at:len(kb):len(kb)])
		}
		off += size
	}
	c.pfKeys = keys
	if cap(kb) <= maxKeptKeyBuf {
		c.kbuf = kb[:0]
	}
	return keys
}

// scanReadKeys reads the request at the head of b if it is complete and in
// the form "*N\r\n$3\r\nGET\r\n" with N = 2, or "*N\r\n$4\r\nMGET\r\n"
// with N >= 2 (the name in any case), each key then "$len\r\nkey\r\n". It
// returns where the first key's bulk header starts, how many keys there
// are, and the request's size; size 0 for any other request, an incomplete
// one, or an MGET of more than maxPrefetchKeys keys: it is not hinted, and
// so not walked, which for a huge MGET arriving in pieces would be a walk
// of everything buffered at every read (0.5 s of the event loop for a
// 0.9 MB MGET in 1,460-byte segments).
func scanReadKeys(b []byte) (first, count, size int) {
	n, i := scanHeader(b, '*')
	if i == 0 || n < 2 || n-1 > maxPrefetchKeys {
		return 0, 0, 0
	}
	name, next := nextBulk(b[i:])
	if next == 0 {
		return 0, 0, 0
	}
	switch {
	case n == 2 && len(name) == 3 && name[0]|0x20 == 'g' && name[1]|0x20 == 'e' && name[2]|0x20 == 't':
	case len(name) == 4 && name[0]|0x20 == 'm' && name[1]|0x20 == 'g' && name[2]|0x20 == 'e' && name[3]|0x20 == 't':
	default:
		return 0, 0, 0
	}
	first = i + next
	off := first
	for range n - 1 {
		_, next := nextBulk(b[off:])
		if next == 0 {
			return 0, 0, 0
		}
		off += next
	}
	return first, n - 1, off
}

// nextBulk reads the complete bulk string "$len\r\nbytes\r\n" at the head
// of b, returning its bytes and its encoded size; size 0 if b does not
// start with a complete one.
func nextBulk(b []byte) (s []byte, size int) {
	l, i := scanHeader(b, '$')
	if i == 0 || l < 0 || len(b)-i < l+2 || b[i+l] != '\r' || b[i+l+1] != '\n' {
		return nil, 0
	}
	return b[i : i+l], i + l + 2
}

// scanHeader reads "<kind><decimal>\r\n" at the head of b, returning the
// number and the header's size; size 0 if b does not start with one (a
// number of up to 9 digits).
func scanHeader(b []byte, kind byte) (n, size int) {
	if len(b) < 4 || b[0] != kind {
		return 0, 0
	}
	for i := 1; i < len(b) && i <= 10; i++ {
		switch d := b[i]; {
		case d >= '0' && d <= '9':
			n = n*10 + int(d-'0')
		case d == '\r' && i > 1 && i+1 < len(b) && b[i+1] == '\n':
			return n, i + 2
		default:
			return 0, 0
		}
	}
	return 0, 0
}
