package node

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// CONFIG GET, SET, RESETSTAT and REWRITE over Redis' parameter names.
//
// requirepass is not shown by CONFIG GET: CONFIG GET is open to every user
// here, and a password must not be readable by a read-only one. CONFIG SET
// requirepass (admin only) works.
//
// A node's configuration is its YAML file (Config); CONFIG GET shows it
// under the Redis names clients and exporters ask for. CONFIG SET changes
// what the node can change safely while it serves: the password, the client
// limits and timeout (published as a new immutable settings value the event
// loops load, limits.go), the slow log and the latency monitor. The rest is
// fixed for the life of the process, and CONFIG SET names the config key to
// edit instead. appendfsync switches the commit log's sync policy
// (setAppendFsync says what that means for writes in flight). CONFIG REWRITE writes what CONFIG SET changed into the
// file the node was started from (config_rewrite.go).

// configParam is one parameter CONFIG knows.
type configParam struct {
	name string
	// key is the config file's key for it, "" if it has none.
	key string
	get func(n *Node) string
	// set checks v and returns what applies it, or an error in Redis'
	// words ("argument must be ..."); nil if the parameter cannot change
	// at runtime. Every pair of a CONFIG SET is checked before any is
	// applied.
	set func(n *Node, v string) (func(), error)
	// rewrite sets the parameter's current value in the config file's
	// tree (config_rewrite.go); nil for those CONFIG SET cannot change.
	rewrite func(n *Node, doc *yamlDoc) error
	// hidden parameters are left out of pattern matches, as Redis hides
	// deprecated aliases; secret ones are never shown.
	hidden, secret bool
}

var configParams = []configParam{
	{name: "appendonly", get: func(*Node) string { return "yes" }},
	{name: "appendfsync", key: "appendfsync", get: (*Node).appendFsync, set: setAppendFsync,
		rewrite: func(n *Node, doc *yamlDoc) error {
			return doc.set("appendfsync", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: n.appendFsync()})
		}},
	{name: "save", get: func(*Node) string { return "" }},
	{name: "databases", key: "databases", get: func(n *Node) string { return strconv.Itoa(n.databases()) }},
	{name: "maxclients", key: "limits.max_connections", get: func(n *Node) string { return strconv.Itoa(n.settings().maxClients) },
		set: setMaxClients, rewrite: rewriteInt("limits.max_connections", func(s *settings) int64 { return int64(s.maxClients) })},
	{name: "proto-max-bulk-len", key: "limits.max_value_size", get: func(n *Node) string { return strconv.Itoa(n.cfg.Limits.MaxValueSize) }},
	{name: "client-query-buffer-limit", key: "limits.client_query_buffer_limit", get: func(n *Node) string { return strconv.Itoa(n.settings().queryLimit) },
		set: setQueryBufferLimit, rewrite: rewriteInt("limits.client_query_buffer_limit", func(s *settings) int64 { return int64(s.queryLimit) })},
	{name: "client-output-buffer-limit", key: "client_output_buffer_limit", get: func(n *Node) string { return formatOutputLimits(n.settings().out) },
		set: setOutputBufferLimit, rewrite: rewriteOutputLimits},
	{name: "requirepass", key: "password", secret: true, set: setRequirePass, rewrite: rewritePassword},
	{name: "port", key: "listen", get: func(n *Node) string { return portOf(n.Addr()) }},
	{name: "bind", key: "listen", get: func(n *Node) string { h, _, _ := net.SplitHostPort(n.Addr()); return h }},
	{name: "dir", key: "data_dir", get: func(n *Node) string { return n.cfg.DataDir }},
	{name: "io-threads", key: "event_loops", get: func(n *Node) string { return strconv.Itoa(n.eventLoops()) }},
	{name: "maxmemory", get: func(*Node) string { return "0" }},
	{name: "maxmemory-policy", get: func(*Node) string { return "noeviction" }},
	{name: "timeout", key: "timeout", get: func(n *Node) string { return strconv.FormatInt(int64(n.settings().timeout/time.Second), 10) },
		set: setTimeout, rewrite: rewriteInt("timeout", func(s *settings) int64 { return int64(s.timeout / time.Second) })},
	{name: "replica-read-only", get: func(*Node) string { return "yes" }},
	{name: "slave-read-only", get: func(*Node) string { return "yes" }, hidden: true},
	{name: "repl-backlog-size", key: "replication.retention_bytes", get: func(n *Node) string { return strconv.FormatInt(n.cfg.Replication.RetentionBytes, 10) }},
	{name: "min-replicas-to-write", key: "replication.quorum", get: func(n *Node) string {
		if n.cfg.Replication.Ack != "sync" {
			return "0"
		}
		return strconv.Itoa(n.cfg.Replication.Quorum)
	}},
	{name: "slowlog-log-slower-than", key: "slowlog_log_slower_than",
		get: func(n *Node) string { return strconv.FormatInt(n.state().slowlog.slowerThan.Load(), 10) },
		set: setInt(-1<<63, 1<<63-1, func(n *Node, x int64) { n.state().slowlog.slowerThan.Store(x) }),
		rewrite: func(n *Node, doc *yamlDoc) error {
			return doc.setInt("slowlog_log_slower_than", n.state().slowlog.slowerThan.Load())
		}},
	{name: "slowlog-max-len", key: "slowlog_max_len",
		get: func(n *Node) string { return strconv.FormatInt(n.state().slowlog.maxLen.Load(), 10) },
		set: setInt(0, maxSlowlogLen, func(n *Node, x int64) {
			s := &n.state().slowlog
			s.mu.Lock()
			s.maxLen.Store(x)
			s.trim()
			s.mu.Unlock()
		}),
		rewrite: func(n *Node, doc *yamlDoc) error {
			return doc.setInt("slowlog_max_len", n.state().slowlog.maxLen.Load())
		}},
	{name: "latency-monitor-threshold", key: "latency_monitor_threshold",
		get: func(n *Node) string { return strconv.FormatInt(n.state().latency.threshold.Load(), 10) },
		set: setInt(0, 1<<63-1, func(n *Node, x int64) { n.state().latency.threshold.Store(x) }),
		rewrite: func(n *Node, doc *yamlDoc) error {
			return doc.setInt("latency_monitor_threshold", n.state().latency.threshold.Load())
		}},
}

