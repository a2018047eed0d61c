package node

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
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
		n.persistenceInfo(add)
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
	section("Replication", n.backend.Info)
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
