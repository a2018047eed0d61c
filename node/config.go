package node

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/replicate"
	"go.yaml.in/yaml/v3"
)

// Config is a node's configuration: what `kvnode -config FILE` reads, with
// command-line flags laid over it. The zero value of every field means its
// default (see DefaultConfig); example.yaml in this package documents every
// key.
type Config struct {
	// Engine names the storage engine: lsm, bitcask or memory.
	Engine string `yaml:"engine"`
	// EngineOptions are the engine's own options (lsm.Options,
	// bitcask.Options, memory.Options), decoded from YAML by the engine's
	// option type; unknown keys are rejected.
	EngineOptions yaml.Node `yaml:"engine_options"`
	// DataDir holds the engine's files (and, with replication, the commit
	// log).
	DataDir string `yaml:"data_dir"`
	// Listen is the Redis-protocol (RESP2) address.
	Listen string `yaml:"listen"`
	// Admin is the HTTP address of /metrics, /healthz, /readyz and
	// /debug/pprof. "off" disables it.
	Admin string `yaml:"admin"`
	// AppendFsync says when a write is acknowledged, with Redis' names:
	// "always" (the default) after its fsync; "everysec" once it reached the
	// operating system, with the fsync in the background, within a second
	// and usually within milliseconds. everysec survives a crash of kvnode
	// (the commit log has the write; with durability none, the lsm keeps its
	// unsynced WAL tail in memory) but a power loss may lose up to the last
	// second of acknowledged writes, as with Redis.
	AppendFsync string `yaml:"appendfsync"`
	// Durability is "full" (the default): every write goes through the
	// commit log in data_dir/log, with or without replication, so an
	// acknowledged write survives a crash and, with appendfsync always, a
	// power loss, on every engine. "none" runs the engine alone (a cache:
	// the memory engine then keeps nothing across a restart) and must be
	// asked for; INFO persistence reports it.
	Durability string `yaml:"durability"`
	// EventLoops is how many event loops serve client connections (Redis'
	// io-threads). 0, the default, means half the cores Go may use, at
	// least one: the other half runs the engine's flushes and compactions,
	// replication, and fsyncs.
	EventLoops int `yaml:"event_loops"`
	// Databases is how many databases SELECT may choose from, 1 to 16
	// (the default, as Redis).
	Databases int `yaml:"databases"`
	// Password, when set, is the default user's: clients must AUTH with it
	// before any other command, and only a client that did may run
	// administrative commands (access.go). The -requirepass and
	// -requirepass-file flags and KVNODE_PASSWORD set it too.
	Password string `yaml:"password"`
	// PasswordFile names a file whose first line is the default user's
	// password, kept out of the config and the process list.
	PasswordFile string `yaml:"password_file"`
	// Users are further users, each with a password and an access level.
	Users []User `yaml:"users"`
	// ProtectedMode, on by default as in Redis: while the default user has
	// no password, only loopback clients are served; others get a DENIED
	// error saying how to enable access.
	ProtectedMode bool `yaml:"protected_mode"`
	// RenameCommands renames commands, or disables them with "", as
	// Redis' rename-command: {flushall: "", config: "CONFIG-8f3a"}.
	RenameCommands map[string]string `yaml:"rename_commands"`
	// EnableProtectedConfigs and EnableDebugCommand, no (the default), yes
	// or local (loopback clients only), let an admin change protected
	// configs and run DEBUG, as Redis' settings of those names.
	EnableProtectedConfigs string `yaml:"enable_protected_configs"`
	EnableDebugCommand     string `yaml:"enable_debug_command"`
	// AdminPprof serves /debug/pprof on the admin address (default off;
	// behind the password when one is set).
	AdminPprof bool `yaml:"admin_pprof"`
	// Timeout closes clients idle this many seconds; 0 (the default)
	// never, as Redis' timeout.
	Timeout int `yaml:"timeout"`
	// ClientOutputBufferLimit bounds each client's unsent replies, as
	// Redis' client-output-buffer-limit (limits.go).
	ClientOutputBufferLimit OutputBufferLimits `yaml:"client_output_buffer_limit"`
	// Limits bound what one client can ask for.
	Limits Limits `yaml:"limits"`
	// Replication configures the commit log and its shipping.
	Replication Replication `yaml:"replication"`
	// TLS names the certificate files replication uses (mutual TLS).
	TLS TLS `yaml:"tls"`
	// Cluster, with etcd endpoints, makes the node a member of a cluster
	// that fails over by itself (cluster.go, docs/cluster.md).
	Cluster Cluster `yaml:"cluster"`
	// NodeID names a node without certificates (a standalone node's
	// commit log). Default: an id made from the host name and random bytes
	// on first start, kept in data_dir/node_id. With certificates the id is
	// the name in the node's certificate, and node_id, if set, must equal
	// it.
	NodeID string `yaml:"node_id"`
	// ShutdownTimeout bounds how long a stopping node waits for in-flight
	// commands.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// SlowlogLogSlowerThan, SlowlogMaxLen and LatencyMonitorThreshold are
	// Redis' slowlog-log-slower-than (microseconds; 0 logs every command,
	// negative none; default 10000), slowlog-max-len (default 128) and
	// latency-monitor-threshold (milliseconds; 0, the default, is off).
	// CONFIG SET changes them at runtime; CONFIG REWRITE writes them here.
	SlowlogLogSlowerThan    int64 `yaml:"slowlog_log_slower_than"`
	SlowlogMaxLen           int64 `yaml:"slowlog_max_len"`
	LatencyMonitorThreshold int64 `yaml:"latency_monitor_threshold"`

	// file is the path LoadConfig read, which CONFIG REWRITE rewrites; ""
	// when the configuration did not come from a file.
	file string
}

