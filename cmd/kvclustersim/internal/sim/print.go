package sim

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// Print writes r as the table docs/cluster-scale.md holds.
func Print(w io.Writer, r *Report) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }
	lat := func(l Latency) string {
		s := fmt.Sprintf("p50 %s / p99 %s / max %s ms (n=%d)", ms(l.P50), ms(l.P99), ms(l.Max), l.N)
		if l.Timeouts > 0 {
			s += fmt.Sprintf(", %d timed out", l.Timeouts)
		}
		return s
	}
	p("shards x members      %d x %d (%d members), TTL %v, busy %v, start rate %d/s (0: all at once)", r.Shards, r.Members, r.Shards*r.Members, r.TTL, r.Busy, r.StartRate)
	p("cold start            %v until every shard led and every router read the map", r.Start.Round(time.Millisecond))
	p("etcd watchers         %.0f on %.0f streams", r.Watchers, r.WatchStreams)
	p("phase   secs  keepalive/s  put/s  txn/s  watchreq/s  events/s  proposals/s  fsync-ms  etcd-CPU%%  etcd-RSS-MiB  slow-watchers")
	row := func(name string, c Cost) {
		p("%-6s %5.1f  %11.0f  %5.0f  %5.0f  %10.0f  %8.0f  %11.0f  %8.2f  %9.0f  %12.0f  %13.0f", name, c.Seconds, c.KeepAlivesPerS,
			c.PutsPerS, c.TxnsPerS, c.WatchReqPerS, c.EventsPerS, c.ProposalsPerS, c.FsyncMeanMs, c.CPUPercent, float64(c.RSS)/(1<<20), c.SlowWatchers)
	}
	renew := func(name string, c Cost) {
		if c.Renew.N+c.Renew.Timeouts > 0 {
			p("lease renewal (%s)   %s", name, lat(c.Renew))
		}
	}
	defer func() {
		renew("start", r.StartCost)
		renew("quiet", r.Steady)
		renew("map  ", r.Map)
		renew("kills", r.Kill)
	}()
	row("start", r.StartCost)
	row("quiet", r.Steady)
	if r.MapUpdates > 0 {
		row("map", r.Map)
	}
	if r.Kills > 0 {
		row("kills", r.Kill)
	}
	if r.MapUpdates > 0 {
		p("map update -> member  %s", lat(r.MapSeen))
		p("map update -> all     %s", lat(r.MapAll))
		p("per map update        %.0f watch events, %.0f watch requests, %.0f txns", r.EventsPerMap, r.WatchReqPerMap, r.ReadsPerMap)
	}
	if r.Kills > 0 {
		p("kill -> new leader    %s", lat(r.ElectAfterKill))
		p("kill -> all routers   %s", lat(r.SeenAfterKill))
		p("elections/s (batch)   %.1f", r.ElectionsPerSec)
	}
	p("etcd db               %.1f MiB (%.1f MiB in use)", r.DBSize/(1<<20), r.DBInUse/(1<<20))
	p("simulator CPU         %v (it shares the machine with etcd)", r.SimCPU.Round(time.Millisecond))
	p("routing read errors   %d", r.RoutingReadErrors)
	var ws []string
	for k := range r.Warnings {
		ws = append(ws, k)
	}
	sort.Strings(ws)
	for _, k := range ws {
		p("member warning        %d x %q", r.Warnings[k], k)
	}
}
