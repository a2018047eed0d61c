package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logkv/logkv/replicate"
	"github.com/logkv/logkv/replicate/coord"
	"github.com/stretchr/testify/require"
)

// viewBackend is a backend that reports a fixed replicationView; nothing
// else of it may be called.
type viewBackend struct {
	backend
	v replicationView
}

func (b viewBackend) Replication() replicationView { return b.v }

// TestReplicationViewReplies pins ROLE and INFO replication and
// persistence, byte for byte, for each kind of view the three backends
// report (standalone, replicated leader and follower, cluster member). The
// backends only report data since the formatting moved to the command
// layer (issue #19); the expected replies are what the backends wrote
// themselves before the move.
func TestReplicationViewReplies(t *testing.T) {
	leaderLog := &replicate.Status{Role: replicate.Leader, Epoch: 7, LastSeq: 42, DurableSeq: 41, Applied: 42,
		LogFirstSeq: 3, LogBytes: 1234, CheckpointSeq: 40}
	followerLog := &replicate.Status{Role: replicate.Follower, Epoch: 7, LastSeq: 40, DurableSeq: 40, Applied: 39,
		LogFirstSeq: 1, LogBytes: 999, CheckpointSeq: 30, State: replicate.StateStreaming, LeaderLast: 42, Resyncs: 2}
	steppedDown := *leaderLog // a cluster member whose log still leads after it stepped down
	followers := []replicate.FollowerStatus{
		{ID: "f1", State: replicate.StateStreaming, Durable: 40, LagSeconds: 0.25, LagRecords: 2, LagBytes: 64, Resyncs: 1},
		{ID: "f2", State: replicate.StateResync, Durable: 0},
	}
	member := &memberView{name: "c1", joined: true, leader: &coord.Leader{ID: "a", RESP: "127.0.0.1:7001", Epoch: 5},
		readLag: 30 * time.Millisecond, maxReadLag: 100 * time.Millisecond, leaseValid: true}
	const logLines = "repl_epoch:7\r\nrepl_durable_seq:41\r\nrepl_log_first_seq:3\r\nrepl_log_bytes:1234\r\n"
	for _, tc := range []struct {
		name              string
		v                 replicationView
		role, info, persi string
	}{
		{
			name:  "standalone",
			v:     replicationView{master: true, lastSeq: 9},
			role:  "*3\r\n$6\r\nmaster\r\n:9\r\n*0\r\n",
			info:  "role:master\r\nconnected_slaves:0\r\nmaster_repl_offset:9\r\n",
			persi: "durability:none\r\naof_enabled:0\r\n",
		},
		{
			name: "leader",
			v:    replicationView{master: true, lastSeq: 42, log: leaderLog, followers: followers},
			role: "*3\r\n$6\r\nmaster\r\n:42\r\n*2\r\n" +
				"*3\r\n$2\r\nf1\r\n$0\r\n\r\n$2\r\n40\r\n" +
				"*3\r\n$2\r\nf2\r\n$0\r\n\r\n$1\r\n0\r\n",
			info: "role:master\r\nconnected_slaves:2\r\n" +
				"slave0:id=f1,state=streaming,offset=40,lag=0.250,lag_records=2,lag_bytes=64,resyncs=1\r\n" +
				"slave1:id=f2,state=resync,offset=0,lag=0.000,lag_records=0,lag_bytes=0,resyncs=0\r\n" +
				"master_repl_offset:42\r\n" + logLines,
			persi: "durability:full\r\naof_enabled:1\r\ncommitlog_last_seq:42\r\ncommitlog_durable_seq:41\r\n" +
				"commitlog_first_seq:3\r\ncommitlog_bytes:1234\r\nengine_durable_seq:40\r\naof_last_write_status:ok\r\n",
		},
		{
			name: "follower",
			v: replicationView{lastSeq: 40, log: followerLog, writeErr: errors.New("disk full"),
				leaderAddr: "10.0.0.1:7100", masterHost: "10.0.0.1:7100", linkState: replicate.StateStreaming},
			// A replicated follower knows its leader's replication
			// address only: it names it whole as the host, port 0.
			role: "*5\r\n$5\r\nslave\r\n$13\r\n10.0.0.1:7100\r\n:0\r\n$9\r\nstreaming\r\n:39\r\n",
			info: "role:slave\r\nmaster_addr:10.0.0.1:7100\r\nmaster_link_status:streaming\r\nmaster_last_seq:42\r\n" +
				"slave_repl_offset:39\r\nfull_resyncs:2\r\nmaster_repl_offset:40\r\n" +
				"repl_epoch:7\r\nrepl_durable_seq:40\r\nrepl_log_first_seq:1\r\nrepl_log_bytes:999\r\n",
			persi: "durability:full\r\naof_enabled:1\r\ncommitlog_last_seq:40\r\ncommitlog_durable_seq:40\r\n" +
				"commitlog_first_seq:1\r\ncommitlog_bytes:999\r\nengine_durable_seq:30\r\n" +
				"aof_last_write_status:err\r\naof_last_write_error:disk full\r\n",
		},
		{
			name: "cluster leader",
			v: replicationView{master: true, lastSeq: 42, log: leaderLog,
				cluster: &memberView{name: "c1", joined: true, leader: &coord.Leader{ID: "a", RESP: "127.0.0.1:7001", Epoch: 5},
					leading: 5, leaseValid: true, leaseLeft: 1500 * time.Millisecond}},
			role: "*3\r\n$6\r\nmaster\r\n:42\r\n*0\r\n",
			info: "role:master\r\nconnected_slaves:0\r\nmaster_repl_offset:42\r\n" + logLines +
				"cluster_name:c1\r\ncluster_leader_id:a\r\ncluster_leader_addr:127.0.0.1:7001\r\ncluster_leader_epoch:5\r\n" +
				"cluster_leading_epoch:5\r\ncluster_lease_valid:1\r\ncluster_lease_deadline_ms:1500\r\n",
		},
		{
			// Not the elected leader while its log still leads: slave, in
			// "connect", and INFO's lines follow the log's role.
			name: "cluster member stepped down",
			v: replicationView{lastSeq: 42, log: &steppedDown, followers: followers[:1],
				masterHost: "127.0.0.1", masterPort: 7001, linkState: "connect", cluster: member},
			role: "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:7001\r\n$7\r\nconnect\r\n:42\r\n",
			info: "role:slave\r\nconnected_slaves:1\r\n" +
				"slave0:id=f1,state=streaming,offset=40,lag=0.250,lag_records=2,lag_bytes=64,resyncs=1\r\n" +
				"master_repl_offset:42\r\n" + logLines +
				"cluster_name:c1\r\ncluster_leader_id:a\r\ncluster_leader_addr:127.0.0.1:7001\r\ncluster_leader_epoch:5\r\n" +
				"cluster_read_lag_ms:30\r\ncluster_max_read_lag_ms:100\r\ncluster_leading_epoch:0\r\ncluster_lease_valid:1\r\n",
		},
		{
			name: "cluster member not joined",
			v: replicationView{lastSeq: 40, log: followerLog, leaderAddr: "10.0.0.1:7100", linkState: replicate.StateStreaming,
				cluster: &memberView{name: "c1"}},
			role: "*5\r\n$5\r\nslave\r\n$0\r\n\r\n:0\r\n$9\r\nstreaming\r\n:39\r\n",
			info: "role:slave\r\nmaster_addr:10.0.0.1:7100\r\nmaster_link_status:streaming\r\nmaster_last_seq:42\r\n" +
				"slave_repl_offset:39\r\nfull_resyncs:2\r\nmaster_repl_offset:40\r\n" +
				"repl_epoch:7\r\nrepl_durable_seq:40\r\nrepl_log_first_seq:1\r\nrepl_log_bytes:999\r\ncluster_name:c1\r\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{backend: viewBackend{v: tc.v}}
			c := &client{}
			c.conn = &replyConn{n: n, c: c, check: 1 << 60}
			cmdRole(n, c, nil)
			require.Equal(t, tc.role, string(c.conn.out), "ROLE")
			require.Equal(t, tc.info, infoLines(func(add func(string, any)) { replicationInfo(tc.v, add) }), "INFO replication")
			if tc.persi != "" {
				require.Equal(t, tc.persi, infoLines(func(add func(string, any)) { persistenceInfo(tc.v, add) }), "INFO persistence")
			}
		})
	}
}

// infoLines renders fill's lines as INFO does.
func infoLines(fill func(add func(string, any))) string {
	var b strings.Builder
	fill(func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) })
	return b.String()
}
