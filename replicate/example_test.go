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

// Submit orders writes under the caller's own locks and Await waits for
// them outside, as kvnode does for a pipeline: the three writes below share
// one group fsync, and one Await of the last seq covers them all (records
// apply in seq order).
func ExampleReplica_Submit() {
	open := func(bool) (logkv.Engine, error) { return logkv.Open("memory", "", nil) }
	n, err := replicate.Open(replicate.Config{
		ID: "a", Dir: "a", FS: vfs.NewMem(), OpenEngine: open, Checkpoint: true,
		Role: replicate.Leader, Transport: transport.NewMemNetwork(0).Transport("a"), ListenAddr: "a",
	})
	if err != nil {
		panic(err)
	}
	defer n.Close()

	var last uint64
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}} {
		var b logkv.Batch
		b.Set([]byte(kv[0]), []byte(kv[1]))
		if last, err = n.Submit(&b); err != nil {
			panic(err)
		}
	}
	if err := n.Await(last); err != nil { // durable and applied, through last
		panic(err)
	}
	v, _ := n.Engine().Get([]byte("a"))
	fmt.Println(last, string(v), n.Log().DurableSeq() >= last)
	// Output: 3 3 true
}
