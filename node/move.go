package node

// Online slot moves (docs/cluster.md, "Moving slots online"). A move of
// slots FIRST..LAST from shard FROM to shard TO is an entry of the slot
// map's moves; the target shard's leader does the work, and a slot is
// served by exactly one shard at every moment: the source until the map
// flips, the target after.
//
//	kvnode cluster move-slots   map: + {first,last,from,to,"copying"}
//	target leader (moveTarget)  sees the move, dials the source leader's move
//	                            listener (TLS over TCP, mutual, the node certificates)
//	source leader (moveSource)  registers the range's tracker, takes a snapshot,
//	                            streams its rows (copy), then the range's keys
//	                            written since, round after round (tail)
//	target                      applies every row as its own batches (its
//	                            followers get them through its commit log);
//	                            once a round is small: map state "switching"
//	                            (a transaction on the map's revision), then
//	                            asks the source to pause
//	source                      refuses the range's writes (TRYAGAIN) from the
//	                            backend down, syncs what it took, ships the
//	                            last keys and a fence
//	target                      applies through the fence, syncs, flips the map
//	                            (the range is its own, the move removed) in one
//	                            transaction that holds only while the move is
//	                            still "switching", it still leads its shard and
//	                            the source's leader is the one it streamed from
//	every leader (dropUnowned)  deletes the rows of slots its shard neither
//	                            owns nor imports: the source's old range, an
//	                            aborted copy
//
// The tail ships keys, not log records. While its tracker is registered,
// every batch the source's backend applies marks the range's data keys it
// writes as dirty, under a read lock held from the mark to the submit; a
// round swaps the dirty set under the write lock (so every marked write is
// submitted), waits until those writes are applied, and ships each key's
// value as the engine holds it then, or its absence. Shipping a key twice
// is harmless (each row is the key's whole state at a later moment), so
// the copy and the rounds need no ordering against writes, only "every
// write after the snapshot is marked", which the lock gives. The pause
// makes the last round exact: after it no batch touching the range gets
// past the backend.
//
// Why no ASK: Redis' MIGRATE moves keys one by one, so during a migration
// a key absent at the source may be at the target already, and ASK sends
// the client there. Here the source holds every key of the range until the
// flip, so a key absent at the source is absent; sending its writes to the
// target would make two writers of one slot (the source's tail would later
// ship that key's deletion over the target's write). So no -ASK is sent,
// and ASKING stays a no-op (route.go).

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv"
)

// The move stream's wire format. Integers are big-endian.
//
// The target opens the stream with a request:
//
//	"LKMV" version[1]=1 first[2] last[2]
//
// and later may send one pause:
//
//	'P' rev[8]          the map's revision at which the target wrote the
//	                    move's state "switching"
//
// The source answers with frames, each a kind byte and its fields:
//
//	'R' slot[2] klen[4] key vlen[4] value   a key's value as stored (keyspace
//	                                        header and payload, keyspace.go)
//	'D' slot[2] klen[4] key                 the key is absent now
//	'S' rows[8]                             the snapshot's rows are done
//	'T' keys[4]                             a tail round of keys rows is done
//	'F'                                     the fence: every write to the
//	                                        range the source took is above
//	'E' len[2] message                      the source gives up; the stream ends
//	'K'                                     keep-alive: nothing, sent each
//	                                        moveKeepAlive the source waits
//	                                        (a barrier, a snapshot, a sync)
//	                                        without sending
//
// Timeouts: the source waits moveRequestTimeout for the request; the
// target fails an attempt when a read from the source makes no progress
// for moveReadTimeout (counted only while it reads, not while it applies),
// which the source's keep-alives keep from cutting a healthy slow move. A
// hung source process (stopped, not dead) still answers TCP keep-alives
// from its kernel: this is what ends that case. The source's writes have
// the transport's deadline (QUICOptions.IdleTimeout, 30 s by default, per
// Write), the same bound in the other direction: a target that reads
// nothing for that long (a stalled disk) fails the attempt, which retries.
// A target of an older version fails its attempt at a 'K' (an unknown
// kind), which a source sends only after moveKeepAlive of waiting.
//
// Every length is checked against the node's limits (max_key_size,
// max_value_size) before anything is allocated, and every key against its
// slot and the requested range: a peer with a certificate is trusted to be
// a node, not to be right.
const (
	moveMagic   = "LKMV"
	moveVersion = 1

	frameRow       = 'R'
	frameDelete    = 'D'
	frameSnapshot  = 'S'
	frameRound     = 'T'
	frameFence     = 'F'
	frameError     = 'E'
	framePause     = 'P'
	frameKeepAlive = 'K'
)

