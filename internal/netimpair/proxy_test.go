package netimpair

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wait bounds every wait for datagrams; generous, for -race on a busy
// machine. Nothing waits this long unless a test fails.
const wait = 10 * time.Second

func listen(t *testing.T) *net.UDPConn {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func newProxy(t *testing.T, target *net.UDPConn, o *Options) (*Proxy, *net.UDPAddr) {
	p, err := New(target.LocalAddr().String(), o)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	a, err := net.ResolveUDPAddr("udp", p.Addr())
	require.NoError(t, err)
	return p, a
}

func seqPacket(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

type rx struct {
	seq  int
	at   time.Time
	from *net.UDPAddr
}

// readUntil reads datagrams from c into got until done returns true, failing
// the test if that takes longer than wait.
func readUntil(t *testing.T, c *net.UDPConn, got *[]rx, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	buf := make([]byte, 2048)
	for !done() {
		require.True(t, time.Now().Before(deadline), "timed out with %d datagrams", len(*got))
		// A short read deadline so that done is rechecked: it may depend
		// on the proxy's counters as well as on what arrived.
		require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		n, from, err := c.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		require.NoError(t, err)
		require.Equal(t, 8, n)
		*got = append(*got, rx{seq: int(binary.BigEndian.Uint64(buf)), at: time.Now(), from: from})
	}
}

// echo answers every datagram on c with itself until c is closed.
func echo(t *testing.T, c *net.UDPConn) {
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			c.WriteToUDP(buf[:n], from)
		}
	}()
}

func TestImpairTransparent(t *testing.T) {
	target := listen(t)
	echo(t, target)
	p, pa := newProxy(t, target, nil)
	a, b := listen(t), listen(t)
	for i := range 10 {
		_, err := a.WriteToUDP(seqPacket(i), pa)
		require.NoError(t, err)
		_, err = b.WriteToUDP(seqPacket(100+i), pa)
		require.NoError(t, err)
	}
	var gotA, gotB []rx
	readUntil(t, a, &gotA, func() bool { return len(gotA) == 10 })
	readUntil(t, b, &gotB, func() bool { return len(gotB) == 10 })
	for i := range 10 {
		require.Equal(t, i, gotA[i].seq, "in order, unchanged")
		require.Equal(t, 100+i, gotB[i].seq)
		require.Equal(t, pa.String(), gotA[i].from.String(), "replies come from the proxy")
	}
	s := p.Stats()
	require.Equal(t, 2, s.Flows)
	require.Equal(t, DirStats{In: 20, Sent: 20}, s.Up)
	require.Equal(t, DirStats{In: 20, Sent: 20}, s.Down)
}

// Each client gets its own upstream socket, so the target tells them apart.
func TestImpairFlowPerClient(t *testing.T) {
	target := listen(t)
	_, pa := newProxy(t, target, nil)
	a, b := listen(t), listen(t)
	_, err := a.WriteToUDP(seqPacket(1), pa)
	require.NoError(t, err)
	var got []rx
	readUntil(t, target, &got, func() bool { return len(got) == 1 })
	_, err = b.WriteToUDP(seqPacket(2), pa)
	require.NoError(t, err)
	_, err = a.WriteToUDP(seqPacket(3), pa)
	require.NoError(t, err)
	readUntil(t, target, &got, func() bool { return len(got) == 3 })
	// b's and a's second datagram go through different pipes: either may
	// arrive first.
	from := map[int]string{}
	for _, r := range got {
		from[r.seq] = r.from.String()
	}
	require.NotEqual(t, from[1], from[2])
	require.Equal(t, from[1], from[3])
	// The target's reply to b's upstream socket reaches b only.
	bUp, err := net.ResolveUDPAddr("udp", from[2])
	require.NoError(t, err)
	_, err = target.WriteToUDP(seqPacket(42), bUp)
	require.NoError(t, err)
	var atB []rx
	readUntil(t, b, &atB, func() bool { return len(atB) == 1 })
	require.Equal(t, 42, atB[0].seq)
}

