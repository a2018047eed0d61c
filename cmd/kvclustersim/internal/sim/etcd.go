package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Etcd is the etcd the simulation measures: one it started, or one it was
// pointed at (then its process is known only if its pid was given).
type Etcd struct {
	// Endpoint is the client URL.
	Endpoint string
	// Pid is the etcd process, 0 when unknown (CPU and RSS are then not
	// measured).
	Pid int
	cmd *exec.Cmd
	dir string
}

// StartEtcd starts bin (Debian's etcd-server) on free loopback ports with
// a data directory under dir and etcd's default heartbeat (100 ms) and
// election timeout (1 s), as a production etcd runs, and returns once it
// answers. Its log goes to dir/etcd.log.
func StartEtcd(ctx context.Context, bin, dir string) (*Etcd, error) {
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	defer ignore(logf.Close) // the child holds its own descriptor
	cmd := exec.Command(bin,
		"--name", "sim",
		"--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", "http://"+client,
		"--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer,
		"--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "sim=http://"+peer,
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a ^C to the simulator reaches etcd through
	// Stop, not the terminal, so the measurement ends cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sim: start etcd %s: %w (install Debian's etcd-server, or pass -etcd URL)", bin, err)
	}
	e := &Etcd{Endpoint: "http://" + client, Pid: cmd.Process.Pid, cmd: cmd, dir: dir}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second, Logger: zapNop})
	if err != nil {
		e.Stop()
		return nil, err
	}
	defer ignore(cli.Close)
	deadline := time.Now().Add(30 * time.Second)
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(sctx, "health")
		cancel()
		if err == nil {
			return e, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			e.Stop()
			return nil, fmt.Errorf("sim: etcd did not answer within 30s (its log: %s): %w", filepath.Join(dir, "etcd.log"), err)
		}
		time.Sleep(50 * time.Millisecond) // polling etcd's start; nothing to wait on
	}
}

// Stop ends an etcd StartEtcd started; it does nothing for one it did not.
func (e *Etcd) Stop() {
	if e.cmd == nil {
		return
	}
	if err := e.cmd.Process.Kill(); err == nil {
		_ = e.cmd.Wait() // reaped; its exit status is the kill's
	}
	e.cmd = nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ignore(l.Close)
	return l.Addr().String(), nil
}

// ProcStat is a process's CPU time and resident memory, from /proc.
type ProcStat struct {
	CPU time.Duration // user + system
	RSS int64         // bytes
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux this runs on (glibc's sysconf(_SC_CLK_TCK)).
const clockTick = 100

// ReadProc reads pid's CPU time and RSS.
func ReadProc(pid int) (ProcStat, error) {
	var s ProcStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields after it start past the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return s, errors.New("sim: /proc stat without ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, errors.New("sim: /proc stat too short")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("sim: /proc stat: %w", err)
	}
	s.CPU = time.Duration(ut+st) * time.Second / clockTick
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st2), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("sim: /proc status VmRSS %q: %w", v, err)
			}
			s.RSS = kb << 10
		}
	}
	return s, nil
}

// Metrics is one scrape of etcd's /metrics: each sample's value by its
// name and labels as the text format writes them (`name{a="b"}`).
type Metrics map[string]float64

// maxMetricsBytes bounds a scrape: etcd's is about 100 KiB.
const maxMetricsBytes = 16 << 20

// Scrape reads etcd's Prometheus metrics from endpoint/metrics.
func Scrape(ctx context.Context, endpoint string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer ignore(resp.Body.Close)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sim: etcd /metrics answered %s", resp.Status)
	}
	m := Metrics{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, maxMetricsBytes))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// Sum adds the samples of metric name whose labels hold every one of
// labels (each `key="value"`).
func (m Metrics) Sum(name string, labels ...string) float64 {
	var t float64
	for k, v := range m {
		n, rest, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if ok {
			t += v
		}
	}
	return t
}

// ignore calls close and drops its error: closing a client, a listener or a
// response body the simulation is done with changes no measurement.
func ignore(close func() error) { _ = close() }
