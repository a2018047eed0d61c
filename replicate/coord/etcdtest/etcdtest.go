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
	"sync"
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
	bin, err := Binary()
	if err != nil {
		if required() {
			t.Fatalf("etcdtest: %v (CI=true or LOGKV_REQUIRE_ETCD=1 requires it)", err)
		}
		t.Skipf("etcdtest: %v; skipping (set LOGKV_REQUIRE_ETCD=1 to fail instead)", err)
	}
	dir := t.TempDir()
	client, peer := freePort(t), freePort(t)
	cu := "http://" + client
	pu := "http://" + peer
	cmd := exec.Command(bin,
		"--name", "t",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "t="+pu,
		"--heartbeat-interval", "10", "--election-timeout", "50",
		"--log-level", "error", "--logger", "zap")
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("etcdtest: start %s: %v", bin, err)
	}
	s := &Server{Endpoint: cu}
	var stopOnce sync.Once
	s.stop = func() {
		stopOnce.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(func() {
		s.stop()
		logf.Close()
	})
	// Wait until it answers.
	cli := s.Client(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Fatalf("etcdtest: etcd at %s did not answer within 15s: %v\n%s", cu, err, b)
		}
		time.Sleep(20 * time.Millisecond) // polling for the condition, with a deadline
	}
}

// Stop kills the server, as an etcd outage: clients' requests fail until
// the test ends (there is no restart).
func (s *Server) Stop() { s.stop() }

// Client returns a new client of s, closed at t's end.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
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