// Limits bound client requests. Each exceeded limit is a clear error to the
// client, and the connection stays usable unless the request itself could
// not be read.
type Limits struct {
	// MaxKeySize is the largest key a client may write (at most 64 KiB, the
	// engines' limit).
	MaxKeySize int `yaml:"max_key_size"`
	// MaxValueSize is the largest value (at most 32 MiB, the engines'
	// limit).
	MaxValueSize int `yaml:"max_value_size"`
	// MaxRequestSize is the most bytes a connection may send before a
	// command is complete; past it the connection is closed with an error.
	MaxRequestSize int `yaml:"max_request_size"`
	// MaxConnections is the most client connections at once; more are
	// refused with an error.
	MaxConnections int `yaml:"max_connections"`
	// ClientQueryBufferLimit bounds the input a client may have buffered,
	// as Redis' client-query-buffer-limit; past it the client is closed.
	// 0 (the default) means twice max_request_size.
	ClientQueryBufferLimit int `yaml:"client_query_buffer_limit"`
	// QueryBufferBudget bounds the input all clients have buffered
	// together; a client adding to it past the budget is closed. 0 (the
	// default) means 1 GiB.
	QueryBufferBudget int64 `yaml:"query_buffer_budget"`
}

// Replication configures the node's role in replication.
type Replication struct {
	// Listen is the QUIC address followers connect to. "off" disables it.
	Listen string `yaml:"listen"`
	// ReplicaOf, when set, makes this node a follower of the leader at this
	// replication address.
	ReplicaOf string `yaml:"replicaof"`
	// Ack is async (acknowledge after the local fsync) or sync (after
	// Quorum followers hold the write durably).
	Ack string `yaml:"ack"`
	// Quorum is the number of followers that must acknowledge in sync mode.
	Quorum int `yaml:"quorum"`
	// AckTimeout bounds the wait for the quorum; a write not acknowledged
	// in time fails.
	AckTimeout Duration `yaml:"ack_timeout"`
	// RetentionBytes caps the commit log kept for lagging followers; a
	// follower needing more is fully resynced.
	RetentionBytes int64 `yaml:"retention_bytes"`
	// ForgetFollowerAfter is how long a leader remembers a disconnected
	// follower, keeping the log it needs (up to retention_bytes); after
	// that the follower is forgotten, and resynced if it returns to a log
	// that moved on. Negative: never forget.
	ForgetFollowerAfter Duration `yaml:"forget_follower_after"`
	// MaxReadyLagRecords is the lag, in records behind what the leader last
	// reported, under which a streaming follower is ready on /readyz.
	MaxReadyLagRecords uint64 `yaml:"max_ready_lag_records"`
	// MaxDiscard is how many records its engine applied a node may throw
	// away to follow a leader whose history does not hold them (a full
	// resync after the histories forked). Past it the node refuses, says
	// why with the numbers, and keeps its data; REPLICAOF host port FORCE
	// follows regardless. The tail only in its log (what a crash left
	// unapplied) is cut as before.
	MaxDiscard uint64 `yaml:"max_discard"`
}

