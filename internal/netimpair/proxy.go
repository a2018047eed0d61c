package netimpair

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by calls on a closed Proxy. It wraps net.ErrClosed.
var ErrClosed = fmt.Errorf("netimpair: proxy closed: %w", net.ErrClosed)

// ErrInvalid is wrapped by the errors for bad Options or Impairments.
var ErrInvalid = errors.New("netimpair: invalid impairment")

// maxDatagram is the largest UDP payload (IPv4, 65535 minus the headers).
const maxDatagram = 65507

// Impairment is what one direction of every flow through a Proxy suffers.
// The zero value forwards everything at once, unchanged.
type Impairment struct {
	// Delay is how long each datagram is held before it is sent on.
	Delay time.Duration
	// Jitter spreads the delay uniformly over Delay-Jitter..Delay+Jitter
	// (floored at zero). As with netem, it reorders datagrams sent closer
	// together than 2*Jitter.
	Jitter time.Duration
	// Loss is the probability (0..1) that a datagram is dropped.
	Loss float64
	// Reorder is the probability (0..1) that a datagram is held back and
	// sent right after the next one (see Options.HoldMax).
	Reorder float64
	// Duplicate is the probability (0..1) that a datagram is sent twice,
	// the copy with its own jitter.
	Duplicate float64
}

func (im Impairment) validate() error {
	if im.Delay < 0 || im.Jitter < 0 {
		return fmt.Errorf("%w: negative delay %v or jitter %v", ErrInvalid, im.Delay, im.Jitter)
	}
	for _, p := range []float64{im.Loss, im.Reorder, im.Duplicate} {
		if math.IsNaN(p) || p < 0 || p > 1 {
			return fmt.Errorf("%w: probability %v outside 0..1", ErrInvalid, p)
		}
	}
	return nil
}

// Options configure a Proxy. The zero value is a transparent proxy on a
// free loopback port.
type Options struct {
	// Listen is the UDP address the proxy listens on; "" means
	// "127.0.0.1:0" (a free loopback port, see Proxy.Addr).
	Listen string
	// Up applies to datagrams from clients to the target, Down to the
	// target's replies. Both can be changed later with Proxy.Set.
	Up, Down Impairment
	// Seed seeds every pipe's generator (see the package doc); the same
	// seed gives the same decisions for the same datagrams.
	Seed uint64
	// HoldMax bounds how long a datagram held for reordering waits for the
	// next one; past it, it is sent at its own due time, in order. 0 means
	// 10ms.
	HoldMax time.Duration
	// QueueLen is how many datagrams may wait for a pipe's goroutine to
	// take them; past it they are dropped and counted as Overflow, like a
	// full device queue. 0 means 4096.
	QueueLen int
}

// DirStats counts what happened to the datagrams of one direction, over all
// flows.
type DirStats struct {
	// In counts the datagrams received for this direction.
	In uint64
	// Sent counts the datagrams sent on, duplicates included; it counts a
	// datagram before it is written, so a reader that got it sees it here.
	Sent uint64
	// Lost counts those dropped by Impairment.Loss.
	Lost uint64
	// Partitioned counts those dropped by a partition, on arrival or while
	// queued.
	Partitioned uint64
	// Reordered counts those held back and released after a later one.
	Reordered uint64
	// Duplicated counts the copies made by Impairment.Duplicate.
	Duplicated uint64
	// Overflow counts those dropped because a pipe's queue was full.
	Overflow uint64
	// SendErrors counts the sends (among Sent) that failed, for instance
	// on an ICMP port unreachable reported on the upstream socket.
	SendErrors uint64
}

// Stats is a snapshot of a Proxy's counters.
type Stats struct {
	// Up is client to target, Down target to client.
	Up, Down DirStats
	// Flows is the number of client addresses seen.
	Flows int
}

type counters struct {
	in, sent, lost, partitioned, reordered, duplicated, overflow, sendErrors atomic.Uint64
}

func (c *counters) load() DirStats {
	return DirStats{
		In: c.in.Load(), Sent: c.sent.Load(), Lost: c.lost.Load(), Partitioned: c.partitioned.Load(),
		Reordered: c.reordered.Load(), Duplicated: c.duplicated.Load(), Overflow: c.overflow.Load(),
		SendErrors: c.sendErrors.Load(),
	}
}

// Proxy is a UDP proxy that impairs what it forwards (see the package doc).
// Its methods are safe for concurrent use.
type Proxy struct {
	o      Options
	target *net.UDPAddr
	ln     *net.UDPConn

	up, down    atomic.Pointer[Impairment]
	partitioned atomic.Bool
	upStats     counters
	downStats   counters

	done chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	flows  map[netip.AddrPort]*flow
	nflows uint64
	closed bool
}

