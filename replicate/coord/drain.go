package coord

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Draining a member (kvnode cluster drain), for maintenance: a drained
// member never runs for leader, and if it leads, leadership is handed to
// the most caught-up follower that is not drained (HandOver), with no
// acknowledged write lost. It keeps following and serving reads. The mark
// is shards/<shard>/drained/<id> = {"v":1}, bound to no lease, so that it
// survives the member's restarts until Undrain removes it.

// Drained is the value of shards/<shard>/drained/<id>.
type Drained struct {
	V int `json:"v"`
}

func (c *Config) drainedPrefix() string { return c.shardPrefix() + "drained/" }

// Drain marks member id of the shard drained and, if it leads, hands
// leadership over and waits (until ctx ends) for another member to lead.
// It returns the shard's leader afterwards (nil if none). Draining a member
// twice is not an error.
func Drain(ctx context.Context, cli *clientv3.Client, cluster, shard, id string) (*Leader, error) {
	c := Config{Cluster: cluster, Shard: shard, ID: id}
	if c.Shard == "" {
		c.Shard = "0"
	}
	if err := c.checkNames(); err != nil {
		return nil, err
	}
	if _, err := cli.Put(ctx, c.drainedPrefix()+id, mustJSON(Drained{V: formatVersion})); err != nil {
		return nil, fmt.Errorf("coord: mark %s drained: %w", id, err)
	}
	st, err := ReadShard(ctx, cli, cluster, c.Shard)
	if err != nil {
		return nil, err
	}
	if st.Leader == nil || st.Leader.ID != id {
		return st.Leader, nil
	}
	l, err := HandOver(ctx, cli, cluster, c.Shard, "")
	if err != nil {
		return nil, fmt.Errorf("coord: %s is marked drained, but handing its leadership over failed (it keeps leading; run kvnode cluster failover, or undrain it): %w", id, err)
	}
	return l, nil
}

// Undrain removes member id's drained mark: it may run for leader again.
func Undrain(ctx context.Context, cli *clientv3.Client, cluster, shard, id string) error {
	c := Config{Cluster: cluster, Shard: shard, ID: id}
	if c.Shard == "" {
		c.Shard = "0"
	}
	if err := c.checkNames(); err != nil {
		return err
	}
	if _, err := cli.Delete(ctx, c.drainedPrefix()+id); err != nil {
		return fmt.Errorf("coord: remove %s's drained mark: %w", id, err)
	}
	return nil
}