func TestImpairDelay(t *testing.T) {
	const up, down = 40 * time.Millisecond, 25 * time.Millisecond
	target := listen(t)
	echo(t, target)
	_, pa := newProxy(t, target, &Options{Up: Impairment{Delay: up}, Down: Impairment{Delay: down}})
	c := listen(t)
	for i := range 10 {
		start := time.Now()
		_, err := c.WriteToUDP(seqPacket(i), pa)
		require.NoError(t, err)
		var got []rx
		readUntil(t, c, &got, func() bool { return len(got) == 1 })
		rtt := got[0].at.Sub(start)
		require.GreaterOrEqual(t, rtt, up+down, "round trip %d", i)
		require.Less(t, rtt, up+down+time.Second, "round trip %d", i)
	}
}

// Delayed datagrams wait side by side, not one after another.
func TestImpairDelayConcurrent(t *testing.T) {
	const delay, n = 100 * time.Millisecond, 40 // 4s if serialised
	target := listen(t)
	_, pa := newProxy(t, target, &Options{Up: Impairment{Delay: delay}})
	c := listen(t)
	start := time.Now()
	for i := range n {
		_, err := c.WriteToUDP(seqPacket(i), pa)
		require.NoError(t, err)
	}
	var got []rx
	readUntil(t, target, &got, func() bool { return len(got) == n })
	for i, r := range got {
		require.Equal(t, i, r.seq, "a fixed delay keeps the order")
	}
	require.GreaterOrEqual(t, got[0].at.Sub(start), delay)
	require.Less(t, got[n-1].at.Sub(start), 2*time.Second, "delays overlap")
}

func TestImpairJitter(t *testing.T) {
	const delay, jitter, n = 40 * time.Millisecond, 20 * time.Millisecond, 200
	target := listen(t)
	p, pa := newProxy(t, target, &Options{Up: Impairment{Delay: delay, Jitter: jitter}, Seed: 7})
	c := listen(t)
	sent := make([]time.Time, n)
	for i := range n {
		sent[i] = time.Now()
		_, err := c.WriteToUDP(seqPacket(i), pa)
		require.NoError(t, err)
	}
	var got []rx
	readUntil(t, target, &got, func() bool { return len(got) == n })
	lo, hi := time.Hour, time.Duration(0)
	for _, r := range got {
		d := r.at.Sub(sent[r.seq])
		require.GreaterOrEqual(t, d, delay-jitter, "datagram %d", r.seq)
		require.Less(t, d, delay+jitter+time.Second, "datagram %d", r.seq)
		lo, hi = min(lo, d), max(hi, d)
	}
	require.Greater(t, hi-lo, jitter/2, "delays spread")
	require.Equal(t, uint64(n), p.Stats().Up.Sent)
}

// sendBatched sends n numbered datagrams from c to addr in batches, waiting
// after each until settled says every datagram so far is accounted for, so
// that the kernel's socket buffers never overflow. got collects what the
// reader r received.
func sendBatched(t *testing.T, c *net.UDPConn, addr *net.UDPAddr, r *net.UDPConn, n int, got *[]rx, settled func(sent int) bool) {
	const batch = 50
	for from := 0; from < n; from += batch {
		to := min(from+batch, n)
		for i := from; i < to; i++ {
			_, err := c.WriteToUDP(seqPacket(i), addr)
			require.NoError(t, err)
		}
		readUntil(t, r, got, func() bool { return settled(to) })
	}
}

