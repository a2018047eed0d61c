// Package stress is a crash harness in the spirit of RocksDB's db_stress
// crash test: it kills a process writing to an engine with SIGKILL at a
// random moment, reopens the engine, and checks that every acknowledged
// write survived. cmd/kvstress is its command line.
//
// Each cycle of Run starts a child process (Config.ChildCommand; kvstress
// re-executes itself with -child) that opens the engine in Config.Dir with
// small memtable and file sizes, so that flushes, compactions and merges
// happen within every cycle, and writes from several goroutines with
// WriteOptions.Sync. After each acknowledged write the child prints one line
// to its stdout (see "Child protocol"). The parent kills the child after a
// random part of the cycle, opens the engine itself (timing the open: the
// recovery time) and reads every key back.
//
// # Values
//
// Keys are "key%06d". Each key belongs to one writer goroutine, which writes
// it with a per-cycle counter that increases by one per write, so at most one
// write per key is in flight. The value of write (cycle c, counter n) of key
// k is
//
//	k "#" c "#" n "#" padding
//
// where padding is a deterministic filler of 64 to 1087 bytes derived from
// (k, c, n). The parent regenerates the whole value to compare it, so a torn
// or mixed-up value shows as corrupt, not as a version.
//
// # Verdict per key
//
// After cycle c, with A the key's last acknowledged write in cycle c (if
// any) and B the value observed after the previous cycle (its baseline), the
// key may hold: A if any was acknowledged, otherwise B; or the write that
// was in flight when the child died, (c, n(A)+1), or (c, 1) when nothing was
// acknowledged. Anything older (or missing) counts the acknowledged writes
// it lacks as lost; anything else (a value never written, a torn value) is
// corrupt. The observed value becomes the next baseline.
//
// # Child protocol
//
// The child writes lines to stdout, each in one write (pipe writes of under
// PIPE_BUF bytes are atomic): "ready\n" once the engine is open, then
// "a KEY COUNTER\n" after each acknowledged write, KEY the key's index and
// COUNTER the write's counter, both decimal. A write acknowledged but not
// yet reported when the child dies counts as unacknowledged, which is safe.
//
// With Config.Node the child is a kvnode process instead, the writers are
// goroutines of the parent using a Redis client (a write is acknowledged
// when SET returns OK), and the parent restarts kvnode and reads back with
// GET; recovery time is from the restart to the first answered PING.
//
// # Replicated nodes
//
// With or without Config.Replicated, kvnode writes through its commit log
// (its durability: full), which is the only log of an lsm engine (its own
// WAL is off), and a restart replays the log from the engine's LastSeq (the
// memory engine restarts from its checkpoint first). With Replicated, Run
// makes certificates once in Dir/tls (kvnode certs) and starts kvnode with
// them and a replication listener on a free port, as a leader without
// followers. Config.AppendFsync is passed through: with everysec a write is
// acknowledged once the log write reached the operating system, before its
// fsync; SIGKILL kills the process, not the kernel, so the check is the same
// as with always: no acknowledged write may be lost.
//
// # Power cut
//
// With Config.PowerCut (kvstress -node -powercut) kvnode's data directory is
// a mount of package powercut's FUSE file system over Dir/data.backing,
// which keeps each file's content as of its last fsync and each
// directory's entries as of its last directory fsync. Each cycle kills
// kvnode, then cuts the power: the mount goes, everything not synced is
// thrown away, and kvnode restarts on what is left. With appendfsync
// always the verdict is unchanged: no acknowledged write may be missing.
// With everysec the docs allow a power loss to take the last second of
// acknowledged writes, so a missing write acknowledged within
// EverysecWindow of the kill counts as Dropped, not Lost; anything
// acknowledged earlier is Lost. The scorecard adds the dropped count, the
// oldest dropped write's age, and what the cuts threw away.
//
// # Transactions and expiry
//
// With Config.Multi (kvstress -node -multi) the writers send transactions
// instead: MULTI, SET of Config.TxKeys fresh keys "tx:TOKEN:J", SET of the
// writer's own "txlast:W", EXEC, where TOKEN is "cCYCLE.wWRITER.tSEQ" and
// each value is a deterministic function of the token and the key (as
// above, 64 to 1087 bytes of filler, so that an EXEC is kilobytes and a
// kill often lands inside its write). A writer whose EXEC fails stops for
// the cycle, so at most one of its transactions is in doubt. After each
// kill and restart the parent reads every transaction of every cycle so far
// (MGET) and checks:
//
//   - each is wholly present or wholly absent (any other count is a torn
//     EXEC, counted corrupt), every acknowledged one is present (else lost),
//     and one found present (or absent) after a crash stays so after later
//     ones;
//   - txlast:W holds the value of writer W's latest present transaction,
//     and its deadline: txlast is SET with PX 3600000+SEQ inside the
//     transaction, so PEXPIRETIME must lie in [sent+PX, acked+PX] of that
//     transaction (sent before MULTI, acked after EXEC's reply, the kill
//     time for one in doubt);
//   - DBSIZE of database 0 equals the number of keys that exist.
//
// Beside them one goroutine writes to database 1, one operation at a time,
// at most 300 per cycle, rotating three kinds: SET PX of an hour or more,
// SET PX of 1 to 300 ms, and SET PX of 1 to 300 ms followed by PERSIST.
// Recording the wall clock before each SET and after its reply bounds the
// deadline to [sent+PX, acked+PX] (the kill time bounds an unacknowledged
// one; kvnode runs on the same machine and clock; 1 ms of slack each way).
// After each restart every operation so far is checked with PEXPIRETIME and
// GET: a key present has its value and a deadline within those bounds, or
// none (-1) only if PERSIST was sent; a key whose PERSIST was acknowledged
// is present without a deadline; an acknowledged key whose deadline cannot
// have passed is present; a key whose deadline passed before the check is
// absent; a key absent after a crash stays absent.
package stress
