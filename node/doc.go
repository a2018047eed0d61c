// Package node runs a logkv node: a storage engine, optionally behind the
// replicated commit log, served over the Redis protocol (RESP2) with an admin
// HTTP endpoint. cmd/kvnode is a thin main around it.
//
// # Durability of acknowledged writes
//
// A write command is acknowledged only once it is durable: the node applies
// the writes of a client's pipeline, then makes them durable with one Sync
// before any reply of that pipeline is sent. That Sync is shared by every
// pipeline its event loop served meanwhile (server.go), so a pipelined burst
// of N writes, from one client or many, costs one fsync, not N.
//
// # Serving
//
// Clients are served by event loops (gnet), event_loops of them, as Redis
// serves them from its one: a loop runs each ready connection's complete
// requests and writes its replies with one system call. What may wait long
// (WAIT, REPLICAOF, writes under sync replication) runs on a goroutine of its
// own while the loop serves the other connections; the client's replies keep
// their order. Requests are parsed by resp.go, which checks every length
// against limits before trusting it.
//
// Blind writes (a plain SET key value, MSET) go further: a run of them in a
// pipeline reaches the backend as one batch (one commit-log record, one
// engine apply, one record shipped to followers), up to 1 MiB, at the end of
// the pipeline or before any other command. Their replies are written then,
// in command order, all OK or each the batch's error (see pending.go).
//
// # Atomicity
//
// Commands that read before they write (SET NX/XX/GET, INCR, DEL's count,
// MSET's batch) hold striped per-key locks across the read and the write, so
// they are atomic against every other command on the same keys, as in Redis.
//
// # DBSIZE
//
// DBSIZE (and INFO's keyspace line) report the engine's key count in O(1):
// exact for memory and bitcask, an estimate for lsm, which counts versions
// that compaction has not merged yet. SCAN counts exactly.
//
// # SCAN cursors
//
// Keys are ordered, so SCAN walks them in order. A cursor is a number naming
// a position the node remembers (the next key); the node keeps the most
// recent 4096 cursors, and an expired one is an error asking to restart the
// scan from 0.
package node