// lossRun sends 2000 datagrams through a proxy losing 10% and returns the
// sequence numbers lost.
func lossRun(t *testing.T, seed uint64) []int {
	const n, loss = 2000, 0.1
	target := listen(t)
	p, pa := newProxy(t, target, &Options{Up: Impairment{Loss: loss}, Seed: seed})
	c := listen(t)
	var got []rx
	sendBatched(t, c, pa, target, n, &got, func(sent int) bool {
		return len(got)+int(p.Stats().Up.Lost) == sent
	})
	s := p.Stats().Up
	require.Equal(t, uint64(n), s.In)
	require.Equal(t, uint64(len(got)), s.Sent)
	// Binomial(2000, 0.1): mean 200, sd 13.4; five sd either side.
	require.InDelta(t, 200, float64(s.Lost), 67, "lost %d of %d", s.Lost, n)
	seen := make([]bool, n)
	for _, r := range got {
		require.False(t, seen[r.seq], "datagram %d twice", r.seq)
		seen[r.seq] = true
	}
	var lost []int
	for i, ok := range seen {
		if !ok {
			lost = append(lost, i)
		}
	}
	require.Len(t, lost, int(s.Lost))
	return lost
}

func TestImpairLoss(t *testing.T) {
	a := lossRun(t, 1)
	require.Equal(t, a, lossRun(t, 1), "the same seed loses the same datagrams")
	require.NotEqual(t, a, lossRun(t, 2), "another seed loses others")
}

func TestImpairReorder(t *testing.T) {
	const n = 1000
	target := listen(t)
	p, pa := newProxy(t, target, &Options{Up: Impairment{Reorder: 0.2}, Seed: 3})
	c := listen(t)
	var got []rx
	sendBatched(t, c, pa, target, n, &got, func(sent int) bool { return len(got) == sent })
	seqs := make([]int, n)
	for i, r := range got {
		seqs[i] = r.seq
	}
	// Every displacement is a held datagram sent right after the next:
	// adjacent swaps, nothing lost or doubled.
	swaps := 0
	for i := 0; i < n; i++ {
		if seqs[i] == i {
			continue
		}
		require.Less(t, i+1, n)
		require.Equal(t, []int{i + 1, i}, seqs[i:i+2], "at %d", i)
		swaps++
		i++
	}
	require.Equal(t, uint64(swaps), p.Stats().Up.Reordered)
	// Each hold takes the next datagram with it: about n·p/(1+p) = 167,
	// fewer for holds at a batch's end, released in order after HoldMax.
	require.Greater(t, swaps, 100)
	require.Less(t, swaps, 230)
}

// A held datagram still goes out, in order, if nothing follows it.
func TestImpairReorderHoldMax(t *testing.T) {
	target := listen(t)
	_, pa := newProxy(t, target, &Options{Up: Impairment{Reorder: 1}, HoldMax: 30 * time.Millisecond})
	c := listen(t)
	start := time.Now()
	_, err := c.WriteToUDP(seqPacket(0), pa)
	require.NoError(t, err)
	var got []rx
	readUntil(t, target, &got, func() bool { return len(got) == 1 })
	require.GreaterOrEqual(t, got[0].at.Sub(start), 30*time.Millisecond)
}

func TestImpairDuplicate(t *testing.T) {
	const n = 1000
	target := listen(t)
	p, pa := newProxy(t, target, &Options{Up: Impairment{Duplicate: 0.1}, Seed: 5})
	c := listen(t)
	var got []rx
	sendBatched(t, c, pa, target, n, &got, func(sent int) bool {
		return len(got) == sent+int(p.Stats().Up.Duplicated)
	})
	count := make([]int, n)
	for _, r := range got {
		count[r.seq]++
	}
	dups := 0
	for i, k := range count {
		require.Contains(t, []int{1, 2}, k, "datagram %d", i)
		dups += k - 1
	}
	require.Equal(t, int(p.Stats().Up.Duplicated), dups)
	// Binomial(1000, 0.1): mean 100, sd 9.5.
	require.InDelta(t, 100, dups, 48)
}

