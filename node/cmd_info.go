package node

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// INFO's sections beyond the engine's and replication's (info.go): the
// fields clients and exporters (redis_exporter, Datadog, redis-cli --stat)
// read, in Redis' names. A field logkv cannot measure is left out rather
// than reported as a made-up number, except where Redis' own meaning makes
// the value exact (blocked_clients counts the clients a CLIENT PAUSE holds,
// the only thing that blocks a client in kvnode, as Redis counts them).

// infoDefault are the sections INFO shows without arguments, as Redis 7.
var infoDefault = map[string]bool{"server": true, "clients": true, "memory": true, "persistence": true,
	"stats": true, "replication": true, "cpu": true, "modules": true, "errorstats": true, "cluster": true, "keyspace": true}

// infoWants reports whether INFO with the asked sections shows section.
func infoWants(asked map[string]bool, section string) bool {
	s := strings.ToLower(section)
	switch {
	case asked[s], asked["all"], asked["everything"]:
		return true
	case len(asked) == 0, asked["default"]:
		return infoDefault[s]
	}
	return false
}

// cmdInfo: INFO [section ...]. A verbatim string in RESP3, as in Redis.
func cmdInfo(n *Node, c *client, args [][]byte) {
	n.publishTally(c) // the commands before it in its pipeline are counted
	sections := map[string]bool{}
	for _, a := range args[1:] {
		sections[strings.ToLower(string(a))] = true
	}
	c.conn.WriteVerbatim(n.info(sections))
}

// runID is the process's run id: random, 40 hex digits, as Redis'.
var runID = sync.OnceValue(func() string {
	var b [20]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
})

// serverInfo adds INFO server's fields beyond info.go's.
func (n *Node) serverInfo(add func(string, any)) {
	up := time.Since(n.started)
	add("run_id", runID())
	add("server_time_usec", time.Now().UnixMicro())
	add("uptime_in_days", int64(up.Hours()/24))
	add("hz", 10)
	add("configured_hz", 10)
	exe, _ := os.Executable()
	add("executable", exe)
	add("io_threads_active", 0)
	add("event_loops", n.eventLoops())
}

// clientsInfo adds INFO clients' fields beyond info.go's.
func (n *Node) clientsInfo(add func(string, any)) {
	add("blocked_clients", n.state().pause.waiting.Load())
	add("tracking_clients", 0)
	add("monitors", n.state().monitors.count.Load())
}

// memoryInfo adds INFO memory's fields beyond info.go's: the Go heap as
// used_memory, what the process got from the OS as used_memory_rss.
func (n *Node) memoryInfo(add func(string, any)) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	add("used_memory_human", humanBytes(ms.HeapAlloc))
	add("used_memory_rss_human", humanBytes(ms.Sys))
	add("maxmemory", 0)
	add("maxmemory_human", "0B")
	add("maxmemory_policy", "noeviction")
	add("mem_allocator", "go-"+runtime.Version())
}

// statsInfo adds INFO stats' fields beyond info.go's.
func (n *Node) statsInfo(add func(string, any)) {
	s := n.state()
	s.errMu.Lock()
	total := int64(0)
	for _, v := range s.errs {
		total += v
	}
	s.errMu.Unlock()
	add("total_error_replies", total)
	n.expireInfo(add) // expire.go
	add("evicted_keys", 0)
	// As Redis's, but counting GET's lookups only (Redis also counts
	// MGET's, EXISTS', ... and every other read's); a pipeline's are added
	// when it ends, or by publishTally above when INFO runs within it.
	add("keyspace_hits", s.hits.Load())
	add("keyspace_misses", s.misses.Load())
	add("pubsub_channels", 0)
	add("pubsub_patterns", 0)
}

// moreInfo adds the sections info.go does not render: CPU, Commandstats,
// Errorstats and Cluster.
func (n *Node) moreInfo(section func(string, func(func(string, any)))) {
	section("CPU", func(add func(string, any)) {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			add("used_cpu_sys", fmt.Sprintf("%.6f", tvSeconds(ru.Stime)))
			add("used_cpu_user", fmt.Sprintf("%.6f", tvSeconds(ru.Utime)))
		}
		if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
			add("used_cpu_sys_children", fmt.Sprintf("%.6f", tvSeconds(ru.Stime)))
			add("used_cpu_user_children", fmt.Sprintf("%.6f", tvSeconds(ru.Utime)))
		}
	})
	s := n.state()
	section("Commandstats", func(add func(string, any)) {
		for _, cm := range commandList {
			st := &s.stats[cm.id]
			calls, micros, rejected := st.calls.Load(), st.micros.Load(), st.rejected.Load()
			if calls == 0 && rejected == 0 {
				continue
			}
			per := 0.0
			if calls > 0 {
				per = float64(micros) / float64(calls)
			}
			add("cmdstat_"+cm.name, fmt.Sprintf("calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d",
				calls, micros, per, rejected, st.failed.Load()))
		}
	})
	section("Errorstats", func(add func(string, any)) {
		s.errMu.Lock()
		names := make([]string, 0, len(s.errs))
		for k := range s.errs {
			names = append(names, k)
		}
		sort.Strings(names)
		counts := make([]int64, len(names))
		for i, k := range names {
			counts[i] = s.errs[k]
		}
		s.errMu.Unlock()
		for i, k := range names {
			add("errorstat_"+k, fmt.Sprintf("count=%d", counts[i]))
		}
	})
	section("Cluster", n.clusterInfoSection) // route.go
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// humanBytes formats b as Redis' bytesToHuman does (1.61M, 23.54G).
func humanBytes(b uint64) string {
	f := float64(b)
	for _, u := range []string{"B", "K", "M", "G", "T", "P"} {
		if f < 1024 || u == "P" {
			if u == "B" {
				return fmt.Sprintf("%dB", b)
			}
			return fmt.Sprintf("%.2f%s", f, u)
		}
		f /= 1024
	}
	return ""
}