// TLS names the files for mutual TLS between nodes, as written by
// `kvnode certs -dir DIR -node NAME` into DIR/NAME. The certificate's name
// is the node's replication id.
type TLS struct {
	// Dir, when set, is where CA, Cert and Key default to: ca.crt, node.crt,
	// node.key.
	Dir  string `yaml:"dir"`
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("250ms", "5s").
type Duration time.Duration

// UnmarshalYAML decodes "5s"-style strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write it like 500ms, 5s or 1m)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML encodes as a duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// DefaultConfig returns the configuration `go run ./cmd/kvnode` runs with.
func DefaultConfig() Config {
	return Config{
		Engine:  "lsm",
		DataDir: "kvnode-data",
		Listen:  "127.0.0.1:6380",
		Admin:   "127.0.0.1:9380",
		// AppendFsync is always: an acknowledged write is durable.
		AppendFsync: "always",
		Durability:  "full",
		// Access and client limits (access.go, limits.go).
		ProtectedMode:           true,
		EnableProtectedConfigs:  enableNo,
		EnableDebugCommand:      enableNo,
		ClientOutputBufferLimit: DefaultOutputBufferLimits,
		Limits: Limits{
			MaxKeySize:     logkv.MaxKeySize,
			MaxValueSize:   logkv.MaxValueSize,
			MaxRequestSize: logkv.MaxValueSize + logkv.MaxKeySize + 1<<20,
			MaxConnections: 10000,
		},
		Replication: Replication{
			Listen: "127.0.0.1:7380",
			Ack:    "async",
			Quorum: 1,
			// replicate owns these defaults; the config shows them.
			AckTimeout:          Duration(replicate.DefaultQuorumTimeout),
			RetentionBytes:      replicate.DefaultRetentionBytes,
			ForgetFollowerAfter: Duration(replicate.DefaultForgetFollowerAfter),
			MaxReadyLagRecords:  10000,
		},
		ShutdownTimeout:      Duration(10 * time.Second),
		Cluster:              defaultCluster(),
		SlowlogLogSlowerThan: defaultSlowlogSlowerThan,
		SlowlogMaxLen:        defaultSlowlogMaxLen,
	}
}

// LoadConfig reads a YAML configuration file over DefaultConfig. Unknown keys
// are errors naming their line.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	// CONFIG REWRITE writes this file again: remember it by an absolute
	// path, since the working directory may change.
	if c.file, err = filepath.Abs(path); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes YAML over DefaultConfig and validates the result.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, errEOF) {
		return Config{}, yamlError(err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// errEOF is what an empty document decodes to: all defaults.
var errEOF = func() error { var v any; return yaml.NewDecoder(bytes.NewReader(nil)).Decode(&v) }()

// yamlError turns yaml's "yaml: unmarshal errors:\n  line 3: field x not
// found in type node.Config" into one line a user can act on.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			msgs[i] = unknownField.ReplaceAllString(e, `unknown key "$1" in $2`)
		}
		return fmt.Errorf("%s (see node/example.yaml for every key)", strings.Join(msgs, "; "))
	}
	return err
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type \S*?(\w+)$`)

// Validate checks the configuration and says what to fix.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.Contains(EngineNames(), c.Engine) {
		bad("engine %q is not one of %s", c.Engine, strings.Join(EngineNames(), ", "))
	} else if _, err := c.engineOptions(); err != nil {
		bad("%v", err)
	}
	switch c.Durability {
	case "full":
		if c.DataDir == "" {
			bad("data_dir is empty; set it to the directory for the commit log and the %s engine's files (or durability: none, for a cache whose writes need not survive)", c.Engine)
		}
	case "none":
		if c.DataDir == "" && !c.volatileEngine() {
			bad("data_dir is empty; set it to the directory for the %s engine's files", c.Engine)
		}
		if c.Replication.ReplicaOf != "" || c.TLS.configured() {
			bad("durability none runs without the commit log, which replication ships; set durability: full to replicate")
		}
	default:
		bad("durability %q must be full (acknowledged writes survive crashes) or none (a cache)", c.Durability)
	}
	if c.Databases < 0 || c.Databases > 16 {
		bad("databases %d must be 1 to 16 (0: 16)", c.Databases)
	}
	checkAddr := func(key, addr string, offOK bool) {
		if offOK && addr == "off" {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s: %q is not host:port (%v)", key, addr, err)
		}
	}
	if c.AppendFsync != "always" && c.AppendFsync != "everysec" {
		bad("appendfsync %q must be always (acknowledge after the fsync) or everysec (fsync in the background)", c.AppendFsync)
	}
	if c.EventLoops < 0 || c.EventLoops > maxEventLoops {
		bad("event_loops %d must be 0 (half the cores) to %d", c.EventLoops, maxEventLoops)
	}
	checkAddr("listen", c.Listen, false)
	checkAddr("admin", c.Admin, true)
	checkAddr("replication.listen", c.Replication.Listen, true)
	if c.Replication.ReplicaOf != "" {
		checkAddr("replication.replicaof", c.Replication.ReplicaOf, false)
	}
	l := c.Limits
	if l.MaxKeySize < 1 || l.MaxKeySize > logkv.MaxKeySize {
		bad("limits.max_key_size %d must be 1 to %d", l.MaxKeySize, logkv.MaxKeySize)
	}
	if l.MaxValueSize < 0 || l.MaxValueSize > logkv.MaxValueSize {
		bad("limits.max_value_size %d must be 0 to %d", l.MaxValueSize, logkv.MaxValueSize)
	}
	if l.MaxRequestSize < l.MaxKeySize+l.MaxValueSize {
		bad("limits.max_request_size %d must be at least max_key_size + max_value_size (%d)", l.MaxRequestSize, l.MaxKeySize+l.MaxValueSize)
	}
	if l.MaxConnections < 1 {
		bad("limits.max_connections %d must be at least 1", l.MaxConnections)
	}
	c.validateAccess(bad)
	c.validateLimits(bad)
	r := c.Replication
	if r.Ack != "async" && r.Ack != "sync" {
		bad("replication.ack %q must be async or sync", r.Ack)
	}
	if r.Ack == "sync" && r.Quorum < 1 {
		bad("replication.quorum %d must be at least 1 in sync mode", r.Quorum)
	}
	if r.AckTimeout <= 0 {
		bad("replication.ack_timeout must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout must be positive")
	}
	if c.SlowlogMaxLen < 0 || c.SlowlogMaxLen > maxSlowlogLen {
		bad("slowlog_max_len %d must be 0 to %d", c.SlowlogMaxLen, maxSlowlogLen)
	}
	if c.LatencyMonitorThreshold < 0 {
		bad("latency_monitor_threshold %d must be 0 (off) or more milliseconds", c.LatencyMonitorThreshold)
	}
	c.validateCluster(bad)
	return errors.Join(errs...)
}

// EngineNames lists the engines a node can run: those registered with
// logkv (node/engines.go imports them).
func EngineNames() []string { return logkv.Engines() }

// engineOptions decodes EngineOptions into a new value of the engine's own
// options type (logkv.NewOptions; all defaults when the section is absent).
// An engine registered without an options type gets nil.
func (c *Config) engineOptions() (any, error) {
	opts, err := logkv.NewOptions(c.Engine)
	if err != nil {
		return nil, err
	}
	if c.EngineOptions.Kind == 0 {
		return opts, nil
	}
	if opts == nil {
		return nil, fmt.Errorf("engine_options for %s: the engine takes no options; remove the section", c.Engine)
	}
	if err := decodeStrict(&c.EngineOptions, opts); err != nil {
		return nil, fmt.Errorf("engine_options for %s: %w", c.Engine, err)
	}
	return opts, nil
}

// decodeStrict decodes n into v, rejecting keys v's type does not have with
// their line in the file (yaml.Node.Decode alone accepts unknown keys).
func decodeStrict(n *yaml.Node, v any) error {
	if err := knownKeys(n, reflect.TypeOf(v)); err != nil {
		return err
	}
	if err := n.Decode(v); err != nil {
		return yamlError(err)
	}
	return nil
}

// knownKeys checks every mapping key under n against the yaml tags of t,
// recursing into nested structs.
func knownKeys(n *yaml.Node, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	if _, custom := reflect.PointerTo(t).MethodByName("UnmarshalYAML"); custom {
		return nil
	}
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown key %q in %s (known: %s)", k.Line, k.Value, t, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
		}
		if err := knownKeys(n.Content[i+1], ft); err != nil {
			return err
		}
	}
	return nil
}

// tlsFiles returns the CA, certificate and key paths.
func (t TLS) files() (ca, cert, key string) {
	ca, cert, key = t.CA, t.Cert, t.Key
	if t.Dir != "" {
		def := func(v, name string) string {
			if v == "" {
				return t.Dir + string(os.PathSeparator) + name
			}
			return v
		}
		ca, cert, key = def(ca, "ca.crt"), def(cert, "node.crt"), def(key, "node.key")
	}
	return ca, cert, key
}

// configured reports whether any TLS file is named.
func (t TLS) configured() bool { return t.Dir != "" || t.CA != "" || t.Cert != "" || t.Key != "" }
