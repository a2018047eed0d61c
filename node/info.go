package node

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/logkv/logkv/replicate"
)

// info renders the INFO sections asked for (see infoWants).
func (n *Node) info(sections map[string]bool) string {
	var b strings.Builder
	section := func(name string, fill func(add func(k string, v any))) {
		if !infoWants(sections, name) {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "# %s\r\n", name)
		fill(func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) })
	}
	m := n.eng().Metrics()
	// One view for both sections that show the commit log, taken once
	// per INFO.
	rv := n.backend.Replication()
	section("Server", func(add func(string, any)) {
		add("redis_version", redisVersion)
		add("logkv_engine", n.cfg.Engine)
		add("redis_mode", n.redisMode())
		add("os", runtime.GOOS+" "+runtime.GOARCH)
		add("arch_bits", 64)
		add("go_version", runtime.Version())
		add("process_id", os.Getpid())
		add("tcp_port", portOf(n.Addr()))
		add("uptime_in_seconds", int64(time.Since(n.started).Seconds()))
		n.serverInfo(add)
	})
	section("Clients", func(add func(string, any)) {
		n.connsMu.Lock()
		add("connected_clients", len(n.conns))
		n.connsMu.Unlock()
		add("maxclients", n.cfg.Limits.MaxConnections)
		n.clientsInfo(add)
	})
	section("Memory", func(add func(string, any)) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		add("used_memory", ms.HeapAlloc)
		add("used_memory_rss", ms.Sys)
		add("engine_memory", m.MemBytes)
		n.memoryInfo(add)
	})
	section("Persistence", func(add func(string, any)) {
		add("loading", 0)
		persistenceInfo(rv, add)
		add("appendfsync", n.appendFsync())
		add("engine", n.cfg.Engine)
		add("engine_disk_bytes", m.DiskBytes)
		add("engine_last_seq", n.eng().LastSeq())
	})
	section("Stats", func(add func(string, any)) {
		add("total_connections_received", n.clientID.Load())
		add("total_commands_processed", n.metrics.commandsTotal())
		add("rejected_connections", int64(n.metrics.counterValue(n.metrics.rejected)))
		add("engine_gets", m.Gets)
		add("engine_writes", m.Writes)
		add("engine_bytes_written", m.BytesWritten)
		n.statsInfo(add)
	})
	section("Replication", func(add func(string, any)) { replicationInfo(rv, add) })
	n.moreInfo(section)
	section("Keyspace", n.keyspaceInfo)
	return b.String()
}

// redisMode is HELLO's mode and INFO's redis_mode: "cluster" on a cluster
// member, which answers CLUSTER and says cluster_enabled:1, as a
// redis-server with cluster-enabled yes says; "standalone" otherwise.
func (n *Node) redisMode() string {
	if _, ok := n.backend.(*clusterBackend); ok {
		return "cluster"
	}
	return "standalone"
}

// persistenceInfo adds INFO persistence's lines on the commit log: what a
// write's acknowledgement promises, and where the log stands.
func persistenceInfo(v replicationView, add func(string, any)) {
	st := v.log
	if st == nil {
		add("durability", "none")
		add("aof_enabled", 0)
		return
	}
	add("durability", "full")
	add("aof_enabled", 1)
	add("commitlog_last_seq", st.LastSeq)
	add("commitlog_durable_seq", st.DurableSeq)
	add("commitlog_first_seq", st.LogFirstSeq)
	add("commitlog_bytes", st.LogBytes)
	add("engine_durable_seq", st.CheckpointSeq)
	if v.writeErr != nil {
		add("aof_last_write_status", "err")
		add("aof_last_write_error", v.writeErr)
	} else {
		add("aof_last_write_status", "ok")
	}
}

// replicationInfo adds INFO replication's lines: Redis' role and offsets,
// then the commit log's and a cluster member's own. The lines follow the
// commit log's role, which a cluster member's stated role may not (it says
// slave while its log still leads, cluster.go).
func replicationInfo(v replicationView, add func(string, any)) {
	role := "slave"
	if v.master {
		role = "master"
	}
	add("role", role)
	st := v.log
	if st == nil || st.Role == replicate.Leader {
		add("connected_slaves", len(v.followers))
		for i, f := range v.followers {
			add(fmt.Sprintf("slave%d", i), fmt.Sprintf("id=%s,state=%s,offset=%d,lag=%.3f,lag_records=%d,lag_bytes=%d,resyncs=%d",
				f.ID, f.State, f.Durable, f.LagSeconds, f.LagRecords, f.LagBytes, f.Resyncs))
		}
	} else {
		add("master_addr", v.leaderAddr)
		add("master_link_status", st.State)
		add("master_last_seq", st.LeaderLast)
		add("slave_repl_offset", st.Applied)
		add("full_resyncs", st.Resyncs)
	}
	add("master_repl_offset", v.lastSeq)
	if st == nil {
		return // no commit log: nothing more to say
	}
	add("repl_epoch", st.Epoch)
	add("repl_durable_seq", st.DurableSeq)
	add("repl_log_first_seq", st.LogFirstSeq)
	add("repl_log_bytes", st.LogBytes)
	if v.cluster != nil {
		clusterReplicationInfo(v.cluster, add)
	}
}

// clusterReplicationInfo adds a cluster member's lines to INFO
// replication.
func clusterReplicationInfo(cv *memberView, add func(string, any)) {
	add("cluster_name", cv.name)
	if !cv.joined {
		return
	}
	if l := cv.leader; l != nil {
		add("cluster_leader_id", l.ID)
		add("cluster_leader_addr", l.RESP)
		add("cluster_leader_epoch", l.Epoch)
	} else {
		add("cluster_leader_id", "")
	}
	if cv.maxReadLag > 0 {
		add("cluster_read_lag_ms", cv.readLag.Milliseconds())
		add("cluster_max_read_lag_ms", cv.maxReadLag.Milliseconds())
	}
	add("cluster_leading_epoch", cv.leading)
	valid := 0
	if cv.leaseValid {
		valid = 1
	}
	add("cluster_lease_valid", valid)
	if cv.leading != 0 {
		add("cluster_lease_deadline_ms", cv.leaseLeft.Milliseconds())
	}
}