// Move tuning.
const (
	// moveBatchBytes bounds one batch the target applies (one commit-log
	// record).
	moveBatchBytes = 1 << 20
	// moveSwitchKeys: a tail round of at most this many keys lets the
	// target switch (the pause then ships about as many).
	moveSwitchKeys = 1000
	// moveMaxRounds: past this many rounds the target switches anyway,
	// so a write rate the tail cannot outrun still ends (with a longer
	// pause).
	moveMaxRounds = 50
	// moveSwitchTimeout bounds how long the target waits for the fence
	// after it wrote "switching": past it, it writes the move back to
	// "copying" (the source serves again) and copies anew.
	moveSwitchTimeout = 5 * time.Second
	// moveRetry is the pause between a failed attempt and the next.
	moveRetry = 500 * time.Millisecond
	// moveIdleRound is how long a tail round with nothing to ship waits
	// before the next.
	moveIdleRound = 2 * time.Millisecond
)

// Move timeouts; variables so that tests can shorten them before a node
// starts.
var (
	// moveReadTimeout: a target whose read from the source makes no
	// progress this long ends the attempt (a hung source).
	moveReadTimeout = 30 * time.Second
	// moveKeepAlive: a source waiting this long without sending sends a
	// keep-alive frame (a third of moveReadTimeout, as TCP keep-alives).
	moveKeepAlive = moveReadTimeout / 3
	// moveRequestTimeout bounds the source's wait for the request: a peer
	// with a certificate that sends nothing holds a goroutine and a socket
	// no longer.
	moveRequestTimeout = 10 * time.Second
)

// errMovePaused answers writes to a range whose move is switching: clients
// retry TRYAGAIN, and by then the range is served by its new owner.
type movePausedError struct{}

func (movePausedError) Error() string {
	return "TRYAGAIN the slot is moving to another shard and its writes are paused for the switch; retry shortly"
}

// Is makes errReply send the text as it is, as it does errFenced's.
func (movePausedError) Is(target error) bool { return target == errFenced }

var errMovePaused error = movePausedError{}

// moveProgressKey is where the target publishes a move's progress
// (kvnode cluster status shows it).
func moveProgressKey(cluster string, first, last uint16) string {
	return fmt.Sprintf("/logkv/%s/moves/%d-%d", cluster, first, last)
}

// moveProgress is the JSON of moveProgressKey.
type moveProgress struct {
	V      int    `json:"v"`
	First  uint16 `json:"first"`
	Last   uint16 `json:"last"`
	From   string `json:"from"`
	To     string `json:"to"`
	State  string `json:"state"` // copying, tail, switching, done
	Target string `json:"target"`
	Keys   int64  `json:"keys"`
	Bytes  int64  `json:"bytes"`
	Rounds int    `json:"rounds"`
	// Attempt counts the copies started (a restarted copy starts again).
	Attempt int `json:"attempt"`
	// StartedMs is when this attempt began, Unix ms; DurationMs and
	// PauseMs are set once done: the whole move, and from "switching"
	// written to the flip.
	StartedMs  int64 `json:"started_ms"`
	DurationMs int64 `json:"duration_ms,omitempty"`
	PauseMs    int64 `json:"pause_ms,omitempty"`
}

