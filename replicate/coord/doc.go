// Package coord coordinates a replica group's leadership through etcd, in
// the layout of docs/cluster.md: who is a member, who leads which shard
// (and since which etcd revision, the epoch), and how far each member's log
// is durable. It never writes consensus of its own: etcd decides, and the
// commit log's epochs keep a deposed leader's records away from followers of
// the new one.
//
// # Keys
//
// Under /logkv/<cluster>/, values are JSON objects with "v": 1:
//
//	members/<id>                 {"v":1,"id","shard","resp","repl","priority","never_leader"}  (member's lease)
//	shards/<shard>/leader        {"v":1,"id","resp","repl"}                                     (leader's lease)
//	shards/<shard>/sync          {"v":1,"set":[ids],"quorum":q,"epoch":e}                       (no lease)
//	shards/<shard>/progress/<id> {"v":1,"durable":seq,"epoch":e,"after":e}                      (member's lease)
//	shards/<shard>/handoff       {"v":1,"target":id}                                            (leader's lease)
//	shards/<shard>/drained/<id>  {"v":1}                                                        (no lease)
//	leaders/<shard>              the leader key's value, ModRevision = the epoch                (leader's lease)
//
// leaders/<shard>, the route key, is written in the election's transaction
// with the leader key and deleted in every transaction that deletes it: it
// is what routers read and watch (one prefix for every shard: routing.go),
// never what an election or fencing decides by.
//
// The epoch of a leadership is the CreateRevision of its leader key: etcd's
// revisions only grow, so epochs are ordered across the cluster's whole
// history with no counter of ours.
//
// # Leadership and fencing
//
// A Member holds one lease, renewed every TTL/3 on a keep-alive stream kept
// open (renew.go). A renewal unanswered for TTL/6 is sent again on a new
// stream, which gRPC's round-robin opens to the next etcd member (the first
// may hang, and gRPC's keep-alive can take longer than the TTL to notice),
// at most four waiting at once. Each stream has one request in flight and
// its own send time, and one whose answer failed or can no longer help is
// closed, so each answer is known to be to the request sent on its stream.
// Valid reports whether the lease is certainly still alive by the member's
// own monotonic clock: until t0 + TTL - margin, where t0 is when the renewal
// that last succeeded was sent (etcd cannot expire the lease before t0 + TTL
// by its own clock) and the margin (a quarter of the TTL by default) covers
// clock drift. A leader acknowledges writes only while Valid, so by the time
// any other member can create the leader key, the old leader has stopped
// acknowledging.
//
// Run drives a member: it watches the leader key, follows whoever holds
// it, and, when the key is gone, waits Settle for every member's progress
// report, then runs only if the take-over rule lets it (Eligible):
//
//   - never_leader (Redis's replica-priority 0) never runs, nor does a
//     drained member (Drain: kvnode cluster drain), which is no candidate
//     either, until Undrain;
//   - async: the member must hold the newest log among the live progress
//     keys of eligible members, compared as Raft compares logs: the newer
//     epoch first, then the higher durable seq (Progress.Ahead; ties:
//     higher priority, then the smaller id);
//   - sync: the leader recorded the synchronous set S and quorum q in the
//     sync key; a candidate must see live progress of at least |S|-q+1
//     members of S, itself included, and hold the newest log among them
//     (Progress.Ahead), or the shard waits rather than lose an
//     acknowledged write. It counts only progress sampled after the last
//     leadership ended (Progress.After at least the sync key's epoch): a
//     member that sees the leader key absent reports at once.
//
// In sync mode the set is what replication counts, not only what etcd
// says: the leader tells its replica which followers count towards the
// quorum (Replica.SetSyncSet), records a larger set before it counts the
// new members, and counts fewer members before it records a smaller set,
// once those that stay hold every acknowledged write (syncset.go). A new
// leader keeps the set it inherits (with the live members added) until
// then, since a member gone may be one of the quorum of an acknowledged
// write.
//
// # etcd unreachable
//
// As with Patroni: a leader that cannot renew its lease stops acknowledging
// writes at its fencing deadline (Valid turns false), and steps down once
// the lease is known lost or a whole TTL has passed since its last renewal
// was sent (then etcd has let it go, unless a renewal whose answer was
// lost reached it), forgetting whom etcd names until it reads etcd again;
// followers keep following the leader they know and serve reads; when etcd is back, the lease is either still alive (the
// leader resumes) or gone (a new member is elected, and the old leader,
// which re-registers with a new lease, follows it). Patroni's reason is
// ours: a leader that cannot prove it still leads must not take writes.
// Unlike Patroni, a leader does not demote itself by restarting: it
// refuses writes until told who leads.
package coord
