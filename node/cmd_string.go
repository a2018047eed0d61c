package node

import (
	"bytes"
	"fmt"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
)

// The string family beyond GET/SET/INCR (commands.go): APPEND STRLEN
// GETRANGE SUBSTR SETRANGE GETSET GETDEL INCRBYFLOAT MSETNX, the bit
// commands SETBIT GETBIT BITCOUNT BITPOS, and LCS, with Redis 7.0's replies,
// error texts and edge cases (negative ranges, huge offsets). Each runs as
// one keyspace tx (keyspace.go): a write reads and writes under its keys'
// locks and commits as one batch. A TTL is kept by APPEND, SETRANGE,
// SETBIT and INCRBYFLOAT and cleared by GETSET, as in Redis.
//
// Every command that grows a value checks the size it would reach against
// limits.max_value_size (CONFIG GET proto-max-bulk-len) before it
// allocates, so SETRANGE k 4294967295 x costs an error, not 4 GiB.

func init() {
	k1 := func(c *command) *command { c.first, c.last, c.step = 1, 1, 1; return c }
	for _, c := range []*command{
		k1(&command{name: "append", arity: 3, write: true, run: cmdAppend}),
		k1(&command{name: "strlen", arity: 2, run: cmdStrlen}),
		k1(&command{name: "getrange", arity: 4, run: cmdGetrange}),
		k1(&command{name: "substr", arity: 4, run: cmdGetrange}),
		k1(&command{name: "setrange", arity: 4, write: true, run: cmdSetrange}),
		k1(&command{name: "getset", arity: 3, write: true, run: cmdGetset}),
		k1(&command{name: "getdel", arity: 2, write: true, run: cmdGetdel}),
		k1(&command{name: "incrbyfloat", arity: 3, write: true, run: cmdIncrbyfloat}),
		{name: "msetnx", arity: -3, write: true, run: cmdMsetnx, first: 1, last: -1, step: 2},
		k1(&command{name: "setbit", arity: 4, write: true, run: cmdSetbit}),
		k1(&command{name: "getbit", arity: 3, run: cmdGetbit}),
		k1(&command{name: "bitcount", arity: -2, run: cmdBitcount}),
		k1(&command{name: "bitpos", arity: -3, run: cmdBitpos}),
		{name: "lcs", arity: -3, run: cmdLCS, first: 1, last: 2, step: 1},
	} {
		register(c)
	}
}

const (
	errStringTooLong = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
	errBitOffset     = "ERR bit offset is not an integer or out of range"
	errBitValue      = "ERR bit is not an integer or out of range"
	errNotFloat      = "ERR value is not a valid float"
)

// fits reports whether a value of size bytes is allowed, and fails the
// command if not.
func (n *Node) fits(c *client, size int64) bool {
	if size > int64(n.cfg.Limits.MaxValueSize) {
		c.fail(errStringTooLong)
		return false
	}
	return true
}

// cmdAppend: APPEND key value, the new length. The TTL stays.
func cmdAppend(n *Node, c *client, args [][]byte) {
	key := args[1]
	t, v, at, _, ok := n.modify(c, args[1:2])
	if !ok {
		return
	}
	defer t.close()
	if !n.fits(c, int64(len(v))+int64(len(args[2]))) {
		return
	}
	nv := make([]byte, 0, len(v)+len(args[2]))
	nv = append(append(nv, v...), args[2]...)
	t.set(key, nv, at)
	if t.commit() {
		c.conn.WriteInt(len(nv))
	}
}

