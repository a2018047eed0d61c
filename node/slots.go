package node

// Hash slots, as Redis Cluster defines them, and the slot map: which shard
// (replica group) owns which of the 16384 slots. docs/cluster.md, section
// "Slots", is the design: where the map lives in etcd, how it changes, how
// commands are routed by it and how a slot moves.
//
// The map is built here, written by kvnode cluster init (cli_shards.go),
// read by CLUSTER commands, and the command path routes by it (route.go).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// numSlots is the number of hash slots, Redis Cluster's 16384: a key's slot
// is CRC16(key) mod numSlots.
const numSlots = 16384

// crc16Table is CRC-16/XMODEM's table (polynomial 0x1021, initial value 0,
// no reflection, no final xor), the CRC Redis Cluster hashes keys with
// (Redis' crc16.c). Computed at start rather than written out, so that it
// is visibly that polynomial; TestKeySlotRedis checks the result against
// redis-server.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc16Slice8 extends crc16Table for slicing by 8: crc16Slice8[k][b] is
// the CRC of byte b followed by k zero bytes (row 0 is crc16Table), so
// eight bytes fold into the CRC with eight independent table loads instead
// of a chain of eight (Intel's slicing-by-8, for a CRC that is not
// reflected). 4 KiB; a 16-byte key's slot costs two steps instead of 16.
var crc16Slice8 = func() (t [8][256]uint16) {
	t[0] = crc16Table
	for k := 1; k < 8; k++ {
		for b := range 256 {
			c := t[k-1][b]
			t[k][b] = c<<8 ^ crc16Table[byte(c>>8)]
		}
	}
	return t
}()

// crc16 is CRC-16/XMODEM of b.
func crc16(b []byte) uint16 {
	var c uint16
	for len(b) >= 8 {
		// The CRC's two bytes meet the block's first two; the rest enter
		// as they are, each shifted past the bytes after it by its row.
		c = crc16Slice8[7][b[0]^byte(c>>8)] ^ crc16Slice8[6][b[1]^byte(c)] ^
			crc16Slice8[5][b[2]] ^ crc16Slice8[4][b[3]] ^
			crc16Slice8[3][b[4]] ^ crc16Slice8[2][b[5]] ^
			crc16Slice8[1][b[6]] ^ crc16Slice8[0][b[7]]
		b = b[8:]
	}
	for _, x := range b {
		c = c<<8 ^ crc16Table[byte(c>>8)^x]
	}
	return c
}