func TestImpairPartition(t *testing.T) {
	target := listen(t)
	echo(t, target)
	p, pa := newProxy(t, target, nil)
	c := listen(t)
	roundTrip := func(i int) {
		t.Helper()
		_, err := c.WriteToUDP(seqPacket(i), pa)
		require.NoError(t, err)
		var got []rx
		readUntil(t, c, &got, func() bool { return len(got) == 1 })
		require.Equal(t, i, got[0].seq, "nothing from the partition leaks out")
	}
	roundTrip(0)

	p.Partition(true)
	for i := range 20 {
		_, err := c.WriteToUDP(seqPacket(100+i), pa)
		require.NoError(t, err)
	}
	var got []rx
	readUntil(t, c, &got, func() bool { return p.Stats().Up.Partitioned == 20 })
	require.Empty(t, got)

	p.Partition(false)
	roundTrip(1)
	s := p.Stats()
	require.Equal(t, uint64(2), s.Up.Sent)
	require.Equal(t, uint64(2), s.Down.Sent)
}

// A partition also drops what was queued when it started, as a link going
// down loses what is in flight.
func TestImpairPartitionDropsQueued(t *testing.T) {
	target := listen(t)
	p, pa := newProxy(t, target, &Options{Up: Impairment{Delay: 200 * time.Millisecond}})
	c := listen(t)
	for i := range 10 {
		_, err := c.WriteToUDP(seqPacket(i), pa)
		require.NoError(t, err)
	}
	var got []rx
	readUntil(t, target, &got, func() bool { return p.Stats().Up.In == 10 })
	p.Partition(true)
	readUntil(t, target, &got, func() bool { return p.Stats().Up.Partitioned == 10 })
	p.Partition(false)
	_, err := c.WriteToUDP(seqPacket(10), pa)
	require.NoError(t, err)
	readUntil(t, target, &got, func() bool { return len(got) == 1 })
	require.Equal(t, 10, got[0].seq)
}

func TestImpairSetAndValidate(t *testing.T) {
	target := listen(t)
	p, pa := newProxy(t, target, nil)
	for _, im := range []Impairment{{Loss: -0.1}, {Reorder: 1.5}, {Delay: -1}, {Jitter: -1}} {
		require.ErrorIs(t, p.Set(im, Impairment{}), ErrInvalid)
		require.ErrorIs(t, p.Set(Impairment{}, im), ErrInvalid)
		_, err := New(target.LocalAddr().String(), &Options{Down: im})
		require.ErrorIs(t, err, ErrInvalid)
	}
	// Loss 1 in Set takes effect for the next datagram.
	require.NoError(t, p.Set(Impairment{Loss: 1}, Impairment{}))
	c := listen(t)
	_, err := c.WriteToUDP(seqPacket(0), pa)
	require.NoError(t, err)
	var got []rx
	readUntil(t, target, &got, func() bool { return p.Stats().Up.Lost == 1 })
	require.Empty(t, got)
}

func TestImpairClose(t *testing.T) {
	target := listen(t)
	echo(t, target)
	before := runtime.NumGoroutine()
	p, err := New(target.LocalAddr().String(), &Options{Up: Impairment{Delay: time.Hour}})
	require.NoError(t, err)
	c := listen(t)
	pa, err := net.ResolveUDPAddr("udp", p.Addr())
	require.NoError(t, err)
	_, err = c.WriteToUDP(seqPacket(0), pa)
	require.NoError(t, err)
	var got []rx
	readUntil(t, target, &got, func() bool { return p.Stats().Up.In == 1 })
	require.Greater(t, runtime.NumGoroutine(), before)
	// Close neither waits for the hour-long delay nor leaves goroutines.
	require.NoError(t, p.Close())
	// Close waited for the proxy's goroutines; others (the echo server's
	// reply to this very packet, the runtime's) may still be winding down.
	// (Polled here: require.Eventually would add a goroutine of its own.)
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before)
	require.ErrorIs(t, p.Close(), ErrClosed)
	require.ErrorIs(t, p.Close(), net.ErrClosed)
}
