package node

import (
	"maps"
	"net/http"
	"net/http/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// metrics are a node's Prometheus metrics, in a registry of its own so that
// several nodes can run in one process (as tests do). Names start with
// logkv_, use base units and end counters in _total.
type metrics struct {
	reg         *prometheus.Registry
	cmds        []commandStats
	unknown     prometheus.Counter
	connections prometheus.Counter
	rejected    prometheus.Counter
	// panics counts commands that panicked (recover.go); authFailures,
	// failed AUTH attempts; closed, clients closed by a limit, by reason.
	panics       prometheus.Counter
	authFailures prometheus.Counter
	closed       *prometheus.CounterVec
}

// commandStats are one command's metrics. calls and errors are Prometheus
// counters; the latency histogram is kept here, as counts per bucket, so a
// client's pipeline can add its commands in one step (cmdTally): a
// Prometheus histogram takes one observation at a time, at five atomic
// operations each, 4% of a pipelined GET's CPU.
type commandStats struct {
	calls  prometheus.Counter
	errors prometheus.Counter
	// buckets[i] counts the commands that took at most latencyBounds[i]
	// and more than the bound before; the last counts the rest.
	buckets [len(latencyBounds) + 1]atomic.Uint64
	nanos   atomic.Uint64 // the sum of their durations
}

// latencyBounds are the upper bounds of logkv_command_duration_seconds'
// buckets: 5us, then each 4 times the last, to 1.3s.
var latencyBounds = func() (b [10]time.Duration) {
	d := 5 * time.Microsecond
	for i := range b {
		b[i], d = d, 4*d
	}
	return b
}()

// latencyBucket is the index of d's bucket.
func latencyBucket(d time.Duration) int {
	for i, b := range latencyBounds {
		if d <= b {
			return i
		}
	}
	return len(latencyBounds)
}

// cmdTally is what a client's commands add to their metrics, gathered while
// its pipeline runs and published to the shared commandStats when the
// pipeline ends or another command starts a run: a pipeline of 16 GETs
// touches the shared counters once, not 16 times. It belongs to the
// client's loop, or to its goroutine while it runs off the loop. INFO
// commandstats' counters of the command (st) are gathered the same way:
// calls, the microseconds of each call summed as Redis sums them, failures.
type cmdTally struct {
	s             *commandStats // nil: nothing gathered
	st            *cmdStats
	calls, errors uint64
	nanos         uint64
	micros        int64
	buckets       [len(latencyBounds) + 1]uint32
}

// observe adds one run of the command s (INFO's st) that took d.
func (t *cmdTally) observe(s *commandStats, st *cmdStats, d time.Duration, failed bool) {
	if t.s != s {
		t.publish()
		t.s, t.st = s, st
	}
	t.calls++
	if failed {
		t.errors++
	}
	d = max(d, 0)
	t.nanos += uint64(d)
	t.micros += d.Microseconds()
	t.buckets[latencyBucket(d)]++
}

// publish adds what t gathered to the shared metrics and INFO's counters,
// and empties t.
func (t *cmdTally) publish() {
	s := t.s
	if s == nil {
		return
	}
	s.calls.Add(float64(t.calls)) // an integer: Prometheus adds it with one atomic add
	if t.errors > 0 {
		s.errors.Add(float64(t.errors))
	}
	if st := t.st; st != nil {
		st.calls.Add(int64(t.calls))
		st.micros.Add(t.micros)
		if t.errors > 0 {
			st.failed.Add(int64(t.errors))
		}
	}
	s.nanos.Add(t.nanos)
	for i, k := range t.buckets {
		if k > 0 {
			s.buckets[i].Add(uint64(k))
		}
	}
	*t = cmdTally{}
}

// latencyCollector exports the commands' latency histograms as
// logkv_command_duration_seconds.
type latencyCollector struct{ m *metrics }

var latencyDesc = prometheus.NewDesc("logkv_command_duration_seconds",
	"Time to run a command, before the pipeline's sync and reply flush.", []string{"cmd"}, nil)

func (latencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- latencyDesc }

func (l latencyCollector) Collect(ch chan<- prometheus.Metric) {
	for i, c := range commandList {
		s := &l.m.cmds[i]
		buckets := make(map[float64]uint64, len(latencyBounds))
		var count uint64
		for j, b := range latencyBounds {
			count += s.buckets[j].Load()
			buckets[b.Seconds()] = count // cumulative, as Prometheus wants them
		}
		count += s.buckets[len(latencyBounds)].Load()
		ch <- prometheus.MustNewConstHistogram(latencyDesc, count, time.Duration(s.nanos.Load()).Seconds(), buckets, c.name)
	}
}

func newMetrics(n *Node) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logkv_commands_total", Help: "Commands run, by command."}, []string{"cmd"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logkv_command_errors_total", Help: "Commands answered with an error, by command."}, []string{"cmd"})
	m := &metrics{
		reg:          reg,
		unknown:      prometheus.NewCounter(prometheus.CounterOpts{Name: "logkv_unknown_commands_total", Help: "Commands the node does not know."}),
		connections:  prometheus.NewCounter(prometheus.CounterOpts{Name: "logkv_connections_total", Help: "Client connections accepted."}),
		rejected:     prometheus.NewCounter(prometheus.CounterOpts{Name: "logkv_connections_rejected_total", Help: "Client connections refused (limits.max_connections)."}),
		panics:       prometheus.NewCounter(prometheus.CounterOpts{Name: "logkv_command_panics_total", Help: "Commands that panicked; each client got ERR internal error and the node went on."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "logkv_auth_failures_total", Help: "Failed AUTH and HELLO AUTH attempts, throttled ones included."}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logkv_clients_closed_total",
			Help: "Clients closed or refused by a limit or protected mode, by reason."}, []string{"reason"}),
	}
	m.cmds = make([]commandStats, len(commandList))
	for i, c := range commandList {
		m.cmds[i].calls, m.cmds[i].errors = calls.WithLabelValues(c.name), errs.WithLabelValues(c.name)
	}
	f(calls)
	f(errs)
	f(latencyCollector{m})
	f(m.unknown)
	f(m.connections)
	f(m.rejected)
	f(m.panics)
	f(m.authFailures)
	f(m.closed)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logkv_client_input_buffered_bytes", Help: "Input clients sent that is buffered, not run yet (limits.query_buffer_budget bounds it)."}, func() float64 {
		return float64(n.sec.input.Load())
	}))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logkv_connections", Help: "Client connections open now."}, func() float64 {
		n.connsMu.Lock()
		defer n.connsMu.Unlock()
		return float64(len(n.conns))
	}))
	f(engineCollector{n})
	if rb, ok := n.backend.(*replicatedBackend); ok {
		f(replicationCollector{rb})
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) commandsTotal() uint64 {
	var total float64
	for i := range m.cmds {
		total += m.counterValue(m.cmds[i].calls)
	}
	return uint64(total)
}

