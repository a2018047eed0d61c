// Package node runs a logkv node: a storage engine, optionally behind the
// replicated commit log, served over the Redis protocol (RESP2, and RESP3
// after HELLO 3) with an admin HTTP endpoint. cmd/kvnode is a thin main
// around it. docs/redis-compatibility.md lists what it serves of Redis 7 and
// how it differs.
//
// Start reading at writepath.go: its diagram walks one write from the
// socket to the acknowledgement, naming each stage's function and file,
// and it holds the backend interface every write goes through.
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
// in command order, all OK or each the batch's error (writepath.go, the
// queue stage).
//
// # Keyspace, atomicity and transactions
//
// Every data command runs on a tx (keyspace.go, which documents the engine
// encoding byte by byte and how to write a command): it holds the striped
// locks of the keys it names, reads through its own writes, never sees an
// expired key, and commits all its writes as one logkv.Batch, one
// commit-log record. So a command is atomic against every other command on
// the same keys, as in Redis, and atomic for readers, followers and crash
// recovery. MULTI/EXEC runs its commands on one shared tx: a transaction is
// one batch too (multi.go); WATCH is watch.go.
//
// # Expiry
//
// A key's deadline is in its value's header and in an index by deadline.
// No command sees a key past its deadline; the leader deletes expired keys
// lazily and actively (exactly those due, a bounded number a second), and
// followers get the deletes through the commit log (expire.go).
//
// # Databases, FLUSHDB, DBSIZE
//
// SELECT picks one of 16 databases (databases in the config). A flush is one
// write that moves the database to a new generation; the old one is swept in
// the background. DBSIZE counts the live keys of the current generation:
// exact on every engine (it equals a full SCAN), at a cost of O(keys), off
// the event loop. INFO keyspace shows the last such count, taken at most
// once a second on a goroutine (flush.go).
//
// # SCAN cursors
//
// Keys are stored by hash slot, then key (keyspace format 2, keyspace.go),
// so SCAN walks them in that order. A cursor names the next key: exactly,
// through the 4096 newest cursors a node remembers, and approximately
// through its slot and the key's first 2 bytes, which the cursor carries. So a
// cursor keeps working after a restart, on another node, and after many
// newer scans: resuming from the approximate position returns some keys
// again, as SCAN's contract allows, and misses none (node.go, cursors).
//
// # Access
//
// Who may connect and run what is access.go's: a default user whose
// password is the password key (or -requirepass, -requirepass-file,
// KVNODE_PASSWORD), further users with readonly, readwrite or admin access,
// and Redis' protected mode. Administrative commands are default-deny: a node
// without a password refuses them to everyone, with an error saying how to
// enable them. Protected mode refuses clients (it does not refuse to start):
// while the default user has no password, a client from beyond loopback gets
// Redis' DENIED error. Failed AUTH is throttled per source address by
// delaying the reply and refusing unchecked attempts during the backoff, on
// timers, never by sleeping on a loop. A panic in a command is that client's
// ERR internal error, logged and counted; the node lives (recover.go).
//
// # Memory clients can make the node hold
//
// Every client's unsent replies are counted as they are produced and bounded
// by client_output_buffer_limit: past the soft limit its pipeline stops until
// it reads, past the hard limit (or over soft for soft_seconds) it is closed
// and its output freed. Input not yet run is bounded per client
// (limits.client_query_buffer_limit) and for all clients together
// (limits.query_buffer_budget); before AUTH a request has at most 10
// arguments of 16 KiB, as in Redis. So, besides the engine's memory and
// gnet's small per-connection buffers, clients can make the node hold at
// most
//
//	query_buffer_budget + max_connections x (hard + max_value_size)
//
// (limits.go; example.yaml has the defaults' figure). Requests are parsed
// once however they are split into reads (resp.go), and MATCH patterns are
// capped at 1 KiB (glob.go).
//
// # Automatic failover
//
// With cluster.etcd_endpoints and cluster.name (-etcd, -cluster), a node is
// a member of a cluster that fails over by itself (cluster.go; the etcd
// layout and rules are docs/cluster.md, the election replicate/coord). Only
// the elected leader takes writes, and acknowledges them only while its
// lease is valid by its own clock: past its fencing deadline it answers
// -TRYAGAIN, once deposed -READONLY, as do followers. Every member answers
// the Redis Sentinel commands (sentinel.go), so Sentinel clients find the
// leader. When etcd is unreachable the leader stops acknowledging at its
// deadline and steps down once the lease is lost, followers keep serving
// reads, and the cluster elects again when etcd is back: Patroni's
// behaviour, for Patroni's reason (a leader that cannot prove it leads must
// not take writes). Without etcd configured, nothing of this runs.
package node
