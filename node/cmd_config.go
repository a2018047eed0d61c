package node

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// CONFIG GET, SET, RESETSTAT and REWRITE over Redis' parameter names.
//
// requirepass is not among them: CONFIG GET is open to every user here,
// and a password must not be readable by a read-only one.
//
// A node's configuration is its YAML file (Config); CONFIG GET shows it
// under the Redis names clients and exporters ask for. CONFIG SET changes
// what the node can change safely while it serves: the slow log and the
// latency monitor. The rest (password, appendfsync, limits) is read by every
// event loop without locks, so it is fixed for the life of the process: CONFIG
// SET names the config key to edit instead.

// configParam is one parameter CONFIG knows.
type configParam struct {
	name string
	// key is the config file's key for it, "" if it has none.
	key string
	get func(n *Node) string
	// set changes it at runtime to an integer in [lo, hi]; nil if it
	// cannot change.
	set    func(n *Node, v int64)
	lo, hi int64
	// hidden parameters are left out of pattern matches, as Redis hides
	// deprecated aliases.
	hidden bool
}

var configParams = []configParam{
	{name: "appendonly", get: func(*Node) string { return "yes" }},
	{name: "appendfsync", key: "appendfsync", get: func(n *Node) string { return n.cfg.AppendFsync }},
	{name: "save", get: func(*Node) string { return "" }},
	{name: "databases", key: "databases", get: func(n *Node) string { return strconv.Itoa(n.databases()) }},
	{name: "maxclients", key: "limits.max_connections", get: func(n *Node) string { return strconv.Itoa(n.cfg.Limits.MaxConnections) }},
	{name: "proto-max-bulk-len", key: "limits.max_value_size", get: func(n *Node) string { return strconv.Itoa(n.cfg.Limits.MaxValueSize) }},
	{name: "port", key: "listen", get: func(n *Node) string { return portOf(n.Addr()) }},
	{name: "bind", key: "listen", get: func(n *Node) string { h, _, _ := net.SplitHostPort(n.Addr()); return h }},
	{name: "dir", key: "data_dir", get: func(n *Node) string { return n.cfg.DataDir }},
	{name: "io-threads", key: "event_loops", get: func(n *Node) string { return strconv.Itoa(n.eventLoops()) }},
	{name: "maxmemory", get: func(*Node) string { return "0" }},
	{name: "maxmemory-policy", get: func(*Node) string { return "noeviction" }},
	{name: "timeout", get: func(*Node) string { return "0" }},
	{name: "replica-read-only", get: func(*Node) string { return "yes" }},
	{name: "slave-read-only", get: func(*Node) string { return "yes" }, hidden: true},
	{name: "repl-backlog-size", key: "replication.retention_bytes", get: func(n *Node) string { return strconv.FormatInt(n.cfg.Replication.RetentionBytes, 10) }},
	{name: "min-replicas-to-write", key: "replication.quorum", get: func(n *Node) string {
		if n.cfg.Replication.Ack != "sync" {
			return "0"
		}
		return strconv.Itoa(n.cfg.Replication.Quorum)
	}},
	{name: "slowlog-log-slower-than", lo: -1 << 63, hi: 1<<63 - 1,
		get: func(n *Node) string { return strconv.FormatInt(n.state().slowlog.slowerThan.Load(), 10) },
		set: func(n *Node, x int64) { n.state().slowlog.slowerThan.Store(x) }},
	{name: "slowlog-max-len", lo: 0, hi: maxSlowlogLen,
		get: func(n *Node) string { return strconv.FormatInt(n.state().slowlog.maxLen.Load(), 10) },
		set: func(n *Node, x int64) {
			s := &n.state().slowlog
			s.mu.Lock()
			s.maxLen.Store(x)
			s.trim()
			s.mu.Unlock()
		}},
	{name: "latency-monitor-threshold", lo: 0, hi: 1<<63 - 1,
		get: func(n *Node) string { return strconv.FormatInt(n.state().latency.threshold.Load(), 10) },
		set: func(n *Node, x int64) { n.state().latency.threshold.Store(x) }},
}

// visibleParams counts the parameters patterns can match.
var visibleParams = func() int {
	n := 0
	for _, p := range configParams {
		if !p.hidden {
			n++
		}
	}
	return n
}()

// parseConfigInt parses a CONFIG SET integer, with Redis' error texts.
func parseConfigInt(v string, lo, hi int64) (int64, error) {
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("argument couldn't be parsed into an integer")
	}
	if x < lo || x > hi {
		return 0, fmt.Errorf("argument must be between %d and %d inclusive", lo, hi)
	}
	return x, nil
}