// rewriteInt is a rewrite of an integer setting at key.
func rewriteInt(key string, v func(s *settings) int64) func(n *Node, doc *yamlDoc) error {
	return func(n *Node, doc *yamlDoc) error { return doc.setInt(key, v(n.settings())) }
}

// setInt is a set of an integer in [lo, hi].
func setInt(lo, hi int64, apply func(n *Node, x int64)) func(n *Node, v string) (func(), error) {
	return func(n *Node, v string) (func(), error) {
		x, err := parseConfigInt(v, lo, hi)
		if err != nil {
			return nil, err
		}
		return func() { apply(n, x) }, nil
	}
}

// syncSwitcher is a backend whose sync policy can change while it runs:
// the commit log's (replicate.Replica.SetSyncInterval).
type syncSwitcher interface {
	SetSyncInterval(time.Duration) error
}

// setAppendFsync switches between always (a write is acknowledged after
// its fsync) and everysec (once the operating system has it, fsynced in the
// background within a second, usually within milliseconds) while the node
// runs. What it means for writes in flight:
//
//   - to always: CONFIG SET replies OK only after one fsync of everything
//     written so far, so every write acknowledged after the OK is durable,
//     including writes whose pipeline started under everysec. Writes
//     acknowledged before the OK under everysec were never promised more.
//   - to everysec: pipelines that begin after the switch are acknowledged
//     without waiting for their fsync; those already waiting for one finish
//     as under always.
//
// "no" (let the operating system flush when it likes) is refused: the
// commit log never leaves syncing to the kernel alone; everysec is the
// nearest. A node with durability none has no commit log, and its engine
// syncer is set up at start.
func setAppendFsync(n *Node, v string) (func(), error) {
	switch v = strings.ToLower(v); v {
	case "always", "everysec":
	case "no":
		return nil, errors.New("appendfsync no is not offered: the commit log is always fsynced, at the latest within a second; use everysec")
	default:
		return nil, errors.New("argument(s) must be one of the following: everysec, always, no")
	}
	if v == n.appendFsync() {
		return func() {}, nil
	}
	sw, ok := n.backend.(syncSwitcher)
	if !ok {
		return nil, fmt.Errorf("not supported at runtime with durability none: set appendfsync: %s in the node's config file (or -appendfsync) and restart it", v)
	}
	return func() {
		every := time.Duration(0)
		if v == "everysec" {
			every = time.Second
		}
		if err := sw.SetSyncInterval(every); err != nil {
			// A failed fsync fails the commit log for good: no later write
			// is acknowledged, so the promise above still holds.
			n.log.Error("CONFIG SET appendfsync: syncing the commit log failed", "err", err)
		}
		n.state().appendFsync.Store(&v)
		n.log.Info("appendfsync switched", "appendfsync", v)
	}, nil
}

// appendFsync is the appendfsync in force: the config's, or CONFIG SET's.
func (n *Node) appendFsync() string {
	if v := n.state().appendFsync.Load(); v != nil {
		return *v
	}
	return n.cfg.AppendFsync
}

