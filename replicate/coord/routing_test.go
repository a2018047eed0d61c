package coord

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logkv/logkv/replicate/coord/etcdtest"
)

// TestRouting reads the map and the leaders in one revision, skips keys that
// are not leader keys, and wakes on a change of the map or of a watched
// leader key only.
func TestRouting(t *testing.T) {
	srv := etcdtest.Start(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	r, err := ReadRouting(ctx, cli, "c")
	require.NoError(t, err)
	require.Nil(t, r.Map, "no map key: not sharded")
	require.Empty(t, r.Leaders)

	put, err := cli.Put(ctx, SlotsKey("c"), `{"v":1}`)
	require.NoError(t, err)
	lput, err := cli.Put(ctx, LeaderKey("c", "a"), mustJSON(Leader{V: 1, ID: "a1", RESP: "127.0.0.1:1"}))
	require.NoError(t, err)
	_, err = cli.Put(ctx, Prefix("c")+"shards/a/progress/a1", `{"v":1}`)
	require.NoError(t, err)
	_, err = cli.Put(ctx, LeaderKey("c", "b"), "not json")
	require.NoError(t, err)

	r, err = ReadRouting(ctx, cli, "c")
	require.NoError(t, err)
	require.Equal(t, `{"v":1}`, string(r.Map))
	require.Equal(t, put.Header.Revision, r.MapVersion)
	require.Equal(t, map[string]Leader{"a": {V: 1, ID: "a1", RESP: "127.0.0.1:1", Epoch: uint64(lput.Header.Revision)}}, r.Leaders)

	// A key no one watches (another shard's leader, a progress report)
	// wakes no one; the map does.
	done := make(chan struct{})
	go func() {
		AwaitRoutingChange(ctx, cli, "c", r.Revision, []string{"a"})
		close(done)
	}()
	_, err = cli.Put(ctx, LeaderKey("c", "z"), `{"v":1}`)
	require.NoError(t, err)
	_, err = cli.Put(ctx, Prefix("c")+"shards/a/progress/a1", `{"v":1,"durable":5}`)
	require.NoError(t, err)
	select {
	case <-done:
		t.Fatal("woke on a key it does not watch")
	case <-time.After(300 * time.Millisecond): // a wrong wake-up would come within this
	}
	mput, err := cli.Put(ctx, SlotsKey("c"), `{"v":1,"x":1}`)
	require.NoError(t, err)
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("did not wake on a map change")
	}

	// A change between the read and the watch is not missed: the watch
	// starts at the revision read.
	_, err = cli.Put(ctx, LeaderKey("c", "a"), `{"v":1,"id":"a2"}`)
	require.NoError(t, err)
	AwaitRoutingChange(ctx, cli, "c", mput.Header.Revision, []string{"a"}) // returns only if it sees the change
	require.NoError(t, ctx.Err())
}