// moveStats are a node's slot-move figures, as a target (INFO cluster and
// the metrics).
type moveStats struct {
	done, failed       atomic.Int64
	keys, bytes        atomic.Int64
	lastDurationMicros atomic.Int64
	lastPauseMicros    atomic.Int64
	running            atomic.Int64
}

// Map operations.

// clone returns a copy of m that shares nothing with it.
func (m *slotMap) clone() *slotMap {
	c := &slotMap{Version: m.Version, Shards: append([]string(nil), m.Shards...)}
	c.Ranges = append([]slotRange(nil), m.Ranges...)
	c.Moves = append([]slotMove(nil), m.Moves...)
	return c
}

// shardIndex is the index of shard name, -1 if m does not name it.
func (m *slotMap) shardIndex(name string) int {
	for i, s := range m.Shards {
		if s == name {
			return i
		}
	}
	return -1
}

// findMove is the index of the move of exactly first..last, -1 if none.
func (m *slotMap) findMove(first, last uint16) int {
	for i, mv := range m.Moves {
		if mv.First == first && mv.Last == last {
			return i
		}
	}
	return -1
}

// assign gives slots first..last to shard index to, splitting and merging
// ranges so that the result is minimal around them.
func (m *slotMap) assign(first, last, to uint16) {
	var out []slotRange
	for _, r := range m.Ranges {
		if r.Last < first || r.First > last {
			out = append(out, r)
			continue
		}
		if r.First < first {
			out = append(out, slotRange{First: r.First, Last: first - 1, Shard: r.Shard})
		}
		if r.First <= first {
			out = append(out, slotRange{First: first, Last: last, Shard: to})
		}
		if r.Last > last {
			out = append(out, slotRange{First: last + 1, Last: r.Last, Shard: r.Shard})
		}
	}
	// Merge neighbours with one owner, so that later moves (which must lie
	// within one range) may span what earlier moves joined.
	merged := out[:0]
	for _, r := range out {
		if k := len(merged); k > 0 && merged[k-1].Shard == r.Shard && merged[k-1].Last+1 == r.First {
			merged[k-1].Last = r.Last
			continue
		}
		merged = append(merged, r)
	}
	m.Ranges = merged
}

// flip returns m with move i done: its slots the target's, the move gone.
func (m *slotMap) flip(i int) *slotMap {
	c := m.clone()
	mv := c.Moves[i]
	c.assign(mv.First, mv.Last, mv.To)
	c.Moves = append(c.Moves[:i], c.Moves[i+1:]...)
	return c
}

// errMapUnchanged, returned by an updateSlotMap edit, leaves the map as it
// is.
var errMapUnchanged = errors.New("node: slot map unchanged")

// errMapCondition: a condition of updateSlotMap's transaction other than
// the map's version failed (for a flip: the target no longer leads).
var errMapCondition = errors.New("node: the slot map's transaction condition failed")

// updateSlotMap reads cluster's map, edits it with edit and writes it back
// in a transaction on the version read; when another writer got there
// first it reads again and retries (edit sees each read afresh). It returns
// the map written (or the one read when edit returned errMapUnchanged).
// extra ops join the write's transaction, and cmps its conditions: when
// one fails while the map is unchanged, it returns errMapCondition.
func updateSlotMap(ctx context.Context, cli *clientv3.Client, cluster string, edit func(*slotMap) (*slotMap, []clientv3.Op, error), cmps ...clientv3.Cmp) (*slotMap, error) {
	for ctx.Err() == nil {
		m, err := readSlotMap(ctx, cli, cluster)
		if err != nil {
			return nil, err
		}
		if m == nil {
			return nil, fmt.Errorf("cluster %s has no slot map: write one with kvnode cluster init -shards NAME,NAME", cluster)
		}
		nm, extra, err := edit(m.clone())
		if errors.Is(err, errMapUnchanged) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		val, err := nm.encode()
		if err != nil {
			return nil, err
		}
		key := slotsKey(cluster)
		ops := append([]clientv3.Op{clientv3.OpPut(key, string(val))}, extra...)
		ifs := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", m.Version)}, cmps...)
		resp, err := cli.Txn(ctx).If(ifs...).Then(ops...).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", key, err)
		}
		if resp.Succeeded {
			nm.Version = resp.Header.Revision
			return nm, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 && kvs[0].ModRevision == m.Version {
			return nil, errMapCondition
		}
	}
	return nil, ctx.Err()
}

