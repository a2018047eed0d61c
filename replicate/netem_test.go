//go:build linux

package replicate

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv/replicate/transport"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// inNetns runs fn on a thread switched into the network namespace at path,
// so that the sockets fn opens live there.
func inNetns[T any](path string, fn func() (T, error)) (T, error) {
	var zero T
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return zero, err
	}
	defer orig.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return zero, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return zero, err
	}
	v, err := fn()
	if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
		// Leave the thread locked: it dies with its goroutine rather than
		// run others in the wrong namespace.
		return v, rerr
	}
	runtime.UnlockOSThread()
	return v, err
}

// TestNetemConvergence runs a leader and two followers over QUIC inside a
// network namespace of their own, with tc netem adding delay, loss and
// reordering on its loopback where the kernel has netem, then partitions the
// namespace (loopback down) while the leader takes writes, heals it, and
// checks that the followers reconnect and converge. Where the kernel has no
// netem (this project's CI machine), delay, loss and reorder still run in
// TestImpairConvergence, through the user-space proxy of internal/netimpair.
func TestNetemConvergence(t *testing.T) {
	if testing.Short() {
		t.Skip("network fault test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root and iproute2 (ip, tc): not running as root")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs root and iproute2 (ip, tc): %v", err)
		}
	}
	ns := fmt.Sprintf("logkv-netem-%d", os.Getpid())
	run := func(args ...string) (string, error) {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	inNS := func(args ...string) (string, error) {
		return run(append([]string{"ip", "netns", "exec", ns}, args...)...)
	}
	if out, err := run("ip", "netns", "add", ns); err != nil {
		t.Skipf("needs root and iproute2 (ip, tc): ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { run("ip", "netns", "del", ns) })
	out, err := inNS("ip", "link", "set", "lo", "up")
	require.NoError(t, err, out)
	netem := true
	if out, err := inNS("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "5ms", "2ms", "loss", "2%", "reorder", "10%", "50%"); err != nil {
		// Kernels without sch_netem: the partition below still runs.
		t.Logf("tc netem unavailable here (%v: %s): testing the partition and heal only, without delay, loss or reordering", err, out)
		netem = false
	}
	nsPath := "/var/run/netns/" + ns
	listen := func(addr string) (net.PacketConn, error) {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		return inNetns(nsPath, func() (net.PacketConn, error) { return net.ListenPacket("udp", addr) })
	}

	ca, err := transport.NewCA("netem CA")
	require.NoError(t, err)
	c := newCluster(t, func(cfg *Config) {
		id, err := ca.Identity(cfg.ID, "127.0.0.1")
		require.NoError(t, err)
		tr, err := transport.NewQUIC(transport.QUICOptions{
			Identity: id, Logger: cfg.Logger, ListenPacket: listen,
			IdleTimeout: 2 * time.Second, KeepAlive: 400 * time.Millisecond, HandshakeTimeout: 2 * time.Second,
		})
		require.NoError(t, err)
		cfg.Transport, cfg.ListenAddr = tr, "127.0.0.1:0"
		cfg.RetryMax = 200 * time.Millisecond
	})
	a := c.start("a", "")
	b := c.start("b", "a")
	cn := c.start("c", "a")
	write(t, a, 0, 3000, 8)
	requireConverged(t, a, b, cn)
	if netem {
		t.Log("converged under netem delay, loss and reordering")
	}

	// Partition: the leader keeps taking writes while nobody hears it.
	out, err = inNS("ip", "link", "set", "lo", "down")
	require.NoError(t, err, out)
	write(t, a, 3000, 2000, 4)
	require.Eventually(t, func() bool {
		for _, s := range a.Followers() {
			if s.State == StateStreaming {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the leader notices the partition (idle timeout)")

	// Heal.
	out, err = inNS("ip", "link", "set", "lo", "up")
	require.NoError(t, err, out)
	if netem {
		out, err := inNS("tc", "qdisc", "replace", "dev", "lo", "root", "netem", "delay", "5ms", "2ms", "loss", "2%", "reorder", "10%", "50%")
		require.NoError(t, err, out)
	}
	write(t, a, 5000, 500, 4)
	requireConverged(t, a, b, cn)
	require.Greater(t, b.Status().Connects, uint64(1), "b reconnected after the partition")
	require.Greater(t, cn.Status().Connects, uint64(1), "c reconnected after the partition")
}