// keySlot is the hash slot of key, as Redis Cluster's keyHashSlot: when the
// key holds a '{' followed, later, by a '}' with at least one byte between
// them, only the bytes between the first '{' and the first '}' after it
// (the hash tag) are hashed, so that keys sharing a tag share a slot. An
// empty tag ("{}") or an unclosed '{' hashes the whole key. It does not
// allocate.
func keySlot(key []byte) uint16 {
	if s := bytes.IndexByte(key, '{'); s >= 0 {
		if e := bytes.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return crc16(key) & (numSlots - 1)
}

// The slot map's limits, checked before a map is trusted: a map read from
// etcd is input like any other.
const (
	// maxSlotMapSize bounds an encoded map. A map of maxShards shards
	// with every slot a range of its own is about 300 KiB.
	maxSlotMapSize = 1 << 20
	// maxShards bounds the shards a map names: a shard index is a uint16
	// in slotTable, and a thousand replica groups is far past what one
	// etcd serves (docs/cluster.md, "Cost on etcd").
	maxShards = 1024
	// maxShardName bounds a shard's name, as coord's key layout holds it.
	maxShardName = 128
	// slotMapFormat is the map's "v" field.
	slotMapFormat = 1
)

// slotRange is slots First..Last, inclusive, owned by shard index Shard of
// the map's Shards.
type slotRange struct {
	First, Last uint16
	Shard       uint16
}

// slotMove is a move of slots First..Last from shard index From to shard
// index To, in progress (docs/cluster.md, "Moving a slot"). Until the map's
// Ranges change, From owns the slots.
type slotMove struct {
	First, Last uint16
	From, To    uint16
	// State is moveCopying or moveSwitching.
	State string
}

// The states of a slotMove.
const (
	// moveCopying: the target copies the range and follows its tail; the
	// source serves the slots.
	moveCopying = "copying"
	// moveSwitching: the source refuses the slots' writes (TRYAGAIN) until
	// the target has applied the tail and the map flips.
	moveSwitching = "switching"
)

// slotMap is the slot map: every one of the numSlots slots is owned by
// exactly one shard. It lives in etcd at slotsKey, JSON encoded:
//
//		{"v":1,"shards":["a","b","c"],
//		 "ranges":[[0,5460,0],[5461,10922,1],[10923,16383,2]],
//		 "moves":[{"first":5461,"last":5470,"from":1,"to":0,"state":"copying"}]}
//
//	  - v: the format, 1.
//	  - shards: the shards' names, each 1 to maxShardName bytes of printable
//	    ASCII without '/' (a shard is a path element of coord's keys), no
//	    name twice; a range names a shard by its index in this list.
//	  - ranges: [first, last, shard index] triples, first <= last, sorted,
//	    covering 0..16383 with neither gap nor overlap. Adjacent ranges may
//	    have the same owner (a map is not required to be minimal).
//	  - moves: the moves in progress, absent when none; each within one
//	    range of its From shard, To another shard, no slot in two moves.
//
// The map's version is the etcd key's ModRevision: every change is a
// transaction on it (compare ModRevision, then put), so two operators can
// never both change the map from the same version, and nodes tell a newer
// map from an older one by the revision alone.
type slotMap struct {
	Version int64 // ModRevision of slotsKey; not encoded
	Shards  []string
	Ranges  []slotRange
	Moves   []slotMove
}

// slotsKey is the slot map's etcd key for cluster name (docs/cluster.md,
// "Keys"; coord's layout puts every key of a cluster under /logkv/NAME/).
func slotsKey(cluster string) string { return "/logkv/" + cluster + "/slots" }

// evenSlotMap spreads the slots over shards in contiguous ranges of sizes
// differing by at most one, as redis-cli --cluster create does (so three
// shards get 0-5460, 5461-10922 and 10923-16383, the ranges Redis users
// know).
func evenSlotMap(shards []string) (*slotMap, error) {
	m := &slotMap{Shards: append([]string(nil), shards...)}
	if len(shards) == 0 {
		return nil, errors.New("node: a slot map needs at least one shard")
	}
	if len(shards) > numSlots {
		return nil, fmt.Errorf("node: %d shards cannot each own one of %d slots", len(shards), numSlots)
	}
	// redis-cli's arithmetic (clusterManagerCommandCreate): a float
	// cursor, each range's end rounded to the nearest slot.
	per := float64(numSlots) / float64(len(shards))
	cursor, first := 0.0, 0
	for i := range shards {
		last := int(cursor + per - 1 + 0.5)
		if last > numSlots-1 || i == len(shards)-1 {
			last = numSlots - 1
		}
		m.Ranges = append(m.Ranges, slotRange{First: uint16(first), Last: uint16(last), Shard: uint16(i)})
		cursor += per
		first = last + 1
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// slotMapJSON is slotMap's encoding.
type slotMapJSON struct {
	V      int            `json:"v"`
	Shards []string       `json:"shards"`
	Ranges [][3]uint16    `json:"ranges"`
	Moves  []slotMoveJSON `json:"moves,omitempty"`
}

type slotMoveJSON struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
	From  uint16 `json:"from"`
	To    uint16 `json:"to"`
	State string `json:"state"`
}

// encode returns m's encoding, or an error if m is not a valid map.
func (m *slotMap) encode() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	j := slotMapJSON{V: slotMapFormat, Shards: m.Shards, Ranges: make([][3]uint16, len(m.Ranges))}
	for i, r := range m.Ranges {
		j.Ranges[i] = [3]uint16{r.First, r.Last, r.Shard}
	}
	for _, mv := range m.Moves {
		j.Moves = append(j.Moves, slotMoveJSON(mv))
	}
	return json.Marshal(j)
}

// decodeSlotMap decodes and validates a map read from etcd at version (the
// key's ModRevision). A map that fails is never partly used: the caller
// keeps the map it had and says which key to fix.
func decodeSlotMap(b []byte, version int64) (*slotMap, error) {
	if len(b) > maxSlotMapSize {
		return nil, fmt.Errorf("node: slot map of %d bytes is over the limit of %d: rewrite it with kvnode cluster", len(b), maxSlotMapSize)
	}
	var j slotMapJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return nil, fmt.Errorf("node: slot map: %w", err)
	}
	if d.More() {
		return nil, errors.New("node: slot map: data after the JSON object")
	}
	if j.V != slotMapFormat {
		return nil, fmt.Errorf("node: slot map format %d, want %d: this kvnode is older than the map's writer; upgrade it", j.V, slotMapFormat)
	}
	m := &slotMap{Version: version, Shards: j.Shards, Ranges: make([]slotRange, len(j.Ranges))}
	for i, r := range j.Ranges {
		m.Ranges[i] = slotRange{First: r[0], Last: r[1], Shard: r[2]}
	}
	for _, mv := range j.Moves {
		m.Moves = append(m.Moves, slotMove(mv))
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// validate checks every rule of slotMap's doc.
func (m *slotMap) validate() error {
	if len(m.Shards) == 0 || len(m.Shards) > maxShards {
		return fmt.Errorf("node: slot map names %d shards, want 1 to %d", len(m.Shards), maxShards)
	}
	seen := make(map[string]bool, len(m.Shards))
	for _, s := range m.Shards {
		if err := validShardName(s); err != nil {
			return err
		}
		if seen[s] {
			return fmt.Errorf("node: slot map names shard %q twice", s)
		}
		seen[s] = true
	}
	next := 0 // the first slot not yet covered
	for _, r := range m.Ranges {
		if int(r.First) != next || r.Last < r.First || int(r.Shard) >= len(m.Shards) {
			return fmt.Errorf("node: slot map range %d-%d (shard index %d): ranges must be sorted, cover every slot once from 0 and name one of %d shards", r.First, r.Last, r.Shard, len(m.Shards))
		}
		next = int(r.Last) + 1
		if next > numSlots {
			return fmt.Errorf("node: slot map range %d-%d goes past slot %d", r.First, r.Last, numSlots-1)
		}
	}
	if next != numSlots {
		return fmt.Errorf("node: slot map leaves slots %d-%d unowned", next, numSlots-1)
	}
	if len(m.Moves) > numSlots {
		return fmt.Errorf("node: slot map has %d moves, more than slots", len(m.Moves))
	}
	var moving [numSlots / 8]byte
	for _, mv := range m.Moves {
		if mv.Last < mv.First || mv.Last >= numSlots || int(mv.From) >= len(m.Shards) || int(mv.To) >= len(m.Shards) || mv.From == mv.To {
			return fmt.Errorf("node: slot map move of %d-%d from shard index %d to %d is malformed", mv.First, mv.Last, mv.From, mv.To)
		}
		if mv.State != moveCopying && mv.State != moveSwitching {
			return fmt.Errorf("node: slot map move of %d-%d has unknown state %q", mv.First, mv.Last, mv.State)
		}
		if r := m.rangeOf(mv.First); r.Shard != mv.From || r.Last < mv.Last {
			return fmt.Errorf("node: slot map move of %d-%d: shard index %d does not own all of it", mv.First, mv.Last, mv.From)
		}
		for s := int(mv.First); s <= int(mv.Last); s++ {
			if moving[s/8]&(1<<(s%8)) != 0 {
				return fmt.Errorf("node: slot map moves slot %d twice", s)
			}
			moving[s/8] |= 1 << (s % 8)
		}
	}
	return nil
}

// rangeOf returns the range that holds slot s of a valid map.
func (m *slotMap) rangeOf(s uint16) slotRange {
	lo, hi := 0, len(m.Ranges)
	for lo < hi {
		mid := (lo + hi) / 2
		if m.Ranges[mid].Last < s {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return m.Ranges[lo]
}

// validShardName reports whether s may name a shard.
func validShardName(s string) error {
	if s == "" || len(s) > maxShardName || strings.Contains(s, "/") {
		return fmt.Errorf("node: shard name %q: want 1 to %d bytes without '/'", s, maxShardName)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("node: shard name %q: want printable ASCII without spaces", s)
		}
	}
	return nil
}

// slotTable is a valid map flattened for the command path: the owner's
// shard index of each slot, one load per key, and each shard's leader. A
// member holds it in router's atomic.Pointer and swaps in a new one when
// the map or a leader changes, so a command reads one consistent table
// without a lock (route.go).
type slotTable struct {
	version int64
	owner   [numSlots]uint16
	shards  []string
	// leaders is each shard's leader's RESP address, "" while it has
	// none; self is this member's shard index, -1 if the map does not
	// name its shard (it then owns no slot); selfAddr is its own RESP
	// address.
	leaders  []string
	self     int
	selfAddr string
	// moves are the map's moves; moving has the bit of each of their
	// slots set (nil without moves), so the command path looks at moves
	// only for a slot that is moving.
	moves  []slotMove
	moving *[numSlots / 8]byte
	// sole is the index of the shard that owns every slot when one does
	// and no move runs, -1 otherwise: on that shard's members a write's
	// ownership check (checkOwned) is one compare, and a one-key command
	// is routed without its slot (route).
	sole int
}

// table flattens a valid map.
func (m *slotMap) table() *slotTable {
	t := &slotTable{version: m.Version, shards: m.Shards, moves: m.Moves, sole: -1}
	for _, r := range m.Ranges {
		for s := int(r.First); s <= int(r.Last); s++ {
			t.owner[s] = r.Shard
		}
	}
	if len(m.Moves) == 0 {
		// By the owners, not the ranges: a map may give one shard every
		// slot in several ranges (moves back and forth leave it so).
		t.sole = int(t.owner[0])
		for _, o := range t.owner {
			if int(o) != t.sole {
				t.sole = -1
				break
			}
		}
	}
	if len(m.Moves) > 0 {
		t.moving = new([numSlots / 8]byte)
		for _, mv := range m.Moves {
			for s := int(mv.First); s <= int(mv.Last); s++ {
				t.moving[s/8] |= 1 << (s % 8)
			}
		}
	}
	return t
}

// holdsNothing reports whether t gives this member's shard no slot and no
// move into it.
func (t *slotTable) holdsNothing() bool {
	for _, o := range t.owner {
		if int(o) == t.self {
			return false
		}
	}
	for _, mv := range t.moves {
		if int(mv.To) == t.self {
			return false
		}
	}
	return true
}

// importing reports whether slot s is in a move into this member's shard.
func (t *slotTable) importing(s uint16) bool {
	if t.moving == nil || t.moving[s/8]&(1<<(s%8)) == 0 {
		return false
	}
	for _, mv := range t.moves {
		if s >= mv.First && s <= mv.Last && int(mv.To) == t.self {
			return true
		}
	}
	return false
}

// move returns the table's move of exactly first..last.
func (t *slotTable) move(first, last uint16) (slotMove, bool) {
	for _, mv := range t.moves {
		if mv.First == first && mv.Last == last {
			return mv, true
		}
	}
	return slotMove{}, false
}

// errMoveSwitching answers a command on a slot whose move is switching, on
// every node: the source has paused it, and the target does not own it
// yet; a moment later the map says who does. Clients retry TRYAGAIN.
const errMoveSwitching = "TRYAGAIN the slot is switching to another shard; retry shortly"

// moveRedirect is the reply for a command on slot s when s is moving, ""
// when the move changes nothing: TRYAGAIN while the move switches, or
// while paused says this node paused s for a switch its table does not
// show yet (move_source.go).
func (t *slotTable) moveRedirect(s uint16, paused func(uint16) bool) string {
	if t == nil || t.moving == nil || t.moving[s/8]&(1<<(s%8)) == 0 {
		return ""
	}
	for _, mv := range t.moves {
		if s >= mv.First && s <= mv.Last && mv.State == moveSwitching {
			return errMoveSwitching
		}
	}
	if paused(s) {
		return errMoveSwitching
	}
	return ""
}

// shardOf returns the name of the shard that owns slot s.
func (t *slotTable) shardOf(s uint16) string { return t.shards[t.owner[s&(numSlots-1)]] }
