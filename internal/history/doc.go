// Package history is a replicated history checker for kvnode, in the style of
// Jepsen and etcd's robustness tests.
//
// Run starts a three-node kvnode cluster (a leader and two followers) as
// child processes, drives it with concurrent clients doing random GET and SET
// (with unique values) on a small key set, and records every operation's call
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
// # Async mode
//
// With -ack async a failover may lose acknowledged writes, so linearizability
// is not claimed. Instead each failover measures the loss window: the number
// of SETs acknowledged before the old leader was killed that are ordered after
// the value the new leader holds for their key (see LossAt).
package history
