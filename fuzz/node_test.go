package fuzz

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/logkv/logkv/node"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// nodeCommands are the commands FuzzNodeCommands sends. Left out: QUIT and
// CLIENT (they end or kill the connection), HELLO (it changes the protocol
// under the client), REPLICAOF/SLAVEOF (they make the node a follower), WAIT
// (it may block) and CONFIG (CONFIG SET could lock the fuzzer out).
var nodeCommands = []string{
	"ping", "echo", "get", "set", "setnx", "del", "unlink", "exists", "mget", "mset",
	"incr", "decr", "incrby", "decrby", "type", "ttl", "pttl", "scan", "dbsize", "info",
	"role", "auth", "select", "command",
}

// FuzzNodeCommands sends the commands its input decodes into, with arbitrary
// arguments, to one in-process node on the memory engine. Every command must
// get a reply (a value or an error reply), never a dropped connection, and
// the node must still answer PING after each input.
func FuzzNodeCommands(f *testing.F) {
	f.Add([]byte{3, 1, 'k', 1, 'v'})
	f.Add([]byte{10, 1, 'n', 12, 2, 1, 'n', 20, '9', '2', '2', '3', '3', '7', '2', '0', '3', '6', '8', '5', '4', '7', '7', '5', '8', '0', '7'})
	f.Add([]byte{17, 3, 1, '0', 1, '*', 5, 'C', 'O', 'U', 'N', 'T', 2, '-', '1'})
	f.Add([]byte{8, 0, 9, 3, 1, 'a', 0, 1, 'b'})
	f.Add([]byte{19, 0, 1, 'x', 23, 0, 1, 'd', 1, 'o', 'c', 's'})

	cfg := node.DefaultConfig()
	cfg.Engine = "memory"
	cfg.DataDir = f.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Admin = "off"
	cfg.Replication.Listen = "off"
	n, err := node.New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(f, err)
	served := make(chan error, 1)
	go func() { served <- n.Serve() }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(f, n.Shutdown(ctx))
		require.NoError(f, <-served)
	}()
	client := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, PoolSize: 1, ReadTimeout: 10 * time.Second})
	defer client.Close()

	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		in := &input{data: data}
		for range 8 {
			if in.done() {
				break
			}
			args := []any{nodeCommands[int(in.byte())%len(nodeCommands)]}
			for nargs := int(in.byte() % 6); nargs > 0; nargs-- {
				args = append(args, nodeArg(in))
			}
			err := client.Do(ctx, args...).Err()
			var rerr redis.Error
			if err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &rerr) {
				t.Fatalf("%v: %v (not a reply)", args, err)
			}
		}
		require.NoError(t, client.Ping(ctx).Err(), "node stopped answering")
	})
}

// nodeArg decodes one argument: raw bytes, or a number near an edge.
func nodeArg(in *input) string {
	b := in.byte()
	switch b % 4 {
	case 0:
		edges := []int64{0, -1, 1, 1<<63 - 1, -1 << 63, 1 << 31, 100}
		return strconv.FormatInt(edges[int(b/4)%len(edges)], 10)
	default:
		s := make([]byte, int(b/4)%24)
		for i := range s {
			s[i] = in.byte()
		}
		return string(s)
	}
}
