package replicate_test

import (
	"context"
	"fmt"

	"github.com/logkv/logkv"
	_ "github.com/logkv/logkv/memory"
	"github.com/logkv/logkv/replicate"
	"github.com/logkv/logkv/replicate/transport"
	"github.com/logkv/logkv/vfs"
)

// A leader and a follower on an in-memory network. Over QUIC, give each node
// transport.NewQUIC(transport.QUICOptions{Identity: id}) with an identity
// from transport.LoadIdentity (or CA.Identity), a ListenAddr such as
// "0.0.0.0:7400", and the leader's host:port as LeaderAddr.
func Example() {
	net := transport.NewMemNetwork(0)
	open := func(bool) (logkv.Engine, error) { return logkv.Open("memory", "", nil) }
	leader, err := replicate.Open(replicate.Config{
		ID: "a", Dir: "a", FS: vfs.NewMem(), OpenEngine: open, Checkpoint: true,
		Role: replicate.Leader, Transport: net.Transport("a"), ListenAddr: "a",
	})
	if err != nil {
		panic(err)
	}
	defer leader.Close()
	follower, err := replicate.Open(replicate.Config{
		ID: "b", Dir: "b", FS: vfs.NewMem(), OpenEngine: open, Checkpoint: true,
		Role: replicate.Follower, Transport: net.Transport("b"), LeaderAddr: "a",
	})
	if err != nil {
		panic(err)
	}
	defer follower.Close()

	var b logkv.Batch
	b.Set([]byte("hello"), []byte("world"))
	seq, err := leader.Write(&b)
	if err != nil {
		panic(err)
	}
	if err := follower.WaitApplied(context.Background(), seq); err != nil {
		panic(err)
	}
	v, err := follower.Engine().Get([]byte("hello"))
	fmt.Println(string(v), err, leader.Followers()[0].ID)
	// Output: world <nil> b
}