// flow is one client address: its upstream socket and its two pipes.
type flow struct {
	conn     *net.UDPConn // connected to the target
	up, down *pipe
}

// New starts a proxy that forwards to the UDP address target ("host:port").
// o may be nil for a transparent proxy on a free loopback port.
func New(target string, o *Options) (*Proxy, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.HoldMax == 0 {
		opts.HoldMax = 10 * time.Millisecond
	}
	if opts.QueueLen == 0 {
		opts.QueueLen = 4096
	}
	if opts.HoldMax < 0 || opts.QueueLen < 0 {
		return nil, fmt.Errorf("%w: negative HoldMax %v or QueueLen %d", ErrInvalid, opts.HoldMax, opts.QueueLen)
	}
	if err := opts.Up.validate(); err != nil {
		return nil, err
	}
	if err := opts.Down.validate(); err != nil {
		return nil, err
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("netimpair: target %q: %w", target, err)
	}
	la, err := net.ResolveUDPAddr("udp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("netimpair: listen %q: %w", opts.Listen, err)
	}
	ln, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("netimpair: %w", err)
	}
	p := &Proxy{o: opts, target: ta, ln: ln, done: make(chan struct{}), flows: map[netip.AddrPort]*flow{}}
	p.up.Store(&opts.Up)
	p.down.Store(&opts.Down)
	p.wg.Go(p.serve)
	return p, nil
}

// Addr is the address clients send to, in place of the target's.
func (p *Proxy) Addr() string { return p.ln.LocalAddr().String() }

// Set replaces both directions' impairments; datagrams already queued keep
// the delay they were given.
func (p *Proxy) Set(up, down Impairment) error {
	if err := up.validate(); err != nil {
		return err
	}
	if err := down.validate(); err != nil {
		return err
	}
	p.up.Store(&up)
	p.down.Store(&down)
	return nil
}

// Partition drops every datagram in both directions while on, including
// those already queued; Partition(false) heals it.
func (p *Proxy) Partition(on bool) { p.partitioned.Store(on) }

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	n := len(p.flows)
	p.mu.Unlock()
	return Stats{Up: p.upStats.load(), Down: p.downStats.load(), Flows: n}
}

// Close stops the proxy, drops whatever is queued, closes its sockets and
// waits for its goroutines. Later calls return ErrClosed.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	flows := make([]*flow, 0, len(p.flows))
	for _, f := range p.flows {
		flows = append(flows, f)
	}
	p.mu.Unlock()
	close(p.done)
	err := p.ln.Close()
	for _, f := range flows {
		f.conn.Close()
	}
	p.wg.Wait()
	return err
}

// serve reads what clients send and hands it to their flow's up pipe.
func (p *Proxy) serve() {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := p.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if p.stopped(err) {
				return
			}
			continue // a transient error on an unconnected socket
		}
		f := p.flow(from)
		if f == nil {
			continue
		}
		f.up.push(bytes.Clone(buf[:n]))
	}
}

// stopped reports whether a read error means the proxy is closing (or its
// socket closed), rather than a transient error to read past.
func (p *Proxy) stopped(err error) bool {
	select {
	case <-p.done:
		return true
	default:
	}
	return errors.Is(err, net.ErrClosed)
}

// flow returns the flow for a client address, starting it on first sight;
// nil once the proxy is closed or if the upstream socket cannot be made.
func (p *Proxy) flow(client netip.AddrPort) *flow {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if f := p.flows[client]; f != nil {
		return f
	}
	conn, err := net.DialUDP("udp", nil, p.target)
	if err != nil {
		return nil
	}
	idx := p.nflows
	p.nflows++
	f := &flow{conn: conn}
	f.up = newPipe(p, &p.up, &p.upStats, 2*idx, func(b []byte) error {
		_, err := conn.Write(b)
		return err
	})
	f.down = newPipe(p, &p.down, &p.downStats, 2*idx+1, func(b []byte) error {
		_, err := p.ln.WriteToUDPAddrPort(b, client)
		return err
	})
	p.flows[client] = f
	p.wg.Go(f.up.run)
	p.wg.Go(f.down.run)
	p.wg.Go(func() { p.upstream(f) })
	return f
}

// upstream reads the target's replies to one flow and hands them to its down
// pipe.
func (p *Proxy) upstream(f *flow) {
	buf := make([]byte, maxDatagram)
	for {
		n, err := f.conn.Read(buf)
		if err != nil {
			if p.stopped(err) {
				return
			}
			// ECONNREFUSED and the like, reported once per ICMP error on
			// a connected socket: the target may come back.
			continue
		}
		f.down.push(bytes.Clone(buf[:n]))
	}
}