// redisText is an error in Redis' own words, capitals and full stop
// included, for a reply that must match redis-server's.
type redisText string

func (e redisText) Error() string { return string(e) }

// maxClientsReserved is how many file descriptors maxclients leaves for
// the node's own files (Redis reserves 32 too).
const maxClientsReserved = 32

func setMaxClients(n *Node, v string) (func(), error) {
	x, err := parseConfigInt(v, 1, math.MaxUint32) // Redis' range
	if err != nil {
		return nil, err
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < math.MaxInt32 && x > int64(lim.Cur)-maxClientsReserved {
		return nil, redisText(fmt.Sprintf("The operating system is not able to handle the specified number of clients, try with %d", max(1, int64(lim.Cur)-maxClientsReserved)))
	}
	return func() { n.changeSettings(func(s *settings) { s.maxClients = int(x) }) }, nil
}

func setTimeout(n *Node, v string) (func(), error) {
	x, err := parseConfigInt(v, 0, maxTimeout)
	if err != nil {
		return nil, err
	}
	return func() {
		n.changeSettings(func(s *settings) { s.timeout = time.Duration(x) * time.Second })
		select {
		case n.sec.timeoutKick <- struct{}{}: // the reaper picks the new timeout up now
		default:
		}
	}, nil
}

// setQueryBufferLimit: a client's input must still fit a whole request
// (limits.max_request_size) and stay within what all clients may buffer
// (limits.query_buffer_budget).
func setQueryBufferLimit(n *Node, v string) (func(), error) {
	x, ok := parseMemory(v)
	if !ok {
		return nil, errors.New("argument must be a memory value")
	}
	lo, hi := int64(n.cfg.Limits.MaxRequestSize), n.settings().budget
	if x < lo || x > hi {
		return nil, fmt.Errorf("argument must be between %d and %d inclusive", lo, hi)
	}
	return func() { n.changeSettings(func(s *settings) { s.queryLimit = int(x) }) }, nil
}

// setOutputBufferLimit parses Redis' "class hard soft seconds [class hard
// soft seconds ...]", classes normal, replica (or slave) and pubsub, over
// the current limits. Unlike Redis, a soft limit over a hard one is
// refused, as the config file refuses it: the pipeline pauses at the soft
// limit, which must come first.
func setOutputBufferLimit(n *Node, v string) (func(), error) {
	f := strings.Fields(v)
	if len(f) == 0 || len(f)%4 != 0 {
		return nil, redisText("Wrong number of arguments in buffer limit configuration.")
	}
	out := n.settings().out
	for i := 0; i < len(f); i += 4 {
		var l *OutputBufferLimit
		switch strings.ToLower(f[i]) {
		case "normal":
			l = &out.Normal
		case "replica", "slave":
			l = &out.Replica
		case "pubsub":
			l = &out.Pubsub
		default:
			return nil, redisText("Invalid client class specified in buffer limit configuration.")
		}
		hard, ok1 := parseMemory(f[i+1])
		soft, ok2 := parseMemory(f[i+2])
		secs, ok3 := redisInt([]byte(f[i+3]))
		if !ok1 || !ok2 || !ok3 || secs < 0 || secs > math.MaxInt32 {
			return nil, redisText("Error in hard, soft or soft_seconds setting in buffer limit configuration.")
		}
		if hard > 0 && soft > hard {
			return nil, fmt.Errorf("soft limit %d is over hard limit %d for class %s: the pipeline pauses at the soft limit, so it must come first", soft, hard, strings.ToLower(f[i]))
		}
		*l = OutputBufferLimit{Hard: hard, Soft: soft, SoftSeconds: int(secs)}
	}
	return func() { n.changeSettings(func(s *settings) { s.setOutputLimits(out) }) }, nil
}

// formatOutputLimits is CONFIG GET client-output-buffer-limit's value, in
// Redis' order and class names.
func formatOutputLimits(o OutputBufferLimits) string {
	f := func(l OutputBufferLimit) string { return fmt.Sprintf("%d %d %d", l.Hard, l.Soft, l.SoftSeconds) }
	return "normal " + f(o.Normal) + " slave " + f(o.Replica) + " pubsub " + f(o.Pubsub)
}

// setRequirePass sets the default user's password; "" removes it, making
// the node open (and, with protected_mode, loopback-only) as when it starts
// without one. Connected clients keep the access they have, as in Redis:
// a client that authenticated stays so.
func setRequirePass(n *Node, v string) (func(), error) {
	return func() {
		n.changeSettings(func(s *settings) {
			users := maps.Clone(s.users)
			delete(users, "default")
			if v != "" {
				users["default"] = &user{name: "default", pass: []byte(v), access: accessAdmin}
			}
			s.users, s.open = users, v == ""
			s.protected = s.open && n.cfg.ProtectedMode
		})
	}, nil
}

// parseMemory parses a Redis memory value: digits and an optional unit
// b, k (1000), kb (1024), m, mb, g or gb, in any case, as Redis' memtoull.
func parseMemory(v string) (int64, bool) {
	i := 0
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	x, err := strconv.ParseInt(v[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	mul := int64(1)
	switch strings.ToLower(v[i:]) {
	case "", "b":
	case "k":
		mul = 1000
	case "kb":
		mul = 1024
	case "m":
		mul = 1000 * 1000
	case "mb":
		mul = 1024 * 1024
	case "g":
		mul = 1000 * 1000 * 1000
	case "gb":
		mul = 1024 * 1024 * 1024
	default:
		return 0, false
	}
	if x > math.MaxInt64/mul {
		return 0, false
	}
	return x * mul, true
}

// visibleParams counts the parameters patterns can match.
var visibleParams = func() int {
	n := 0
	for _, p := range configParams {
		if !p.hidden && !p.secret {
			n++
		}
	}
	return n
}()

// parseConfigInt parses a CONFIG SET integer, with Redis' error texts.
func parseConfigInt(v string, lo, hi int64) (int64, error) {
	x, ok := redisInt([]byte(v)) // strict, as Redis: no "+5", "007" or " 5"
	if !ok {
		return 0, errors.New("argument couldn't be parsed into an integer")
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
		if !n.checkAdmin(c) {
			return
		}
		n.publishTally(c) // the commands before it in its pipeline are reset too
		n.resetStats()
		c.conn.WriteString("OK")
	case "rewrite":
		if !n.checkAdmin(c) {
			return
		}
		if err := n.configRewrite(); err != nil {
			c.fail(err.Error())
			return
		}
		c.conn.WriteString("OK")
	case "help":
		writeHelp(c, "CONFIG",
			"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
			"SET <directive> <value>", "    Set the configuration <directive> to <value>.",
			"RESETSTAT", "    Reset statistics reported by the INFO command.",
			"REWRITE", "    Rewrite the configuration file.")
	}
}

// resetStats is CONFIG RESETSTAT: INFO commandstats, errorstats and stats'
// keyspace_hits and keyspace_misses. total_commands_processed and the
// expirer's fields stay (Redis resets them), and so do the slow log's and
// the latency monitor's samples (Redis keeps them too).
func (n *Node) resetStats() {
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
	s.hits.Store(0)
	s.misses.Store(0)
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
			if cp := findConfigParam(string(p)); cp != nil && !cp.secret && !seen[cp] {
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
			if cp.hidden || cp.secret || seen[cp] || !globMatchFold(p, cp.name) {
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

// configSet sets every pair or none: all are checked first, then applied.
// What it changed is remembered for CONFIG REWRITE.
func configSet(n *Node, c *client, args [][]byte) {
	if len(args) == 0 || len(args)%2 != 0 {
		c.fail(wrongArity("config|set"))
		return
	}
	var applies []func()
	var changed []*configParam
	// Names first, as Redis checks them: an unknown or repeated name is
	// the error even when an earlier parameter cannot be set at runtime.
	params := make([]*configParam, 0, len(args)/2)
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
		params = append(params, p)
	}
	for i := 0; i < len(args); i += 2 {
		p := params[i/2]
		if p.set == nil {
			why := "logkv fixes it for the life of the process"
			if p.key != "" {
				why = fmt.Sprintf("set %s in the node's config file and restart it", p.key)
			}
			c.fail(fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%.128s') - not supported at runtime: %s", args[i], why))
			return
		}
		apply, err := p.set(n, string(args[i+1]))
		if err != nil {
			c.fail(fmt.Sprintf("ERR CONFIG SET failed (possibly related to argument '%s') - %v", p.name, err))
			return
		}
		applies = append(applies, apply)
		if p.rewrite != nil {
			changed = append(changed, p)
		}
	}
	n.srv.configMu.Lock()
	for _, apply := range applies {
		apply()
	}
	for _, p := range changed {
		n.srv.configChanged |= 1 << configParamIndex(p)
	}
	n.srv.configMu.Unlock()
	c.conn.WriteString("OK")
}

// configParamIndex is p's index in configParams.
func configParamIndex(p *configParam) int {
	for i := range configParams {
		if &configParams[i] == p {
			return i
		}
	}
	panic("node: not a config parameter")
}
