package node

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The latency monitor, Redis' LATENCY: with latency-monitor-threshold set
// (milliseconds; 0, the default, turns it off) every command that runs at
// least that long is a sample of the event "command". Each event keeps the
// latest latencyHistoryLen samples, one per second (the worst of that
// second), and its all-time maximum. Unlike Redis, logkv has no fork, AOF
// or expire-cycle events to report: its fsyncs happen in the group sync and
// are measured by logkv_command_duration_seconds and the engine's metrics.

const latencyHistoryLen = 160

type latencyMonitor struct {
	threshold atomic.Int64 // milliseconds; 0 off
	mu        sync.Mutex
	events    map[string]*latencyEvent
}

type latencyEvent struct {
	samples []latencySample // oldest first, at most latencyHistoryLen
	max     int64
}

type latencySample struct{ at, ms int64 }

// observe records a command that took d, if the monitor is on and d is
// over the threshold.
func (l *latencyMonitor) observe(d time.Duration) {
	t := l.threshold.Load()
	if t <= 0 || d.Milliseconds() < t {
		return
	}
	l.add("command", d.Milliseconds())
}

func (l *latencyMonitor) add(event string, ms int64) {
	now := time.Now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.events == nil {
		l.events = map[string]*latencyEvent{}
	}
	e := l.events[event]
	if e == nil {
		e = &latencyEvent{}
		l.events[event] = e
	}
	e.max = max(e.max, ms)
	if k := len(e.samples); k > 0 && e.samples[k-1].at == now {
		e.samples[k-1].ms = max(e.samples[k-1].ms, ms)
		return
	}
	if len(e.samples) == latencyHistoryLen {
		e.samples = append(e.samples[:0], e.samples[1:]...)
	}
	e.samples = append(e.samples, latencySample{now, ms})
}

// cmdLatency: LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR |
// GRAPH event | HELP. HISTOGRAM is not kept: the per-command histograms are
// the node's Prometheus metric logkv_command_duration_seconds.
func cmdLatency(n *Node, c *client, args [][]byte) {
	l := &n.state().latency
	sub, ok := subcommand(c, args)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.events))
	for name := range l.events {
		names = append(names, name)
	}
	sort.Strings(names)
	switch sub {
	case "latest":
		c.conn.WriteArray(len(names))
		for _, name := range names {
			e := l.events[name]
			last := e.samples[len(e.samples)-1]
			c.conn.WriteArray(4)
			c.conn.WriteBulkString(name)
			c.conn.WriteInt64(last.at)
			c.conn.WriteInt64(last.ms)
			c.conn.WriteInt64(e.max)
		}
	case "history":
		e := l.events[strings.ToLower(string(args[2]))]
		if e == nil {
			c.conn.WriteArray(0)
			return
		}
		c.conn.WriteArray(len(e.samples))
		for _, s := range e.samples {
			c.conn.WriteArray(2)
			c.conn.WriteInt64(s.at)
			c.conn.WriteInt64(s.ms)
		}
	case "reset":
		reset := 0
		if len(args) == 2 {
			reset = len(l.events)
			l.events = nil
		}
		for _, a := range args[2:] {
			if _, ok := l.events[string(a)]; ok {
				delete(l.events, string(a))
				reset++
			}
		}
		c.conn.WriteInt(reset)
	case "graph":
		e := l.events[string(args[2])]
		if e == nil {
			c.fail(fmt.Sprintf("ERR No samples available for event '%.128s'", args[2]))
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s - high %d ms, low %d ms (all time high %d ms)\n", args[2], maxSample(e.samples), minSample(e.samples), e.max)
		for _, s := range e.samples {
			fmt.Fprintf(&b, "%s %d ms\n", time.Unix(s.at, 0).UTC().Format(time.TimeOnly), s.ms)
		}
		c.conn.WriteVerbatim(b.String())
	case "doctor":
		var b strings.Builder
		switch {
		case l.threshold.Load() <= 0:
			b.WriteString("Latency monitoring is disabled in this logkv node. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it.\n")
		case len(names) == 0:
			b.WriteString("No latency spike was observed during the lifetime of this logkv node.\n")
		default:
			for _, name := range names {
				e := l.events[name]
				fmt.Fprintf(&b, "%s: %d latency spikes (average %dms, worst all time %dms). Look at SLOWLOG GET for the commands, and at the node's logkv_command_duration_seconds and engine metrics for fsync and compaction stalls.\n",
					name, len(e.samples), avgSample(e.samples), e.max)
			}
		}
		c.conn.WriteVerbatim(b.String())
	case "histogram":
		c.fail("ERR LATENCY HISTOGRAM is not supported: read the per-command histograms from the node's Prometheus metric logkv_command_duration_seconds")
	case "help":
		writeHelp(c, "LATENCY",
			"DOCTOR", "    Return a human readable latency analysis report.",
			"GRAPH <event>", "    Return an ASCII latency graph for the <event> class.",
			"HISTORY <event>", "    Return time-latency samples for the <event> class.",
			"LATEST", "    Return the latest latency samples for all events.",
			"RESET [<event> ...]", "    Reset latency data of one or more <event> classes.",
			"    (default: reset all data for all event classes)")
	}
}

func maxSample(s []latencySample) int64 {
	m := int64(0)
	for _, x := range s {
		m = max(m, x.ms)
	}
	return m
}

func minSample(s []latencySample) int64 {
	m := s[0].ms
	for _, x := range s {
		m = min(m, x.ms)
	}
	return m
}

func avgSample(s []latencySample) int64 {
	sum := int64(0)
	for _, x := range s {
		sum += x.ms
	}
	return sum / int64(len(s))
}
