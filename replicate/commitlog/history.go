package commitlog

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// EpochStart marks the start of an epoch: the records from Seq on (up to the
// next entry's Seq) belong to Epoch.
type EpochStart struct {
	Epoch uint64
	Seq   uint64
}

// MaxHistory is the most entries an epoch history may hold. Decoders refuse
// longer histories before allocating.
const MaxHistory = 4096

// EpochAt returns the epoch that history gives to seq: the epoch of the last
// entry whose Seq is <= seq, or 0 if there is none.
func EpochAt(history []EpochStart, seq uint64) uint64 {
	var e uint64
	for _, h := range history {
		if h.Seq > seq {
			break
		}
		e = h.Epoch
	}
	return e
}

// ValidHistory returns an error if history is not increasing in both fields
// (seqs may repeat: an epoch may be empty), or is too long.
func ValidHistory(history []EpochStart) error {
	if len(history) > MaxHistory {
		return fmt.Errorf("epoch history of %d entries is over the limit %d", len(history), MaxHistory)
	}
	for i, h := range history {
		if h.Epoch == 0 || h.Seq == 0 {
			return fmt.Errorf("epoch history entry %d has a zero field (%d at seq %d)", i, h.Epoch, h.Seq)
		}
		if i > 0 && (h.Epoch <= history[i-1].Epoch || h.Seq < history[i-1].Seq) {
			return fmt.Errorf("epoch history not increasing at entry %d: %v after %v", i, h, history[i-1])
		}
	}
	return nil
}

// ForkPoint returns the last sequence number up to which two logs agree: the
// largest s <= min(aLast, bLast) such that every seq in 1..s has the same
// epoch in both histories. Records are only ever committed by the leader of
// their epoch, so two logs that agree on the epoch of a seq hold the same
// record there.
func ForkPoint(a []EpochStart, aLast uint64, b []EpochStart, bLast uint64) uint64 {
	limit := min(aLast, bLast)
	pts := []uint64{1}
	for _, h := range a {
		pts = append(pts, h.Seq)
	}
	for _, h := range b {
		pts = append(pts, h.Seq)
	}
	slices.Sort(pts)
	pts = slices.Compact(pts)
	var match uint64
	for i, p := range pts {
		if p > limit || EpochAt(a, p) != EpochAt(b, p) {
			break
		}
		end := limit
		if i+1 < len(pts) && pts[i+1]-1 < end {
			end = pts[i+1] - 1
		}
		match = end
	}
	return match
}

// appendHistory appends the 16-byte payload encoding of h to dst.
func appendHistoryEntry(dst []byte, h EpochStart) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, h.Epoch)
	return binary.LittleEndian.AppendUint64(dst, h.Seq)
}