func (m *metrics) counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// engineCollector exports the engine's Metrics at each scrape. It is
// unchecked (Describe sends nothing) because engine Detail metrics vary.
type engineCollector struct{ n *Node }

func (engineCollector) Describe(chan<- *prometheus.Desc) {}

func (e engineCollector) Collect(ch chan<- prometheus.Metric) {
	m := e.n.eng().Metrics()
	put := func(name, help string, t prometheus.ValueType, v float64, labels map[string]string) {
		keys := slices.Sorted(maps.Keys(labels))
		vals := make([]string, len(keys))
		for i, k := range keys {
			vals[i] = labels[k]
		}
		desc := prometheus.NewDesc("logkv_"+name, help, keys, prometheus.Labels{"engine": e.n.cfg.Engine})
		if metric, err := prometheus.NewConstMetric(desc, t, v, vals...); err == nil {
			ch <- metric
		}
	}
	put("engine_keys", "Live keys in the engine.", prometheus.GaugeValue, float64(m.Keys), nil)
	put("engine_disk_bytes", "Size of the engine's files.", prometheus.GaugeValue, float64(m.DiskBytes), nil)
	put("engine_memory_bytes", "Memory the engine holds for data and indexes.", prometheus.GaugeValue, float64(m.MemBytes), nil)
	put("engine_gets_total", "Engine Get calls.", prometheus.CounterValue, float64(m.Gets), nil)
	put("engine_writes_total", "Batches committed to the engine.", prometheus.CounterValue, float64(m.Writes), nil)
	put("engine_write_ops_total", "Operations in committed batches.", prometheus.CounterValue, float64(m.WriteOps), nil)
	put("engine_written_bytes_total", "Key and value bytes committed.", prometheus.CounterValue, float64(m.BytesWritten), nil)
	put("engine_last_seq", "Sequence number of the newest committed batch.", prometheus.GaugeValue, float64(e.n.eng().LastSeq()), nil)
	for _, d := range m.Detail {
		t := prometheus.GaugeValue
		if d.Counter {
			t = prometheus.CounterValue
		}
		help := d.Help
		if help == "" {
			help = "Engine metric " + d.Name + "."
		}
		put(d.Name, help, t, d.Value, d.Labels)
	}
}

// Timeouts of the admin HTTP server: a client that trickles its request or
// never reads the reply cannot hold a connection forever. The write timeout
// leaves room for a CPU profile of up to a minute (pprof refuses longer ones
// under it).
const (
	adminReadTimeout  = 10 * time.Second
	adminWriteTimeout = 70 * time.Second
	adminIdleTimeout  = 60 * time.Second
)

