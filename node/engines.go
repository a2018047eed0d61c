package node

import (
	"github.com/logkv/logkv/bitcask"
	"github.com/logkv/logkv/lsm"
	"github.com/logkv/logkv/memory"
)

// The engines a node can run. Each entry's function returns a new value of
// the engine's options type, which engine_options decodes into.
func init() {
	engineOptions["lsm"] = func() any { return new(lsm.Options) }
	engineOptions["bitcask"] = func() any { return new(bitcask.Options) }
	engineOptions["memory"] = func() any { return new(memory.Options) }
}
