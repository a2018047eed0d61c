package logkv_test

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/logkv/logkv/bitcask"
	"github.com/logkv/logkv/lsm"
	"github.com/logkv/logkv/memory"
	"github.com/stretchr/testify/require"
)

var registerNoOptions sync.Once

func TestNewOptions(t *testing.T) {
	for name, want := range map[string]any{"lsm": &lsm.Options{}, "bitcask": &bitcask.Options{}, "memory": &memory.Options{}} {
		a, err := logkv.NewOptions(name)
		require.NoError(t, err)
		require.Equal(t, want, a, name)
	}
	a := must(logkv.NewOptions("lsm")).(*lsm.Options)
	a.MemtableSize = 1
	require.Equal(t, &lsm.Options{}, must(logkv.NewOptions("lsm")), "each call returns a new value, the caller's to change")
	// Once: the registry is global, and go test -count=N runs this again.
	registerNoOptions.Do(func() {
		logkv.Register("test-no-options", func(string, any) (logkv.Engine, error) { return nil, nil })
	})
	o, err := logkv.NewOptions("test-no-options")
	require.NoError(t, err)
	require.Nil(t, o, "an engine registered without an options type")
	_, err = logkv.NewOptions("nosuch")
	require.ErrorContains(t, err, `unknown engine "nosuch"`)
}

// Each engine's answers, and the options its TestTuner draws: every draw
// must be options the engine opens with (Validate accepts them), and the
// engine must work with them.
func TestEngineCapabilities(t *testing.T) {
	volatile := func(o any) bool { v, ok := o.(logkv.Volatile); return ok && v.Volatile() }
	for _, name := range []string{"lsm", "bitcask", "memory"} {
		o, _ := logkv.NewOptions(name)
		require.Equal(t, name == "memory", volatile(o), "%s: Volatile", name)
		_, ext := o.(logkv.ExternalWAL)
		require.Equal(t, name == "lsm", ext, "%s: ExternalWAL", name)
	}
	o := new(lsm.Options)
	require.Zero(t, o.SyncEvery(), "lsm with its WAL syncs cheaply")
	o.UseExternalWAL()
	require.True(t, o.DisableWAL)
	require.Equal(t, int64(64<<20), o.SyncEvery())

	r := rand.New(rand.NewPCG(1, 2))
	for _, name := range logkv.Engines() {
		if _, ok := must(logkv.NewOptions(name)).(logkv.TestTuner); !ok {
			continue
		}
		for i := range 20 {
			opts := must(logkv.NewOptions(name))
			if i == 0 {
				opts.(logkv.TestTuner).ShrinkForTest()
			} else {
				opts.(logkv.TestTuner).RandomizeForTest(r)
			}
			e, err := logkv.Open(name, t.TempDir(), opts)
			require.NoError(t, err, "%s with %+v", name, opts)
			require.NoError(t, e.Set([]byte("k"), []byte("v"), &logkv.WriteOptions{Sync: true}))
			require.NoError(t, e.Close())
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
