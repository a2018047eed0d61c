package history

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// netlab puts each node in its own network namespace, joined by a veth pair
// to a bridge in the caller's namespace, on a private 10.251.X.0/24 subnet it
// creates (and removes in close). A partition takes a node's host-side veth
// down, cutting it from the other nodes and from the clients; healing brings
// it back up. It needs root and iproute2.
type netlab struct {
	tag    string // unique name prefix, short enough for 15-byte link names
	bridge string
	subnet string // "10.251.X"
	ns     []string
	veth   []string // host-side veth per node
}

func ipcmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetlab builds n namespaces, or says why it cannot.
func newNetlab(n int) (*netlab, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("iproute2 (ip) not found")
	}
	pid := os.Getpid() % 1000000
	l := &netlab{tag: fmt.Sprintf("kvh%d", pid), subnet: fmt.Sprintf("10.251.%d", 10+pid%240)}
	routes, err := exec.Command("ip", "route").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ip route: %v", err)
	}
	if strings.Contains(string(routes), l.subnet+".") {
		return nil, fmt.Errorf("subnet %s.0/24 already in use", l.subnet)
	}
	l.bridge = l.tag + "br"
	steps := [][]string{
		{"link", "add", l.bridge, "type", "bridge"},
		{"addr", "add", l.subnet + ".254/24", "dev", l.bridge},
		{"link", "set", l.bridge, "up"},
	}
	for _, s := range steps {
		if err := ipcmd(s...); err != nil {
			l.close()
			return nil, err
		}
	}
	for i := range n {
		ns, h, p := fmt.Sprintf("%sn%d", l.tag, i), fmt.Sprintf("%sh%d", l.tag, i), fmt.Sprintf("%sp%d", l.tag, i)
		if err := ipcmd("netns", "add", ns); err != nil {
			l.close()
			return nil, err
		}
		l.ns = append(l.ns, ns)
		steps := [][]string{
			{"link", "add", h, "type", "veth", "peer", "name", p},
			{"link", "set", p, "netns", ns},
			{"link", "set", h, "master", l.bridge},
			{"link", "set", h, "up"},
			{"-n", ns, "addr", "add", l.addr(i) + "/24", "dev", p},
			{"-n", ns, "link", "set", p, "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if err := ipcmd(s...); err != nil {
				l.close()
				return nil, err
			}
		}
		l.veth = append(l.veth, h)
	}
	return l, nil
}

// addr is node i's IP address.
func (l *netlab) addr(i int) string { return fmt.Sprintf("%s.%d", l.subnet, i+1) }

// hosts lists every node address, for the certificate.
func (l *netlab) hosts() string {
	var hs []string
	for i := range l.ns {
		hs = append(hs, l.addr(i))
	}
	return strings.Join(hs, ",")
}

// isolate cuts node i off the network (up=false) or heals it (up=true).
func (l *netlab) isolate(i int, cut bool) error {
	state := "up"
	if cut {
		state = "down"
	}
	return ipcmd("link", "set", l.veth[i], state)
}

// close removes the namespaces (with their veths) and the bridge.
func (l *netlab) close() {
	for _, ns := range l.ns {
		_ = ipcmd("netns", "del", ns)
	}
	for _, h := range l.veth {
		_ = ipcmd("link", "del", h) // normally gone with its peer's namespace
	}
	_ = ipcmd("link", "del", l.bridge)
}

// host is the bridge's address: where the clients (and the nemesis) in the
// caller's namespace come from.
func (l *netlab) host() string { return l.subnet + ".254" }

// blackhole cuts node i off from the given addresses (cut=false heals):
// a blackhole route in its namespace drops everything it sends them, so
// no TCP connection or QUIC session between them survives, whichever side
// opened it.
func (l *netlab) blackhole(i int, addrs []string, cut bool) error {
	op := "add"
	if !cut {
		op = "del"
	}
	var errs []error
	for _, a := range addrs {
		if err := ipcmd("-n", l.ns[i], "route", op, "blackhole", a+"/32"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
