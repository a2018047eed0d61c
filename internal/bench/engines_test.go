package bench

// The real engines the tests run on besides the fake: adding one is one import
// line and one name.
import (
	_ "github.com/logkv/logkv/memory"
)

var realEngines = []string{"memory"}