func findConfigParam(name string) *configParam {
	for i := range configParams {
		if strings.EqualFold(configParams[i].name, name) {
			return &configParams[i]
		}
	}
	return nil
}

// cmdConfig: CONFIG GET pattern [pattern ...] | SET param value [param
// value ...] | RESETSTAT | REWRITE | HELP.
func cmdConfig(n *Node, c *client, args [][]byte) {
	sub, ok := subcommand(c, args)
	if !ok {
		return
	}
	switch sub {
	case "get":
		configGet(n, c, args[2:])
	case "set":
		if !n.checkAdmin(c) {
			return
		}
		configSet(n, c, args[2:])
	case "resetstat":
		s := n.state()
		for i := range s.stats {
			st := &s.stats[i]
			st.calls.Store(0)
			st.micros.Store(0)
			st.failed.Store(0)
			st.rejected.Store(0)
		}
		s.errMu.Lock()
		clear(s.errs)
		s.errMu.Unlock()
		c.conn.WriteString("OK")
	case "rewrite":
		// The parameters CONFIG SET changes are not in the config file, and
		// the node does not own the file it was started from (flags lay over
		// it): a rewrite could not round-trip it faithfully.
		c.fail("ERR CONFIG REWRITE is not supported: the parameters CONFIG SET changes (slowlog-*, latency-monitor-threshold) live only in the running node; put lasting settings in the node's YAML config file")
	case "help":
		writeHelp(c, "CONFIG",
			"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
			"SET <directive> <value>", "    Set the configuration <directive> to <value>.",
			"RESETSTAT", "    Reset statistics reported by the INFO command.",
			"REWRITE", "    Rewrite the configuration file.")
	}
}

// configGet answers every matching parameter once, however many patterns
// match it, so the reply is bounded by the parameter table whatever the
// request. A pattern without glob characters names one parameter (any
// case) and is answered under the name as given, as Redis does.
func configGet(n *Node, c *client, patterns [][]byte) {
	type kv struct{ k, v string }
	var out []kv
	seen := make(map[*configParam]bool)
	for _, p := range patterns {
		if !strings.ContainsAny(string(p), "[*?") {
			if cp := findConfigParam(string(p)); cp != nil && !seen[cp] {
				seen[cp] = true
				out = append(out, kv{string(p), cp.get(n)})
			}
			continue
		}
		if len(seen) >= visibleParams {
			break // everything a pattern can match is in: the rest adds nothing
		}
		for i := range configParams {
			cp := &configParams[i]
			if cp.hidden || seen[cp] || !globMatchFold(p, cp.name) {
				continue
			}
			seen[cp] = true
			out = append(out, kv{cp.name, cp.get(n)})
		}
	}
	c.conn.WriteMap(len(out))
	for _, e := range out {
		c.conn.WriteBulkString(e.k)
		c.conn.WriteBulkString(e.v)
	}
}

// globMatchFold matches name against pattern, case-insensitively as
// Redis' stringmatch(..., nocase=1).
func globMatchFold(pattern []byte, name string) bool {
	return globMatch([]byte(strings.ToLower(string(pattern))), []byte(name))
}

// configSet sets every pair or none: all are checked first.
func configSet(n *Node, c *client, args [][]byte) {
	if len(args)%2 != 0 {
		c.fail(wrongArity("config|set"))
		return
	}
	type change struct {
		p *configParam
		v string
	}
	var changes []change
	seen := map[*configParam]bool{}
	for i := 0; i < len(args); i += 2 {
		p := findConfigParam(string(args[i]))
		if p == nil {
			c.fail(fmt.Sprintf("ERR Unknown option or number of arguments for CONFIG SET - '%.128s'", args[i]))
			return
		}
		if seen[p] {
			c.fail(fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%.128s') - duplicate parameter", args[i]))
			return
		}
		seen[p] = true
		if p.set == nil {
			why := "logkv fixes it for the life of the process"
			if p.key != "" {
				why = fmt.Sprintf("set %s in the node's config file and restart it", p.key)
			}
			c.fail(fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%.128s') - not supported at runtime: %s", args[i], why))
			return
		}
		changes = append(changes, change{p, string(args[i+1])})
	}
	// Check all before applying any, so a failure changes nothing.
	vals := make([]int64, len(changes))
	for i, ch := range changes {
		x, err := parseConfigInt(ch.v, ch.p.lo, ch.p.hi)
		if err != nil {
			c.fail(fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%s') - %v", ch.p.name, err))
			return
		}
		vals[i] = x
	}
	for i, ch := range changes {
		ch.p.set(n, vals[i])
	}
	c.conn.WriteString("OK")
}
