package replicate

import (
	"fmt"

	"github.com/logkv/logkv"
)

// PromoteTo makes the node the leader of epoch, an epoch chosen outside the
// node: by coordination (package coord), where it is the etcd revision of
// the leader key, ordered across the whole cluster's history. Promote picks
// one newer than any this node has seen, which two nodes that never saw each
// other's epochs could both pick; PromoteTo cannot collide that way.
//
// A node already leading an older epoch starts the new one: its followers
// are disconnected (they reconnect and see the new epoch) and the writes in
// flight finish first. epoch must be newer than the node's epoch and than
// any leader's it followed; PromoteTo of the epoch it already leads does
// nothing.
func (n *Replica) PromoteTo(epoch uint64) error {
	if n.closed.Load() {
		return logkv.ErrClosed
	}
	cur := n.log.Epoch()
	if n.Role() == Leader && cur == epoch {
		return nil
	}
	if epoch <= cur {
		return fmt.Errorf("replicate: cannot lead epoch %d: the log is already at epoch %d", epoch, cur)
	}
	n.roleMu.Lock()
	ld, f := n.leader, n.follower
	n.leader, n.follower = nil, nil
	n.roleMu.Unlock()
	if ld != nil {
		ld.stop()
	}
	if f != nil {
		f.stop()
		if e := f.leaderEpoch.Load(); e >= epoch {
			return fmt.Errorf("replicate: cannot lead epoch %d: followed a leader of epoch %d", epoch, e)
		}
	}
	if err := n.stopWrites(); err != nil {
		return err
	}
	if a := n.applied.Load(); a < n.log.LastSeq() {
		// A follower that never reached its leader has not replayed its
		// log yet.
		if err := n.replay(a + 1); err != nil {
			return err
		}
	}
	return n.becomeLeader(epoch)
}
