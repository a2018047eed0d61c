// Package sim simulates a sharded logkv cluster's coordination against one
// etcd, to measure what it costs etcd (issue #20, docs/cluster-scale.md).
//
// Each simulated member is what a kvnode runs towards etcd, and nothing
// else: its own etcd client; a coord.Member (lease renewed every TTL/3,
// progress reports, election and failover) driving a stand-in replica whose
// log is a counter; and node/route.go's slot watcher, coord.WatchRouting:
// one read of the map and every leader, then each watch event applied. The
// requests are a kvnode's because the code is.
//
// Run goes through four phases:
//
//  1. start: every member at once; wait until each shard has exactly one
//     leader that all its members follow, write the slot map (even ranges,
//     as kvnode cluster init does) and wait until every router read it and
//     every leader;
//  2. quiet: measure etcd's request rates, CPU and RSS with nothing changing;
//  3. map updates: flip 8 slots to the next shard in a transaction on the
//     map's version, as a move's flip does, and time until every router
//     read it;
//  4. kills: close leaders' clients without revoking their leases (a
//     SIGKILL), time until a successor leads and every router read it,
//     restart them.
//
// Costs come from etcd's own /metrics (gRPC requests by method, watch
// events, proposals, WAL fsyncs, db size) and /proc of its process (CPU,
// RSS), so they count what etcd did, not what the members believe they
// asked.
//
// What it does not model: replication traffic between members (it does not
// touch etcd), clients' CLUSTER commands (each reads etcd once), kvnode
// cluster status, and the slot map's decoding (node/slots.go) beyond its
// shard names.
package sim
