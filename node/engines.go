package node

import (
	"github.com/logkv/logkv/memory"
)

// The engines a node can run. Each entry's function returns a new value of
// the engine's options type, which engine_options decodes into.
func init() {
	engineOptions["memory"] = func() any { return new(memory.Options) }
}
