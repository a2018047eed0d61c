// Package history is a replicated history checker for kvnode, in the style of
// Jepsen and etcd's robustness tests.
//
// Run starts a three-node kvnode cluster (a leader and two followers, on
// any engine) as child processes, drives it with concurrent clients doing
// random GET and SET (with unique values) on a small key set, or the
// expiry workload below, and records every operation's call
// time, return time and result. A nemesis injects faults meanwhile: SIGKILL and
// restart of a follower, SIGSTOP/SIGCONT of any node, and failover (the leader
// is killed, the most advanced follower is promoted with REPLICAOF NO ONE, the
// other follower and the restarted old leader follow it), and, with root and
// iproute2, network partitions: each node then runs in its own network
// namespace on a private 10.251.X.0/24 subnet, joined by veth to a bridge,
// and a partition takes one node's veth down (see netlab). Without root the
// partition fault is skipped and Result.PartitionSkip says why.
//
// Faults are serialised (each healed before the next). Failover kills the old
// leader rather than demoting it live: a live old leader would keep serving
// reads and taking writes until it processed REPLICAOF, and that split-brain
// window is a property of unfenced Redis-style failover, not of the
// replication under test. The old leader rejoins with -replicaof.
//
// # Automatic failover
//
// With Config.Auto (kvhistory -auto) the nodes join a cluster through a
// real etcd (Debian's etcd-server, started by Run; in its own namespace
// with a netlab) and elect their leader themselves; clients find it with
// SENTINEL get-master-addr-by-name, as Sentinel clients do, and look again
// after any error. The nemesis hurts only the current leader and never
// promotes: it SIGKILLs it (restarting it once another leads), SIGSTOPs it
// until another leads, or cuts it off from a random combination of its
// followers, etcd and the clients (blackhole routes in its namespace).
// Every leader key etcd holds is recorded (Result.Elections); a run that
// saw no leader change fails, as does one that saw fewer than
// Config.Failovers. After each failover the new leader's keys are read as
// soon as it says it is master, and LossAt counts the writes acknowledged
// before that read which it lacks.
//
// # Shards
//
// With Config.Shards (kvhistory -shards N) the nodes are N shards of
// Config.PerShard nodes, each electing its leader through etcd, with the
// hash slots spread by kvnode cluster init. Clients route by slot as Redis
// Cluster clients do, by hand so that each outcome is known (half learn
// the slots from CLUSTER SLOTS, half from MOVED replies alone), and follow
// MOVED and ASK; a redirect or CLUSTERDOWN proves the command did not run.
// The nemesis kills shards' leaders (and measures each failover's loss on
// the new leader's keys) and moves slots holding the workload's keys
// between shards (kvnode cluster move-slots). The check is the one below:
// it is per key, and a key lives in one shard at a time (shards.go).
//
// # Checking
//
// Check verifies the history with porcupine against a key/value model
// partitioned per key (each key a register). Operations are kept or dropped by
// what their outcome proves:
//
//   - a SET answered OK, or a GET whose value was read while the node reported
//     itself master both before and after (ROLE, GET, ROLE in one pipeline), is
//     kept with its real interval;
//   - a SET that failed definitely before it could apply (READONLY, connection
//     refused) is dropped; so is any failed GET, which has no effect;
//   - a SET with an unknown outcome (timeout, connection reset, quorum
//     timeout) is kept with an infinite return time: it may have applied at
//     any point after its call.
//
// # Expiry
//
// The expiry workload (Config.Workload = WorkloadExpiry) adds deadlines:
// clients SET with and without PXAT, PEXPIREAT, PERSIST, GET and PTTL,
// with deadlines 50-500 ms ahead by their wall clock, so keys expire
// during the run, on the leader and its followers, and across failovers.
// Deadlines are absolute, so a key's value and deadline after a write do
// not depend on when the node received it. The model (step) is a register
// with a deadline D: a key is present for an operation that takes effect
// before D and absent for one at or after D (the node expires a key when
// its clock reaches the deadline). An operation takes effect at one moment
// in [call, return], no earlier than the operation before it on the key;
// the model follows, per key, the earliest such moment that explains each
// result (Skew widens each side of a deadline), so a read near a deadline
// may go either way but an expired key never comes back, and a failover
// that resurrects an expired key or loses a live one is not linearizable.
// Deadlines travel on the wall clock and Call/Return on the monotonic one:
// each Op records both at its call (Op.Wall) to convert between them.
//
// # Async mode
//
// With -ack async a failover may lose acknowledged writes, so linearizability
// is not claimed. Instead each failover measures the loss window: the number
// of SETs acknowledged before the old leader was killed that are ordered after
// the value the new leader holds for their key (see LossAt).
package history