// Wire helpers.

// moveWriter writes frames to the target. A bufio.Writer keeps the first
// write error and returns it from every later Write and Flush, so only the
// last write of a frame is checked.
type moveWriter struct{ w *bufio.Writer }

func (w moveWriter) row(slot uint16, key, value []byte) error {
	var h [11]byte
	h[0] = frameRow
	binary.BigEndian.PutUint16(h[1:], slot)
	binary.BigEndian.PutUint32(h[3:], uint32(len(key)))
	_, _ = w.w.Write(h[:7])
	_, _ = w.w.Write(key)
	binary.BigEndian.PutUint32(h[7:], uint32(len(value)))
	_, _ = w.w.Write(h[7:11])
	_, err := w.w.Write(value)
	return err
}

func (w moveWriter) del(slot uint16, key []byte) error {
	var h [7]byte
	h[0] = frameDelete
	binary.BigEndian.PutUint16(h[1:], slot)
	binary.BigEndian.PutUint32(h[3:], uint32(len(key)))
	_, _ = w.w.Write(h[:])
	_, err := w.w.Write(key)
	return err
}

func (w moveWriter) mark(kind byte, n uint64, size int) error {
	var h [9]byte
	h[0] = kind
	switch size {
	case 8:
		binary.BigEndian.PutUint64(h[1:], n)
	case 4:
		binary.BigEndian.PutUint32(h[1:], uint32(n))
	}
	_, _ = w.w.Write(h[:1+size])
	return w.w.Flush()
}

func (w moveWriter) fail(err error) {
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	var h [3]byte
	h[0] = frameError
	binary.BigEndian.PutUint16(h[1:], uint16(len(msg)))
	_, _ = w.w.Write(h[:])
	_, _ = w.w.WriteString(msg)
	_ = w.w.Flush() // the stream ends either way; the target sees EOF if this fails
}

// moveFrame is one frame the target read.
type moveFrame struct {
	kind  byte
	slot  uint16
	key   []byte
	value []byte
	n     uint64
}

// moveReader reads and checks the source's frames.
type moveReader struct {
	r           *bufio.Reader
	first, last uint16
	maxKey      int
	maxValue    int
	buf         []byte
}

