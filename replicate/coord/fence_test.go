package coord

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestFenceReaders: Leading, LeadingNow, Valid and ValidFor read the fence,
// without the mutex, and say what the mutex-guarded fields say after each
// change publishLocked publishes: leading, a lapsed deadline, a handoff's
// pause, stepping down.
func TestFenceReaders(t *testing.T) {
	m, err := New(Config{Client: &clientv3.Client{}, Cluster: "c", ID: "a"})
	require.NoError(t, err)
	check := func(leading uint64, valid bool) {
		t.Helper()
		require.Equal(t, leading, m.Leading())
		require.Equal(t, leading, m.LeadingNow())
		require.Equal(t, valid, m.Valid())
		require.Equal(t, valid, m.ValidFor(leading))
	}
	check(0, false) // nothing published yet
	set := func(leading uint64, deadline time.Time, paused string) {
		m.mu.Lock()
		m.leading, m.deadline, m.pausedFor = leading, deadline, paused
		m.publishLocked()
		m.mu.Unlock()
	}
	later := time.Now().Add(time.Hour)
	set(7, later, "")
	check(7, true)
	set(7, time.Now().Add(-time.Millisecond), "")
	check(7, false) // the lease may have lapsed: no acknowledgement
	set(7, later, "b")
	check(7, false) // handing leadership to b
	set(0, later, "")
	check(0, false)
}
