package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/logkv/logkv/replicate/transport"
)

// Main is kvnode's command line: it runs a node (the default), writes
// certificates (certs) or checks a config file (check-config), and returns
// the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "certs":
			return mainCerts(args[1:], stdout, stderr)
		case "check-config":
			return mainCheckConfig(args[1:], stdout, stderr)
		case "cluster":
			return mainCluster(args[1:], stdout, stderr)
		case "salvage":
			return mainSalvage(args[1:], stdout, stderr)
		case "help":
			usage(stdout)
			return 0
		}
	}
	return mainRun(args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `kvnode: a logkv node speaking the Redis protocol.

Usage:
  kvnode [flags]                     run a node (defaults: lsm engine in ./kvnode-data,
                                     Redis protocol on 127.0.0.1:6380, admin on :9380)
  kvnode certs -dir DIR -node NAME [-hosts H]
                                     issue a node certificate for replication into DIR/NAME
                                     (and make the CA in DIR/ca on first use)
  kvnode check-config FILE           validate a config file without starting
  kvnode cluster status|failover -etcd URL -cluster NAME
                                     show a cluster's members, leader, epochs and lag, or
                                     hand leadership to a caught-up follower (-to ID)
  kvnode cluster init -shards a,b,c -etcd URL -cluster NAME
                                     spread the hash slots over shards (members run -shard)
  kvnode salvage -from DIR -to NEW   copy what still checks out from a damaged data
                                     directory into a new one, reporting what it skipped

Run 'kvnode -h' for the flags; node/example.yaml documents the config file.
`)
}

// runFlags are kvnode's flags; each overrides its config file key.
type runFlags struct {
	config, engine, data, listen, admin, repl, replicaOf, tlsDir, ack, appendFsync, logLevel string
	quorum                                                                                   int
	// requirePass and requirePassFile set the default user's password;
	// protectedMode, when given, overrides protected_mode.
	requirePass, requirePassFile string
	protectedMode                optionalBool
	// etcd and cluster make the node a cluster member (cluster.go).
	etcd, cluster, shard string
}

// optionalBool is a boolean flag that knows whether it was given.
type optionalBool struct{ set, v bool }

func (b *optionalBool) String() string   { return fmt.Sprint(b.v) }
func (b *optionalBool) IsBoolFlag() bool { return true }
func (b *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	b.set, b.v = true, v
	return err
}

// passwordEnv names the environment variable holding the default user's
// password: unlike -requirepass, it is not in the process list.
const passwordEnv = "KVNODE_PASSWORD"

func mainRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvnode", flag.ContinueOnError)
	fs.SetOutput(stdout) // -h prints the usage and flags on stdout; errors go to stderr below
	var f runFlags
	fs.StringVar(&f.config, "config", "", "YAML config `file` (flags override it)")
	fs.StringVar(&f.engine, "engine", "", "storage engine: "+strings.Join(EngineNames(), ", ")+" (default lsm)")
	fs.StringVar(&f.data, "data", "", "data `dir` (default ./kvnode-data)")
	fs.StringVar(&f.listen, "listen", "", "Redis protocol `addr` (default 127.0.0.1:6380)")
	fs.StringVar(&f.admin, "admin", "", "admin HTTP `addr`, or off (default 127.0.0.1:9380)")
	fs.StringVar(&f.repl, "repl", "", "replication (QUIC) `addr`, or off (default 127.0.0.1:7380)")
	fs.StringVar(&f.replicaOf, "replicaof", "", "follow the leader at this replication `addr`")
	fs.StringVar(&f.tlsDir, "tls-dir", "", "`dir` with ca.crt, node.crt, node.key (see kvnode certs)")
	fs.StringVar(&f.ack, "ack", "", "replication ack mode: async or sync")
	fs.StringVar(&f.appendFsync, "appendfsync", "", "acknowledge writes after their fsync (always) or before it, syncing in the background (everysec); default always")
	fs.IntVar(&f.quorum, "quorum", 0, "followers that must hold a write in sync mode")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.requirePass, "requirepass", "", "the default user's `password` (visible in ps: prefer -requirepass-file or $"+passwordEnv+")")
	fs.StringVar(&f.requirePassFile, "requirepass-file", "", "`file` whose first line is the default user's password")
	fs.Var(&f.protectedMode, "protected-mode", "without a password, refuse clients from beyond loopback (default true)")
	fs.StringVar(&f.etcd, "etcd", "", "etcd client `URLs`, comma-separated: join a cluster that fails over by itself (with -cluster)")
	fs.StringVar(&f.cluster, "cluster", "", "the cluster `name` to join in etcd (with -etcd)")
	fs.StringVar(&f.shard, "shard", "", "the `shard` (replica group) to join in the cluster (default 0, the one shard of a cluster without a slot map)")
	fs.Usage = func() { usage(fs.Output()); fmt.Fprintln(fs.Output(), "\nFlags:"); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fs.SetOutput(stderr)
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kvnode: unexpected argument %q; see kvnode -h\n", fs.Arg(0))
		return 2
	}
	cfg, err := f.apply()
	if err != nil {
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		fmt.Fprintf(stderr, "kvnode: -log-level: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// The engines log what recovery cuts to slog.Default() unless their
	// options name a logger: in kvnode that is the node's own stream.
	slog.SetDefault(logger)
	n, err := New(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "kvnode: %s engine in %s; connect with: redis-cli -p %s\n", cfg.Engine, cfg.DataDir, portOf(n.Addr()))
	if a := n.AdminAddr(); a != "" {
		fmt.Fprintf(stdout, "kvnode: metrics at http://%s/metrics\n", a)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		s := <-sig
		logger.Info("signal received; shutting down", "signal", s.String())
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
		defer cancel()
		n.Shutdown(ctx)
	}()
	if err := n.Serve(); err != nil {
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return 1
	}
	return 0
}

// apply loads the config file (or the defaults) and lays the flags over it.
func (f *runFlags) apply() (Config, error) {
	cfg := DefaultConfig()
	if f.config != "" {
		var err error
		if cfg, err = LoadConfig(f.config); err != nil {
			return cfg, err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Engine, f.engine)
	set(&cfg.DataDir, f.data)
	set(&cfg.Listen, f.listen)
	set(&cfg.Admin, f.admin)
	set(&cfg.Replication.Listen, f.repl)
	set(&cfg.Replication.ReplicaOf, f.replicaOf)
	set(&cfg.TLS.Dir, f.tlsDir)
	set(&cfg.Replication.Ack, f.ack)
	set(&cfg.AppendFsync, f.appendFsync)
	// The password: -requirepass, else -requirepass-file, else
	// $KVNODE_PASSWORD, else the config's password or password_file.
	switch env := os.Getenv(passwordEnv); {
	case f.requirePass != "":
		cfg.Password, cfg.PasswordFile = f.requirePass, ""
	case f.requirePassFile != "":
		cfg.Password, cfg.PasswordFile = "", f.requirePassFile
	case env != "":
		cfg.Password, cfg.PasswordFile = env, ""
	}
	if f.protectedMode.set {
		cfg.ProtectedMode = f.protectedMode.v
	}
	if f.etcd != "" {
		cfg.Cluster.EtcdEndpoints = strings.Split(f.etcd, ",")
	}
	set(&cfg.Cluster.Name, f.cluster)
	set(&cfg.Cluster.Shard, f.shard)
	if f.quorum != 0 {
		cfg.Replication.Quorum = f.quorum
	}
	if f.engine != "" && f.config != "" && cfg.EngineOptions.Kind != 0 {
		return cfg, fmt.Errorf("-engine %s overrides the config's engine, but its engine_options are for that engine; remove one of them", f.engine)
	}
	return cfg, cfg.Validate()
}

// mainCerts is `kvnode certs`: it makes the CA once, in DIR/ca (whose key
// stays on the machine that issues certificates), and a certificate per node
// in DIR/NAME, the directory that node runs with (-tls-dir DIR/NAME). The
// node name is the certificate's common name and the node's replication id:
// a leader refuses a follower whose Hello claims another.
func mainCerts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvnode certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "certificate `dir`: the CA in DIR/ca, each node's files in DIR/NAME (required)")
	nodes := fs.String("node", "", "comma-separated node `names` to issue certificates for (each gets DIR/NAME/{ca.crt,node.crt,node.key})")
	hosts := fs.String("hosts", "", "comma-separated host names or IPs the node certificates are valid for, besides 127.0.0.1, localhost and ::1")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: kvnode certs -dir DIR [-node NAME[,NAME...]] [-hosts H[,H...]]\n  e.g. kvnode certs -dir ./tls -node n1,n2,n3, then run node n1 with -tls-dir ./tls/n1")
		return 2
	}
	var names []string
	for _, n := range strings.Split(*nodes, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if err := transport.CheckNodeName(n); err != nil {
			fmt.Fprintf(stderr, "kvnode certs: %v\n", err)
			return 2
		}
		names = append(names, n)
	}
	if _, err := os.Stat(filepath.Join(*dir, transport.CAKeyFile)); err == nil {
		// The layout before DIR/ca: every node read the CA key.
		fmt.Fprintf(stderr, "kvnode certs: %s holds ca.key beside what nodes read, so any node could mint certificates: move %s and %s into %s, then issue a certificate per node with -node\n",
			*dir, filepath.Join(*dir, transport.CAKeyFile), filepath.Join(*dir, transport.CACertFile), filepath.Join(*dir, transport.CADir))
		return 1
	}

	ca, err := transport.LoadCA(*dir)
	switch {
	case err == nil && len(names) == 0:
		fmt.Fprintf(stderr, "kvnode certs: %s already holds a CA; refusing to replace it (issue node certificates with -node NAME, or remove the directory to start over)\n", *dir)
		return 1
	case err == nil:
		fmt.Fprintf(stdout, "kvnode certs: using the CA in %s\n", filepath.Join(*dir, transport.CADir))
	case errors.Is(err, os.ErrNotExist):
		if ca, err = transport.WriteCA(*dir); err != nil {
			fmt.Fprintf(stderr, "kvnode certs: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "kvnode certs: wrote a CA to %s (keep %s there: it signs node certificates, and no node needs it)\n",
			filepath.Join(*dir, transport.CADir), transport.CAKeyFile)
	default:
		fmt.Fprintf(stderr, "kvnode certs: %v\n", err)
		return 1
	}

	valid := []string{"127.0.0.1", "localhost", "::1"}
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			valid = append(valid, h)
		}
	}
	for _, n := range names {
		if err := ca.WriteNode(*dir, n, valid); err != nil {
			fmt.Fprintf(stderr, "kvnode certs: node %s: %v\n", n, err)
			return 1
		}
		fmt.Fprintf(stdout, "kvnode certs: node %s: %s valid for %s; run it with -tls-dir %s\n",
			n, filepath.Join(*dir, n), strings.Join(valid, ", "), filepath.Join(*dir, n))
	}
	if len(names) == 0 {
		fmt.Fprintf(stdout, "issue a certificate per node: kvnode certs -dir %s -node NAME -hosts HOST\n", *dir)
	}
	return 0
}

func mainCheckConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: kvnode check-config FILE")
		return 2
	}
	cfg, err := LoadConfig(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "kvnode: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%s engine, data in %s, listening on %s)\n", args[0], cfg.Engine, cfg.DataDir, cfg.Listen)
	return 0
}