// next reads one frame. key and value are valid until the next call.
func (r *moveReader) next() (moveFrame, error) {
	var f moveFrame
	kind, err := r.r.ReadByte()
	for err == nil && kind == frameKeepAlive {
		kind, err = r.r.ReadByte() // the source is alive; its read timeout was renewed
	}
	if err != nil {
		return f, err
	}
	f.kind = kind
	var h [8]byte
	switch kind {
	case frameRow, frameDelete:
		if _, err := io.ReadFull(r.r, h[:6]); err != nil {
			return f, err
		}
		f.slot = binary.BigEndian.Uint16(h[:2])
		klen := int(binary.BigEndian.Uint32(h[2:6]))
		if f.slot < r.first || f.slot > r.last {
			return f, fmt.Errorf("node: slot move: the source sent a key of slot %d, outside %d-%d", f.slot, r.first, r.last)
		}
		if klen == 0 || klen > r.maxKey {
			return f, fmt.Errorf("node: slot move: the source sent a key of %d bytes (limits.max_key_size is %d)", klen, r.maxKey)
		}
		vlen := 0
		r.buf = slices.Grow(r.buf[:0], klen)[:klen] // reused: no allocation per row
		if _, err := io.ReadFull(r.r, r.buf); err != nil {
			return f, err
		}
		if kind == frameRow {
			if _, err := io.ReadFull(r.r, h[:4]); err != nil {
				return f, err
			}
			vlen = int(binary.BigEndian.Uint32(h[:4]))
			if vlen < 1 || vlen > r.maxValue+valueHeaderMax {
				return f, fmt.Errorf("node: slot move: the source sent a value of %d bytes (limits.max_value_size is %d)", vlen, r.maxValue)
			}
			r.buf = slices.Grow(r.buf, vlen)[:klen+vlen]
			if _, err := io.ReadFull(r.r, r.buf[klen:]); err != nil {
				return f, err
			}
			f.value = r.buf[klen:]
			if _, _, err := decodeValue(f.value); err != nil {
				return f, fmt.Errorf("node: slot move: the source sent a bad value: %w", err)
			}
		}
		f.key = r.buf[:klen]
		if keySlot(f.key) != f.slot {
			return f, fmt.Errorf("node: slot move: the source sent key %q as slot %d; it hashes to %d", f.key, f.slot, keySlot(f.key))
		}
	case frameSnapshot:
		if _, err := io.ReadFull(r.r, h[:8]); err != nil {
			return f, err
		}
		f.n = binary.BigEndian.Uint64(h[:8])
	case frameRound:
		if _, err := io.ReadFull(r.r, h[:4]); err != nil {
			return f, err
		}
		f.n = uint64(binary.BigEndian.Uint32(h[:4]))
	case frameFence:
	case frameError:
		if _, err := io.ReadFull(r.r, h[:2]); err != nil {
			return f, err
		}
		msg := make([]byte, binary.BigEndian.Uint16(h[:2]))
		if _, err := io.ReadFull(r.r, msg); err != nil {
			return f, err
		}
		return f, fmt.Errorf("node: slot move: the source says: %s", msg)
	default:
		return f, fmt.Errorf("node: slot move: the source sent frame kind %d, which this node does not know", kind)
	}
	return f, nil
}

// encodeMoveRequest is the request for first..last.
func encodeMoveRequest(first, last uint16) []byte {
	b := append([]byte(moveMagic), moveVersion)
	b = binary.BigEndian.AppendUint16(b, first)
	return binary.BigEndian.AppendUint16(b, last)
}

// decodeMoveRequest reads a request.
func decodeMoveRequest(r io.Reader) (first, last uint16, err error) {
	var b [9]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, 0, err
	}
	if string(b[:4]) != moveMagic || b[4] != moveVersion {
		return 0, 0, fmt.Errorf("node: slot move: request starts %q, want %q version %d (is the peer a kvnode of this version?)", b[:5], moveMagic, moveVersion)
	}
	first, last = binary.BigEndian.Uint16(b[5:]), binary.BigEndian.Uint16(b[7:])
	if first > last || last >= numSlots {
		return 0, 0, fmt.Errorf("node: slot move: request for slots %d-%d", first, last)
	}
	return first, last, nil
}

// slotRangeOf returns the engine bounds of slots first..last of (db, gen).
func slotRangeOf(db int, gen uint32, first, last uint16) (lower, upper []byte) {
	return slotPrefix(db, gen, first), slotPrefix(db, gen, last+1)
}

// deleteSlotRange deletes every row of slots first..last of database 0's
// current generation through the backend (so followers delete them too),
// in batches. The engines have no range deletion, so it is key by key,
// each batch one commit-log record. It returns how many rows it deleted.
func (n *Node) deleteSlotRange(first, last uint16) (int, error) {
	gen, err := n.gen(0)
	if err != nil {
		return 0, err
	}
	lower, upper := slotRangeOf(0, gen, first, last)
	total := 0
	for {
		it, err := n.eng().NewIter(&logkv.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return total, err
		}
		var batch logkv.Batch
		for ok := it.First(); ok && batch.Len() < 4096; ok = it.Next() {
			batch.Delete(it.Key())
		}
		err = errors.Join(it.Error(), it.Close())
		if err != nil {
			return total, err
		}
		if batch.Empty() {
			return total, nil
		}
		// Not checked against the slot table: the rows may be of slots
		// this shard gave away (the sweep), which Submit refuses.
		apply := n.backend.Submit
		if cb, ok := n.backend.(*clusterBackend); ok {
			apply = func(b *logkv.Batch) error { return cb.apply(b, false) }
		}
		if err := errors.Join(apply(&batch), n.backend.Sync()); err != nil {
			return total, err
		}
		total += batch.Len()
	}
}

