package replicate

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logkv/logkv/vfs"
	"github.com/stretchr/testify/require"
)

// TestSetSyncIntervalAtRuntime: a leader switched from SyncInterval mode to
// fsync-in-Await acknowledges a write only once it is durable, so it
// survives a power cut taken the moment it is acknowledged; the switch
// itself makes the writes acknowledged before it durable; switching back
// acknowledges before the fsync again.
func TestSetSyncIntervalAtRuntime(t *testing.T) {
	var g syncGate
	c := newCluster(t, nil)
	t.Cleanup(g.release) // before the cluster's cleanup closes the nodes
	mem := vfs.NewMem()
	a := c.start("a", "", func(cfg *Config) {
		cfg.FS = vfs.NewErrorFS(mem, &g)
		cfg.SyncInterval = time.Hour // only Await's kicks start a sync
	})
	write(t, a, 0, 20, 2)

	// everysec: acknowledged while its fsync is held.
	blocked := g.arm()
	_, err := a.Write(batchOf("before", "acked before its fsync"))
	require.NoError(t, err)
	<-blocked // the background syncer is inside the fsync

	// The switch waits for everything written so far to be durable.
	switched := make(chan error, 1)
	go func() { switched <- a.SetSyncInterval(0) }()
	g.release()
	require.NoError(t, <-switched)
	require.Equal(t, time.Duration(0), a.SyncInterval())
	crashed := mem.CrashClone(vfs.CrashOptions{})
	requireHas(t, c, "a1", crashed, "before")

	// always: the write's own fsync is held, and so is its acknowledgement.
	blocked = g.arm()
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(batchOf("after", "acked after its fsync"))
		done <- err
	}()
	<-blocked
	select {
	case err := <-done:
		t.Fatalf("a write was acknowledged before its fsync after the switch to fsync-in-Await (err %v)", err)
	default:
	}
	g.release()
	require.NoError(t, <-done)
	crashed = mem.CrashClone(vfs.CrashOptions{}) // the machine dies as the write is acknowledged
	requireHas(t, c, "a2", crashed, "after")

	// And back: acknowledged before the fsync again.
	require.NoError(t, a.SetSyncInterval(time.Hour))
	blocked = g.arm()
	_, err = a.Write(batchOf("again", "acked before its fsync"))
	require.NoError(t, err)
	<-blocked
	g.release()
}

// syncGate is an injector that, while armed, holds every fsync of a
// commit-log segment until released; blocked receives a value when one is
// held. Unlike holdLogSyncs it can be armed again.
type syncGate struct {
	mu      sync.Mutex
	held    bool
	gate    chan struct{}
	blocked chan struct{}
}

func (g *syncGate) arm() (blocked <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held, g.gate, g.blocked = true, make(chan struct{}), make(chan struct{}, 1)
	return g.blocked
}

func (g *syncGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		g.held = false
		close(g.gate)
	}
}

func (g *syncGate) MaybeError(op vfs.Op) error {
	if op.Kind != vfs.OpSync || !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	g.mu.Lock()
	held, gate, blocked := g.held, g.gate, g.blocked
	g.mu.Unlock()
	if held {
		select {
		case blocked <- struct{}{}:
		default:
		}
		<-gate
	}
	return nil
}

// requireHas starts a node named id on a crash image and requires key in
// its engine.
func requireHas(t *testing.T, c *cluster, id string, image *vfs.MemFS, key string) {
	t.Helper()
	c.fs[id] = image
	n := c.start(id, "")
	_, err := n.Engine().Get([]byte(key))
	require.NoError(t, err, "%s was acknowledged and must survive the crash", key)
	c.stop(id)
}
