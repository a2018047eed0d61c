// Command kvnode runs a logkv node that speaks the Redis protocol. The logic
// lives in package node; see kvnode -h.
package main

import (
	"os"

	"github.com/logkv/logkv/node"
)

func main() { os.Exit(node.Main(os.Args[1:], os.Stdout, os.Stderr)) }
