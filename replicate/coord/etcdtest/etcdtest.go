// Package etcdtest starts a real etcd server for tests: Debian's
// etcd-server binary (/usr/bin/etcd, or $LOGKV_ETCD), on loopback with
// free ports and a temporary data directory. There is no mock: the tests
// of coordination exist to find what a real etcd does.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Server is a running etcd.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:PORT.
	Endpoint string
	stop     func()
	signal   func(os.Signal) error
}

// Binary returns the etcd binary to run: $LOGKV_ETCD, or etcd on PATH, or
// /usr/bin/etcd.
func Binary() (string, error) {
	if b := os.Getenv("LOGKV_ETCD"); b != "" {
		return b, nil
	}
	if b, err := exec.LookPath("etcd"); err == nil {
		return b, nil
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", nil
	}
	return "", fmt.Errorf("no etcd binary: install Debian's etcd-server (apt-get install etcd-server) or set LOGKV_ETCD")
}

// required reports whether a missing etcd fails the test instead of
// skipping it: in CI, or with LOGKV_REQUIRE_ETCD=1.
func required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("LOGKV_REQUIRE_ETCD") == "1"
}

// Start starts an etcd for t, stopped at t's end. Its heartbeat is 10ms
// and its election timeout 50ms, so that etcd grants leases of 1s (its
// minimum TTL is 1.5 election timeouts, rounded up to a second).
func Start(t testing.TB) *Server {
	t.Helper()
	return StartCluster(t, 1, 10, 50)[0]
}

// StartCluster starts an etcd cluster of n members for t, each stopped at
// t's end, with the given heartbeat and election timeout in milliseconds
// (a cluster of several members on a loaded machine needs more than
// Start's 10 and 50 to keep its leader). It returns once the cluster
// answers.
func StartCluster(t testing.TB, n, heartbeatMs, electionMs int) []*Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if required() {
			t.Fatalf("etcdtest: %v (CI=true or LOGKV_REQUIRE_ETCD=1 requires it)", err)
		}
		t.Skipf("etcdtest: %v; skipping (set LOGKV_REQUIRE_ETCD=1 to fail instead)", err)
	}
	dir := t.TempDir()
	type member struct{ name, client, peer string }
	var ms []member
	var initial []string
	for i := range n {
		m := member{fmt.Sprintf("m%d", i), "http://" + freePort(t), "http://" + freePort(t)}
		ms = append(ms, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	var servers []*Server
	for _, m := range ms {
		cmd := exec.Command(bin,
			"--name", m.name,
			"--data-dir", filepath.Join(dir, m.name),
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--heartbeat-interval", fmt.Sprint(heartbeatMs), "--election-timeout", fmt.Sprint(electionMs),
			"--log-level", "error", "--logger", "zap")
		logf, err := os.Create(filepath.Join(dir, m.name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("etcdtest: start %s: %v", bin, err)
		}
		s := &Server{Endpoint: m.client}
		var stopOnce sync.Once
		s.stop = func() {
			stopOnce.Do(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
		}
		s.signal = cmd.Process.Signal
		t.Cleanup(func() {
			_ = s.signal(syscall.SIGCONT) // a paused server is killed all the same; the error is moot
			s.stop()
			logf.Close()
		})
		servers = append(servers, s)
	}
	// Wait until it answers.
	cli := ClientOf(t, Endpoints(servers)...)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return servers
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, ms[0].name+".log"))
			t.Fatalf("etcdtest: etcd at %v did not answer within 15s: %v\n%s", Endpoints(servers), err, b)
		}
		time.Sleep(20 * time.Millisecond) // polling for the condition, with a deadline
	}
}

// Endpoints returns the client URLs of servers.
func Endpoints(servers []*Server) []string {
	var eps []string
	for _, s := range servers {
		eps = append(eps, s.Endpoint)
	}
	return eps
}

// Stop kills the server, as an etcd outage: clients' requests fail until
// the test ends (there is no restart).
func (s *Server) Stop() { s.stop() }

// Pause stops the server's process (SIGSTOP), as an etcd that is
// unreachable: requests hang and leases are not renewed, until Resume.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT); its data and ports are as
// they were.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

// Client returns a new client of s, closed at t's end.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return ClientOf(t, s.Endpoint)
}

// ClientOf returns a new client of the endpoints, closed at t's end.
func ClientOf(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