// cmdStrlen: STRLEN key, 0 for a missing key.
func cmdStrlen(n *Node, c *client, args [][]byte) {
	t := n.read(c)
	defer t.close()
	v, _, _, err := t.get(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	c.conn.WriteInt(len(v))
}

// parseInt64 parses a Redis integer argument, failing the command with
// Redis' error if it is not one.
func parseInt64(c *client, a []byte) (int64, bool) {
	v, ok := redisInt(a)
	if !ok {
		c.fail(errNotInteger)
	}
	return v, ok
}

// redisInt parses s as Redis' string2ll does: an optional minus sign and
// decimal digits without leading zeros ("0" alone is fine), in int64 range.
// It is stricter than strconv.ParseInt, which takes "+5" and "007".
func redisInt(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	if len(s) == 1 && s[0] == '0' {
		return 0, true
	}
	digits := s
	if s[0] == '-' {
		digits = s[1:]
	}
	if len(digits) == 0 || digits[0] < '1' || digits[0] > '9' {
		return 0, false
	}
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	return v, err == nil
}

// cmdGetrange: GETRANGE key start end (and SUBSTR): the bytes from start to
// end inclusive, negative positions counting from the end.
func cmdGetrange(n *Node, c *client, args [][]byte) {
	start, ok := parseInt64(c, args[2])
	if !ok {
		return
	}
	end, ok := parseInt64(c, args[3])
	if !ok {
		return
	}
	t := n.read(c)
	defer t.close()
	v, _, _, err := t.get(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	lo, hi, ok := byteRange(start, end, int64(len(v)))
	if !ok {
		c.conn.WriteBulk(nil)
		return
	}
	c.conn.WriteBulk(v[lo : hi+1])
}

// byteRange turns Redis' inclusive start and end (negative: from the end)
// over a string of length size into a valid range, or reports it empty.
func byteRange(start, end, size int64) (lo, hi int64, ok bool) {
	if start < 0 && end < 0 && start > end {
		return 0, 0, false
	}
	if start < 0 {
		start += size
	}
	if end < 0 {
		end += size
	}
	start, end = max(start, 0), max(end, 0)
	end = min(end, size-1)
	if start > end || size == 0 {
		return 0, 0, false
	}
	return start, end, true
}

// cmdSetrange: SETRANGE key offset value overwrites from offset, padding
// with zero bytes; the new length. The TTL stays.
func cmdSetrange(n *Node, c *client, args [][]byte) {
	key, val := args[1], args[3]
	off, ok := parseInt64(c, args[2])
	if !ok {
		return
	}
	if off < 0 {
		c.fail("ERR offset is out of range")
		return
	}
	t, v, at, _, ok := n.modify(c, args[1:2])
	if !ok {
		return
	}
	defer t.close()
	if len(val) == 0 {
		// Nothing to write: a missing key stays missing.
		c.conn.WriteInt(len(v))
		return
	}
	// Checked before allocating; off is at most 2^63-1 and the limit and
	// len(val) are small, so the sum cannot overflow once off is bounded.
	if off > int64(n.cfg.Limits.MaxValueSize) || !n.fits(c, off+int64(len(val))) {
		if off > int64(n.cfg.Limits.MaxValueSize) {
			c.fail(errStringTooLong)
		}
		return
	}
	size := max(int64(len(v)), off+int64(len(val)))
	nv := make([]byte, size)
	copy(nv, v)
	copy(nv[off:], val)
	t.set(key, nv, at)
	if t.commit() {
		c.conn.WriteInt(len(nv))
	}
}

// cmdGetset: GETSET key value, the old value; the TTL is cleared.
func cmdGetset(n *Node, c *client, args [][]byte) {
	key := args[1]
	if !n.checkKey(c, key) || !n.checkValue(c, args[2]) {
		return
	}
	t := n.begin(c, args[1:2])
	defer t.close()
	old, _, found, err := t.get(key)
	if err != nil {
		n.replyErr(c, err)
		return
	}
	old = bytes.Clone(old)
	t.set(key, args[2], 0)
	if !t.commit() {
		return
	}
	if found {
		c.conn.WriteBulk(old)
	} else {
		c.conn.WriteNull()
	}
}

// cmdGetdel: GETDEL key, the value, deleting the key.
func cmdGetdel(n *Node, c *client, args [][]byte) {
	t := n.begin(c, args[1:2])
	defer t.close()
	v, _, found, err := t.get(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if !found {
		c.conn.WriteNull()
		return
	}
	v = bytes.Clone(v)
	if _, err := t.del(args[1]); err != nil {
		n.replyErr(c, err)
		return
	}
	if t.commit() {
		c.conn.WriteBulk(v)
	}
}

// Long doubles. Redis keeps INCRBYFLOAT's arithmetic in C's long double,
// the x87 80-bit format on amd64: a 64-bit significand and a 15-bit
// exponent. Go has no such type, so the values are big.Floats of 64 bits of
// precision, rounded to nearest even as the FPU does, with the format's
// exponent range checked by hand. Results then print as Redis prints them
// (%.17Lf, trailing zeros cut): 10.5 + 0.1 is "10.6" here too, where a
// float64 would give 10.59999999999999964.
const (
	ldPrec   = 64
	ldMaxExp = 16384  // |x| < 2^16384: finite
	ldMinExp = -16444 // smallest subnormal 2^-16445: below, zero
)

// parseLongDouble parses s as Redis' string2ld does (strtold, the whole
// string, no leading space, no NaN, no overflow or underflow to zero).
func parseLongDouble(s []byte) (*big.Float, bool) {
	if len(s) == 0 || len(s) >= 5*1024 {
		return nil, false
	}
	str := string(s)
	body := strings.TrimLeft(str, "+-")
	if len(str)-len(body) > 1 {
		return nil, false
	}
	neg := strings.HasPrefix(str, "-")
	switch strings.ToLower(body) {
	case "inf", "infinity":
		f := new(big.Float).SetInf(neg)
		return f, true
	}
	lower := strings.ToLower(body)
	// strtold knows decimal and hex (0x) forms only; big.Float's Parse
	// also takes 0b, 0o and underscores, which strtold refuses.
	if strings.ContainsRune(body, '_') || strings.HasPrefix(lower, "0b") || strings.HasPrefix(lower, "0o") ||
		body == "" || !(body[0] >= '0' && body[0] <= '9' || body[0] == '.') {
		return nil, false
	}
	if strings.HasPrefix(lower, "0x") && !strings.ContainsAny(lower, "p") {
		lower += "p0" // strtold takes a hex float without an exponent
		str = str[:len(str)-len(body)] + lower
	}
	f, _, err := new(big.Float).SetPrec(ldPrec).SetMode(big.ToNearestEven).Parse(str, 0)
	if err != nil {
		return nil, false
	}
	if exp := f.MantExp(nil); f.Sign() != 0 && (exp > ldMaxExp || exp < ldMinExp) {
		return nil, false // strtold's ERANGE: HUGE_VAL or zero
	}
	return f, true
}

// formatLongDouble formats f as Redis' ld2string(LD_STR_HUMAN) does.
func formatLongDouble(f *big.Float) string {
	s := f.Text('f', 17)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// cmdIncrbyfloat: INCRBYFLOAT key increment, in long double arithmetic as
// Redis; the TTL stays.
func cmdIncrbyfloat(n *Node, c *client, args [][]byte) {
	key := args[1]
	t, v, at, found, ok := n.modify(c, args[1:2])
	if !ok {
		return
	}
	defer t.close()
	cur := new(big.Float).SetPrec(ldPrec)
	if found {
		x, ok := parseLongDouble(v)
		if !ok {
			c.fail(errNotFloat)
			return
		}
		cur = x
	}
	incr, ok := parseLongDouble(args[2])
	if !ok {
		c.fail(errNotFloat)
		return
	}
	if cur.IsInf() || incr.IsInf() {
		c.fail("ERR increment would produce NaN or Infinity")
		return
	}
	sum := new(big.Float).SetPrec(ldPrec).SetMode(big.ToNearestEven).Add(cur, incr)
	if sum.Sign() != 0 && sum.MantExp(nil) > ldMaxExp {
		c.fail("ERR increment would produce NaN or Infinity")
		return
	}
	out := []byte(formatLongDouble(sum))
	if !n.fits(c, int64(len(out))) {
		return
	}
	t.set(key, out, at)
	if t.commit() {
		c.conn.WriteBulk(out)
	}
}

// cmdMsetnx: MSETNX key value [key value ...] sets every pair if none of
// the keys exists: 1, or 0 and nothing written.
func cmdMsetnx(n *Node, c *client, args [][]byte) {
	if len(args)%2 != 1 {
		c.fail(wrongArity("msetnx"))
		return
	}
	keys := make([][]byte, 0, len(args)/2)
	for i := 1; i < len(args); i += 2 {
		if !n.checkKey(c, args[i]) || !n.checkValue(c, args[i+1]) {
			return
		}
		keys = append(keys, args[i])
	}
	t := n.begin(c, keys)
	defer t.close()
	for _, k := range keys {
		found, err := t.exists(k)
		if err != nil {
			n.replyErr(c, err)
			return
		}
		if found {
			c.conn.WriteInt(0)
			return
		}
	}
	for i := 1; i < len(args); i += 2 {
		t.set(args[i], args[i+1], 0)
	}
	if t.commit() {
		c.conn.WriteInt(1)
	}
}

// parseBitOffset parses a bit offset: a non-negative integer whose byte
// lies within limits.max_value_size.
func (n *Node) parseBitOffset(c *client, a []byte) (int64, bool) {
	off, ok := redisInt(a)
	if !ok || off < 0 || off>>3 >= int64(n.cfg.Limits.MaxValueSize) {
		c.fail(errBitOffset)
		return 0, false
	}
	return off, true
}

// cmdSetbit: SETBIT key offset 0|1, the bit's old value. Bit 0 is the most
// significant bit of the first byte. The TTL stays.
func cmdSetbit(n *Node, c *client, args [][]byte) {
	key := args[1]
	off, ok := n.parseBitOffset(c, args[2])
	if !ok {
		return
	}
	on, ok := redisInt(args[3])
	if !ok || on&^1 != 0 {
		c.fail(errBitValue)
		return
	}
	t, v, at, _, ok := n.modify(c, args[1:2])
	if !ok {
		return
	}
	defer t.close()
	byteAt := off >> 3
	size := max(int64(len(v)), byteAt+1) // byteAt < max_value_size: checked
	nv := make([]byte, size)
	copy(nv, v)
	mask := byte(1) << (7 - off&7)
	old := 0
	if nv[byteAt]&mask != 0 {
		old = 1
	}
	if on == 1 {
		nv[byteAt] |= mask
	} else {
		nv[byteAt] &^= mask
	}
	t.set(key, nv, at)
	if t.commit() {
		c.conn.WriteInt(old)
	}
}

// cmdGetbit: GETBIT key offset, 0 past the end or for a missing key.
func cmdGetbit(n *Node, c *client, args [][]byte) {
	off, ok := n.parseBitOffset(c, args[2])
	if !ok {
		return
	}
	t := n.read(c)
	defer t.close()
	v, _, _, err := t.get(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	bit := 0
	if b := off >> 3; b < int64(len(v)) && v[b]&(1<<(7-off&7)) != 0 {
		bit = 1
	}
	c.conn.WriteInt(bit)
}

// bitRange turns a BITCOUNT/BITPOS range into inclusive bit positions over
// v: start and end in bytes, or in bits with isBit.
func bitRange(start, end int64, isBit bool, size int64) (lo, hi int64) {
	total := size
	if isBit {
		total = size * 8
	}
	if start < 0 {
		start += total
	}
	if end < 0 {
		end += total
	}
	start, end = max(start, 0), max(end, 0)
	end = min(end, total-1)
	if start > end {
		return 0, -1 // empty; and start*8 could overflow
	}
	if !isBit {
		return start * 8, end*8 + 7
	}
	return start, end
}

// parseBitUnit parses BITCOUNT's and BITPOS's BYTE|BIT.
func parseBitUnit(c *client, a []byte) (isBit, ok bool) {
	switch strings.ToLower(string(a)) {
	case "bit":
		return true, true
	case "byte":
		return false, true
	}
	c.fail(errSyntax)
	return false, false
}

// cmdBitcount: BITCOUNT key [start end [BYTE|BIT]], the set bits.
func cmdBitcount(n *Node, c *client, args [][]byte) {
	t := n.read(c)
	defer t.close()
	v, _, found, err := t.get(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if !found {
		c.conn.WriteInt(0) // Redis looks the key up before the arguments
		return
	}
	lo, hi := int64(0), int64(len(v))*8-1
	switch len(args) {
	case 2:
	case 4, 5:
		start, ok := parseInt64(c, args[2])
		if !ok {
			return
		}
		end, ok := parseInt64(c, args[3])
		if !ok {
			return
		}
		if start < 0 && end < 0 && start > end {
			c.conn.WriteInt(0) // before BYTE|BIT is looked at, as in Redis
			return
		}
		isBit := false
		if len(args) == 5 {
			if isBit, ok = parseBitUnit(c, args[4]); !ok {
				return
			}
		}
		lo, hi = bitRange(start, end, isBit, int64(len(v)))
	default:
		c.fail(errSyntax)
		return
	}
	count := 0
	for i := lo; i <= hi; {
		if i&7 == 0 && i+7 <= hi {
			count += bits.OnesCount8(v[i>>3])
			i += 8
			continue
		}
		if v[i>>3]&(1<<(7-i&7)) != 0 {
			count++
		}
		i++
	}
	c.conn.WriteInt(count)
}

// cmdBitpos: BITPOS key bit [start [end [BYTE|BIT]]], the first bit set to
// bit in the range, or -1. A missing key is all zero bits; without an end,
// a clear bit is found right after the string's last byte, as in Redis.
func cmdBitpos(n *Node, c *client, args [][]byte) {
	want, ok := parseInt64(c, args[2])
	if !ok {
		return
	}
	if want != 0 && want != 1 {
		c.fail("ERR The bit argument must be 1 or 0.")
		return
	}
	t := n.read(c)
	defer t.close()
	v, _, found, err := t.get(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if !found {
		c.conn.WriteInt64(map[bool]int64{true: -1, false: 0}[want == 1])
		return
	}
	size := int64(len(v))
	lo, hi := int64(0), size*8-1
	endGiven := false
	switch len(args) {
	case 3:
	case 4, 5, 6:
		start, ok := parseInt64(c, args[3])
		if !ok {
			return
		}
		isBit := false
		if len(args) == 6 {
			if isBit, ok = parseBitUnit(c, args[5]); !ok {
				return
			}
		}
		end := size - 1
		if isBit {
			end = size*8 - 1
		}
		if len(args) >= 5 {
			if end, ok = parseInt64(c, args[4]); !ok {
				return
			}
			endGiven = true
		}
		lo, hi = bitRange(start, end, isBit, size)
	default:
		c.fail(errSyntax)
		return
	}
	if lo > hi {
		c.conn.WriteInt(-1)
		return
	}
	for i := lo; i <= hi; {
		b := v[i>>3]
		if i&7 == 0 && i+7 <= hi && ((want == 1 && b == 0) || (want == 0 && b == 0xff)) {
			i += 8 // a whole byte without the bit
			continue
		}
		if int64(b>>(7-i&7))&1 == want {
			c.conn.WriteInt64(i)
			return
		}
		i++
	}
	if want == 0 && !endGiven {
		c.conn.WriteInt64((hi/8 + 1) * 8) // the zero padding right after
		return
	}
	c.conn.WriteInt(-1)
}

// maxLCSCells bounds LCS's table (4 bytes a cell): 64 MiB of transient
// memory, where Redis allows whatever malloc gives.
const maxLCSCells = 16 << 20

// cmdLCS: LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN].
func cmdLCS(n *Node, c *client, args [][]byte) {
	var getLen, getIdx, withLen bool
	minLen := int64(0)
	for i := 3; i < len(args); i++ {
		switch opt := strings.ToLower(string(args[i])); {
		case opt == "idx":
			getIdx = true
		case opt == "len":
			getLen = true
		case opt == "withmatchlen":
			withLen = true
		case opt == "minmatchlen" && i+1 < len(args):
			v, ok := parseInt64(c, args[i+1])
			if !ok {
				return
			}
			minLen = max(v, 0)
			i++
		default:
			c.fail(errSyntax)
			return
		}
	}
	t, err := n.readSnapshot(c)
	if err != nil {
		n.replyErr(c, err)
		return
	}
	defer t.close()
	a, _, _, err := t.get(args[1])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	b, _, _, err := t.get(args[2])
	if err != nil {
		n.replyErr(c, err)
		return
	}
	if getIdx && getLen {
		c.fail("ERR If you want both the length and indexes, please just use IDX.")
		return
	}
	cells := (int64(len(a)) + 1) * (int64(len(b)) + 1)
	if cells > maxLCSCells {
		c.fail(fmt.Sprintf("ERR LCS of strings of %d and %d bytes needs %d MiB of memory, more than logkv's %d MiB: compare shorter strings", len(a), len(b), cells*4>>20, maxLCSCells*4>>20))
		return
	}
	lcs := lcsMatches(a, b)
	switch {
	case getLen:
		c.conn.WriteInt(len(lcs.common))
	case getIdx:
		var keep []lcsMatch
		for _, m := range lcs.matches {
			if minLen == 0 || int64(m.aEnd-m.aStart+1) >= minLen {
				keep = append(keep, m)
			}
		}
		c.conn.WriteMap(2)
		c.conn.WriteBulkString("matches")
		c.conn.WriteArray(len(keep))
		for _, m := range keep {
			if withLen {
				c.conn.WriteArray(3)
			} else {
				c.conn.WriteArray(2)
			}
			c.conn.WriteArray(2)
			c.conn.WriteInt(m.aStart)
			c.conn.WriteInt(m.aEnd)
			c.conn.WriteArray(2)
			c.conn.WriteInt(m.bStart)
			c.conn.WriteInt(m.bEnd)
			if withLen {
				c.conn.WriteInt(m.aEnd - m.aStart + 1)
			}
		}
		c.conn.WriteBulkString("len")
		c.conn.WriteInt(len(lcs.common))
	default:
		c.conn.WriteBulk(lcs.common)
	}
}

// lcsMatch is one run of the LCS: a[aStart..aEnd] == b[bStart..bEnd].
type lcsMatch struct{ aStart, aEnd, bStart, bEnd int }

type lcsResult struct {
	common  []byte
	matches []lcsMatch // from the end of the strings, as Redis lists them
}

// lcsMatches computes the longest common subsequence of a and b with the
// classic table, then walks it back from the ends as Redis does, so ties
// resolve the same way and the runs come out in Redis' order.
func lcsMatches(a, b []byte) lcsResult {
	w := len(b) + 1
	dp := make([]uint32, (len(a)+1)*w)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				dp[i*w+j] = dp[(i-1)*w+j-1] + 1
			} else {
				dp[i*w+j] = max(dp[(i-1)*w+j], dp[i*w+j-1])
			}
		}
	}
	k := int(dp[len(a)*w+len(b)])
	res := lcsResult{common: make([]byte, k)}
	open := false
	var cur lcsMatch
	for i, j := len(a), len(b); i > 0 && j > 0; {
		emit := false
		if a[i-1] == b[j-1] {
			res.common[k-1] = a[i-1]
			switch {
			case !open:
				cur, open = lcsMatch{i - 1, i - 1, j - 1, j - 1}, true
			case cur.aStart == i && cur.bStart == j:
				cur.aStart--
				cur.bStart--
			default:
				emit = true
			}
			if cur.aStart == 0 || cur.bStart == 0 {
				emit = true
			}
			k, i, j = k-1, i-1, j-1
		} else {
			if dp[(i-1)*w+j] > dp[i*w+j-1] {
				i--
			} else {
				j--
			}
			emit = open
		}
		if emit && open {
			res.matches = append(res.matches, cur)
			open = false
		}
	}
	return res
}
