package replicate

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// WaitFollowers returns as soon as enough followers ack (it is woken by the
// acks), gives up when its context ends, and returns at once on a node that
// does not lead.
func TestWaitFollowers(t *testing.T) {
	c := newCluster(t, nil)
	a := c.start("a", "")
	last := write(t, a, 0, 20, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.Zero(t, a.WaitFollowers(ctx, last, 1), "no follower: the context ends the wait")

	got := make(chan int, 1)
	go func() { got <- a.WaitFollowers(context.Background(), last, 1) }()
	b := c.start("b", "a")
	select {
	case n := <-got:
		require.Equal(t, 1, n)
	case <-time.After(30 * time.Second):
		t.Fatal("WaitFollowers did not wake on the follower's ack")
	}
	require.Zero(t, b.WaitFollowers(context.Background(), last, 1), "a follower leads no one")

	// Cancelling ends a wait no ack can satisfy.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { got <- a.WaitFollowers(ctx, last+1000, 1) }()
	cancel()
	select {
	case n := <-got:
		require.Zero(t, n)
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled WaitFollowers did not return")
	}
}
