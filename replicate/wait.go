package replicate

import "context"

// WaitFollowers waits until want followers report every record up to seq
// durable in their logs, or ctx ends, or the node stops leading (or closes),
// and returns how many followers hold seq then. It is woken by the
// followers' acks, never by polling, so a waiter costs nothing while no ack
// arrives: Redis' WAIT.
func (n *Node) WaitFollowers(ctx context.Context, seq uint64, want int) int {
	n.roleMu.Lock()
	l := n.leader
	n.roleMu.Unlock()
	if l == nil {
		return 0
	}
	for {
		l.mu.Lock()
		held := 0
		for _, p := range l.peers {
			if p.durable.Load() >= seq {
				held++
			}
		}
		ch := l.acked
		l.mu.Unlock()
		if held >= want {
			return held
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return held
		case <-l.ctx.Done():
			return held
		}
	}
}

// WriteErr returns why the node cannot take writes, if it cannot: its commit
// log failed a write or an fsync, or its engine refused a committed record.
// Both are sticky until the node is reopened. nil otherwise.
func (n *Node) WriteErr() error {
	if p := n.failed.Load(); p != nil {
		return *p
	}
	return n.log.Err()
}