// adminServer is the admin HTTP server.
func (n *Node) adminServer() *http.Server {
	return &http.Server{
		Handler:           n.adminHandler(),
		ReadHeaderTimeout: adminReadTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// adminHandler serves /metrics, /healthz, /readyz and, when admin_pprof is
// on, /debug/pprof. When the node has a password, everything but /healthz
// and /readyz (which load balancers probe) needs an admin user's password:
// HTTP basic auth (user default, or an admin user) or a bearer token (the
// default user's password).
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", n.adminAuth(promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if n.closing.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if n.closing.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if why := n.notReady(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if n.cfg.AdminPprof {
		// Opt-in: profiles show keys and values in memory, and cost CPU.
		mux.Handle("/debug/pprof/", n.adminAuth(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/cmdline", n.adminAuth(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("/debug/pprof/profile", n.adminAuth(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", n.adminAuth(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", n.adminAuth(http.HandlerFunc(pprof.Trace)))
	}
	return mux
}

// adminAuth lets a request through to h if the node has no password, or
// the request carries an admin user's password. Failures are throttled
// with the AUTH throttle (access.go): while a source backs off, it gets 429.
func (n *Node) adminAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, s := &n.sec.access, n.settings()
		if s.open {
			h.ServeHTTP(w, r)
			return
		}
		source, _ := sourceOfString(r.RemoteAddr)
		now := time.Now()
		if wait := a.throttle.blocked(source, now); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			http.Error(w, "too many failed attempts from this address; retry later", http.StatusTooManyRequests)
			return
		}
		name, pass, ok := r.BasicAuth()
		if !ok {
			name = "default"
			pass, ok = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if u := s.users[name]; ok && u != nil && u.access == accessAdmin && constantTimeEqual([]byte(pass), u.pass) {
			a.throttle.succeeded(source)
			h.ServeHTTP(w, r)
			return
		}
		if ok {
			a.throttle.failed(source, now)
			n.metrics.authFailures.Inc()
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="kvnode admin", charset="UTF-8"`)
		http.Error(w, "the node has a password: use HTTP basic auth (user default) or Authorization: Bearer PASSWORD", http.StatusUnauthorized)
	})
}

// notReady says why the node should not take traffic, or "" if it should.
func (n *Node) notReady() string { return n.backend.NotReady() }

// replicationCollector exports the node's replication status and, on a
// leader, each follower's lag at each scrape.
type replicationCollector struct{ b *replicatedBackend }

func (replicationCollector) Describe(chan<- *prometheus.Desc) {}

var (
	descReplSeq = prometheus.NewDesc("logkv_replication_seq", "Sequence numbers of this node's commit log: last written, last durable, last applied.", []string{"kind"}, nil)
	descEpoch   = prometheus.NewDesc("logkv_replication_epoch", "The node's current epoch.", nil, nil)
	descLeader  = prometheus.NewDesc("logkv_replication_leader", "1 if this node is the leader, 0 if it follows.", nil, nil)
	descLogSize = prometheus.NewDesc("logkv_replication_log_bytes", "Size of the retained commit log.", nil, nil)
	descLagRec  = prometheus.NewDesc("logkv_replication_follower_lag_records", "Durable records on the leader that the follower has not applied.", []string{"follower"}, nil)
	descLagB    = prometheus.NewDesc("logkv_replication_follower_lag_bytes", "Size in the log of the records the follower has not applied.", []string{"follower"}, nil)
	descLagS    = prometheus.NewDesc("logkv_replication_follower_lag_seconds", "Age of the oldest record the follower has not applied.", []string{"follower"}, nil)
	descRate    = prometheus.NewDesc("logkv_replication_follower_apply_rate", "The follower's recent apply rate, records per second.", []string{"follower"}, nil)
	descResync  = prometheus.NewDesc("logkv_replication_follower_resyncs_total", "Full resyncs sent to the follower.", []string{"follower"}, nil)
	descSent    = prometheus.NewDesc("logkv_replication_follower_sent_bytes_total", "Record frame bytes sent to the follower.", []string{"follower"}, nil)
	descFrames  = prometheus.NewDesc("logkv_replication_follower_sent_frames_total", "Record frames sent to the follower (records per frame: see ship delay).", []string{"follower"}, nil)
	descState   = prometheus.NewDesc("logkv_replication_follower_connected", "1 if the follower's stream is in the given state.", []string{"follower", "state"}, nil)
)

func (r replicationCollector) Collect(ch chan<- prometheus.Metric) {
	st := r.b.r.Status()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	g(descReplSeq, float64(st.LastSeq), "written")
	g(descReplSeq, float64(st.DurableSeq), "durable")
	g(descReplSeq, float64(st.Applied), "applied")
	g(descEpoch, float64(st.Epoch))
	g(descLogSize, float64(st.LogBytes))
	leader := 0.0
	if !r.b.IsFollower() {
		leader = 1
	}
	g(descLeader, leader)
	for _, f := range r.b.r.Followers() {
		g(descLagRec, float64(f.LagRecords), f.ID)
		g(descLagB, float64(f.LagBytes), f.ID)
		g(descLagS, f.LagSeconds, f.ID)
		g(descRate, f.ApplyRate, f.ID)
		g(descState, 1, f.ID, f.State)
		ch <- prometheus.MustNewConstMetric(descResync, prometheus.CounterValue, float64(f.Resyncs), f.ID)
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(f.SentBytes), f.ID)
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(f.SentFrames), f.ID)
	}
}