// infoMoves adds the node's move figures to INFO cluster.
func (s *moveStats) info(add func(string, any)) {
	add("cluster_slot_moves_running", s.running.Load())
	add("cluster_slot_moves_done", s.done.Load())
	add("cluster_slot_moves_failed", s.failed.Load())
	add("cluster_slot_move_keys", s.keys.Load())
	add("cluster_slot_move_bytes", s.bytes.Load())
	add("cluster_slot_move_last_duration_ms", strconv.FormatFloat(float64(s.lastDurationMicros.Load())/1000, 'f', 1, 64))
	add("cluster_slot_move_last_pause_ms", strconv.FormatFloat(float64(s.lastPauseMicros.Load())/1000, 'f', 1, 64))
}

// registerMoveMetrics adds the move figures to the node's metrics.
func (b *clusterBackend) registerMoveMetrics() {
	if b.n.metrics == nil {
		return
	}
	st := &b.moveStats
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	for _, c := range []prometheus.Collector{
		counter("logkv_slot_moves_done_total", "Slot moves into this node's shard that it led to the flip.", &st.done),
		counter("logkv_slot_move_attempts_failed_total", "Slot move attempts that failed and started again.", &st.failed),
		counter("logkv_slot_move_keys_total", "Keys copied into this node's shard by slot moves it led (copy and tail).", &st.keys),
		counter("logkv_slot_move_bytes_total", "Key and value bytes copied into this node's shard by slot moves it led.", &st.bytes),
		gauge("logkv_slot_moves_running", "Slot moves into this node's shard it is copying now.", func() float64 { return float64(st.running.Load()) }),
		gauge("logkv_slot_move_last_duration_seconds", "The last finished slot move's duration, from its first attempt to the flip.",
			func() float64 { return float64(st.lastDurationMicros.Load()) / 1e6 }),
		gauge("logkv_slot_move_last_pause_seconds", "The last finished slot move's pause: from the switch written to the flip.",
			func() float64 { return float64(st.lastPauseMicros.Load()) / 1e6 }),
	} {
		b.n.metrics.reg.MustRegister(c)
	}
}

// publishProgress writes p to etcd (best effort: progress is for people).
func (b *clusterBackend) publishProgress(ctx context.Context, p moveProgress) {
	val, _ := json.Marshal(p) // plain fields: cannot fail
	pctx, cancel := context.WithTimeout(ctx, clusterInfoTimeout)
	defer cancel()
	if _, err := b.cli.Put(pctx, moveProgressKey(b.n.cfg.Cluster.Name, p.First, p.Last), string(val)); err != nil {
		b.n.log.Debug("cluster: cannot publish a move's progress", "err", err)
	}
}

// moveTestHook, when a test sets it, runs at named stages of every move
// in the process: "target-copied" (the target read the whole snapshot),
// "source-paused" (the source paused the range and shipped its last keys,
// before the fence), "target-fenced" (the target applied and synced
// through the fence and checked its generation, before the flip),
// "route-read" (a member's watcher is about to apply what it got
// from etcd to its table: a whole read or a watch response). A hook that blocks must return when ctx ends.
var moveTestHook atomic.Pointer[func(ctx context.Context, stage string)]

func moveStage(ctx context.Context, stage string) {
	if h := moveTestHook.Load(); h != nil {
		(*h)(ctx, stage)
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// moveKeyOf names a move in logs and maps: "first-last".
func moveKeyOf(first, last uint16) string { return fmt.Sprintf("%d-%d", first, last) }
