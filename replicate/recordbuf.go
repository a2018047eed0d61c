package replicate

import (
	"bytes"
	"math/bits"
	"sync"
)

// Submit copies each batch (its caller may reuse it at once) and keeps the
// copy until applyThrough has applied it. For large batches that copy used
// to be a fresh allocation each time: a bulk import (a slot move's target
// submits 1 MiB batches) then spent more of its CPU having the kernel fault
// the new pages in than copying into them. Large copies are therefore made
// into buffers recycled from earlier records, which are warm: cloneRecord
// takes one, releaseRecord hands it back once the coalescer has copied the
// record into its batch. Buffers go in power-of-two classes from
// minRecordBuf up to maxRecordBuf; smaller and larger records are plain
// allocations, as before (a small one costs little, a huge one is rare and
// not worth keeping).
const (
	minRecordBuf     = 64 << 10
	recordBufClasses = 6 // 64 KiB .. 2 MiB
	maxRecordBuf     = minRecordBuf << (recordBufClasses - 1)
)

// recordBufs[c] holds *[]byte of capacity minRecordBuf<<c.
var recordBufs [recordBufClasses]sync.Pool

// recordBufClass is the class whose buffers hold n bytes, or -1 if n is
// below minRecordBuf or above maxRecordBuf.
func recordBufClass(n int) int {
	if n < minRecordBuf || n > maxRecordBuf {
		return -1
	}
	return bits.Len(uint(n-1)) - bits.Len(uint(minRecordBuf-1))
}

// cloneRecord returns a copy of data, in a recycled buffer if data is large.
func cloneRecord(data []byte) []byte {
	c := recordBufClass(len(data))
	if c < 0 {
		return bytes.Clone(data)
	}
	if p, _ := recordBufs[c].Get().(*[]byte); p != nil {
		return append((*p)[:0], data...)
	}
	return append(make([]byte, 0, minRecordBuf<<c), data...)
}

// releaseRecord hands back buf, a copy cloneRecord made, once nothing reads
// it any more. A buffer not of a class (a small or huge record's) is left to
// the garbage collector.
func releaseRecord(buf []byte) {
	c := recordBufClass(cap(buf))
	if c < 0 || cap(buf) != minRecordBuf<<c {
		return
	}
	buf = buf[:0]
	recordBufs[c].Put(&buf)
}
