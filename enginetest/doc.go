// Package enginetest is the conformance suite every logkv engine passes, in
// the spirit of testing/fstest.TestFS. An engine calls it from its own test:
//
//	func TestEngine(t *testing.T) {
//		enginetest.Run(t, func(t *testing.T, dir string) logkv.Engine {
//			e, err := Open(dir, nil)
//			require.NoError(t, err)
//			return e
//		}, enginetest.Capabilities{Durable: true, Crash: crash})
//	}
//
// Every check is a named subtest on a fresh engine in its own t.TempDir, so
// `go test -run 'TestEngine/iter/bounds'` reruns one of them.
//
// # What Run checks
//
//   - basic: Get/Set/Delete/overwrite; ErrNotFound (via errors.Is) for absent
//     keys; keys and values with 0x00 and 0xff bytes; the slice Get returns
//     belongs to the caller; the caller may reuse the key and value buffers
//     it passed; an empty value is a value, distinct from an absent key.
//   - limits: ErrEmptyKey; MaxKeySize keys and a MaxValueSize value accepted
//     and read back (Get and iterators, and after reopen when Durable, a
//     subtest of its own that -short skips: it is the slowest under -race);
//     ErrKeyTooLarge and ErrValueTooLarge reject the write whole, consuming no
//     sequence number; a Batch holding an invalid operation (Batch.Err set) is
//     rejected whole by Apply.
//   - batch: Apply commits at one sequence number; within a batch a later
//     operation on a key wins; a 3000-operation batch; an empty batch is a
//     no-op consuming no sequence number; the batch and a decoded batch's buffer may be reused after Apply;
//     batches keeping an invariant over several keys are seen whole or not at
//     all by concurrent snapshots and iterators, and a snapshot's Seq names the
//     batch it sees.
//   - iter: First/Last/SeekGE/SeekLT/Next/Prev against a model over sixteen
//     bound cases (nil bounds, empty ranges lower >= upper, bounds on and
//     between keys, seeks outside bounds), with direction changes in the middle
//     and at the edges; Next and Prev on an iterator not at a key return false;
//     bound and seek buffers may be reused; an iterator sees the state as of
//     its creation; Key/Value copies; logkv.All; two interleaved iterators;
//     Close twice, and positioning after Close returns false.
//   - snapshot: isolation from later sets, deletes, overwrites and batches,
//     through Get and iterators opened before and after them; Seq equals
//     LastSeq at creation; many snapshots at different points, closed in any
//     order; Get results owned by the caller; Close twice; ErrClosed from a
//     closed snapshot; closing the engine with readers open does not hang.
//   - seq: assigned sequence numbers grow by one per batch (a Set or Delete is
//     a batch of one); caller-given ones (WriteOptions.Seq) greater than
//     LastSeq are accepted, gaps allowed; equal or smaller ones fail with
//     ErrSeqNotIncreasing and apply nothing (for empty batches too); LastSeq
//     survives reopen when Durable.
//   - metrics: Writes, WriteOps, BytesWritten and Gets count exactly what the
//     contract says; empty and rejected writes count nothing.
//   - closed: after Close every method returns ErrClosed (Get, Set, Delete,
//     Apply, NewIter, NewSnapshot, Sync) and LastSeq and Metrics keep their
//     last values; a second Close returns nil or ErrClosed (both accepted) and
//     does not panic; writes refused after Close never reach the disk.
//   - append-get (an engine implementing logkv.ValueAppender; others skip):
//     AppendGet appends what Get returns, for present, absent, deleted,
//     overwritten, empty and 64 KiB values, after a nil, an empty and a
//     non-empty dst whose bytes it keeps; a miss returns dst unchanged with
//     ErrNotFound; the appended bytes are the caller's; each call counts as
//     one Get; a snapshot implementing it reads its frozen view; ErrClosed
//     after Close, with dst unchanged.
//   - prefetch (an engine implementing logkv.Prefetcher; others skip):
//     Prefetch of present, absent, deleted, empty-valued, large, empty,
//     oversized and repeated keys, of nil and empty lists and of more keys
//     than a batch, changes nothing Get, AppendGet, an iterator or LastSeq
//     reads, counts no Get, keeps none of the caller's key bytes, and does
//     not panic after Close.
//   - persist (Durable): sets, overwrites, deletes, batches, synced and unsynced
//     writes and caller-given sequence numbers survive Close and reopen, again
//     and again.
//   - crash (Crash set): synced writes, and writes before a successful Sync,
//     survive a crash (after every flush alignment: a synced write follows
//     0 to 4 unsynced ones); what is recovered is a prefix of history at a
//     committed sequence number, with LastSeq at its end, never a mix; a
//     600 KiB batch is recovered whole or not at all; what one crash
//     recovered survives a second; a clean Close makes everything durable.
//   - concurrent: writers, readers, iterators and snapshots at once (run it
//     with -race); reads never go back in time, iterators stay ordered and
//     within bounds; the final state and LastSeq are exact.
//   - model: RunModel with default options.
//
// # Metamorphic test
//
// RunMetamorphic takes an engine by its registered name, draws its options
// through logkv.NewOptions and logkv.TestTuner, and checks a random
// operation log against a model; a failing log is written to a file that
// ENGINETEST_REPLAY replays exactly. TestMetamorphic runs it over every
// registered engine, so an engine is covered by its import there.
//
// # Reproducing a model failure
//
// RunModel logs its seed. Rerun with it, and more steps if need be:
//
//	ENGINETEST_SEED=1234 ENGINETEST_STEPS=5000 go test -run 'TestEngine/model' ./lsm/
package enginetest
