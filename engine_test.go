package logkv_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// registryOnce: the registry is global and Register panics on a name
// registered twice, so a second run of the test (-count=N) must not
// register again.
var registryOnce sync.Once

// errRegistrySentinel is what the registered test engine's Open wraps.
var errRegistrySentinel = errors.New("opened")

func TestRegistry(t *testing.T) {
	sentinel := errRegistrySentinel
	registryOnce.Do(func() {
		logkv.Register("test-registry", func(dir string, opts any) (logkv.Engine, error) {
			return nil, fmt.Errorf("%s %v: %w", dir, opts, sentinel)
		})
	})
	require.Contains(t, logkv.Engines(), "test-registry")
	_, err := logkv.Open("test-registry", "d", 7)
	require.ErrorIs(t, err, sentinel)
	require.EqualError(t, err, "d 7: opened")

	require.Panics(t, func() { logkv.Register("test-registry", func(string, any) (logkv.Engine, error) { return nil, nil }) })
	require.Panics(t, func() { logkv.Register("", func(string, any) (logkv.Engine, error) { return nil, nil }) })
	require.Panics(t, func() { logkv.Register("nil-open", nil) })

	_, err = logkv.Open("no-such-engine", "d", nil)
	require.ErrorContains(t, err, `unknown engine "no-such-engine"`)
}

func TestSeqFor(t *testing.T) {
	s, err := logkv.SeqFor(nil, 4)
	require.NoError(t, err)
	require.Equal(t, uint64(5), s)
	s, err = logkv.SeqFor(&logkv.WriteOptions{Seq: 9}, 4)
	require.NoError(t, err)
	require.Equal(t, uint64(9), s)
	_, err = logkv.SeqFor(&logkv.WriteOptions{Seq: 4}, 4)
	require.ErrorIs(t, err, logkv.ErrSeqNotIncreasing)
	require.ErrorContains(t, err, "4 is not greater than the last applied 4")
}

func TestLimitsErrors(t *testing.T) {
	require.ErrorIs(t, logkv.CheckKey(nil), logkv.ErrEmptyKey)
	require.NoError(t, logkv.CheckKey(make([]byte, logkv.MaxKeySize)))
	err := logkv.CheckKey(make([]byte, logkv.MaxKeySize+1))
	require.ErrorIs(t, err, logkv.ErrKeyTooLarge)
	require.ErrorContains(t, err, "65537 bytes, the limit is 65536")
	require.NoError(t, logkv.CheckValue(make([]byte, logkv.MaxValueSize)))
	require.ErrorIs(t, logkv.CheckValue(make([]byte, logkv.MaxValueSize+1)), logkv.ErrValueTooLarge)

	c := logkv.CorruptError("000012.sst", 4096, "checksum mismatch")
	require.ErrorIs(t, c, logkv.ErrCorrupt)
	require.EqualError(t, c, "logkv: corrupt data in 000012.sst at offset 4096: checksum mismatch")
}

func TestIterOptionsContains(t *testing.T) {
	var none *logkv.IterOptions
	require.True(t, none.Contains([]byte("x")))
	o := &logkv.IterOptions{LowerBound: []byte("b"), UpperBound: []byte("d")}
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "czz": true, "d": false, "e": false} {
		require.Equal(t, want, o.Contains([]byte(k)), k)
	}
}

type typedOpts struct{ n int }

type nilEngine struct{ logkv.Engine }

// typedOnce and errTypedFail: as registryOnce and errRegistrySentinel, for
// TestRegisterTyped.
var (
	typedOnce    sync.Once
	errTypedFail = errors.New("cannot open")
)

func TestRegisterTyped(t *testing.T) {
	fail := errTypedFail
	typedOnce.Do(func() {
		logkv.RegisterTyped("test-typed", func(dir string, o *typedOpts) (*nilEngine, error) {
			if o != nil && o.n < 0 {
				return nil, fail
			}
			return &nilEngine{}, nil
		})
	})
	e, err := logkv.Open("test-typed", "d", nil)
	require.NoError(t, err)
	require.NotNil(t, e)
	_, err = logkv.Open("test-typed", "d", &typedOpts{n: 1})
	require.NoError(t, err)
	e, err = logkv.Open("test-typed", "d", &typedOpts{n: -1})
	require.ErrorIs(t, err, fail)
	require.Nil(t, e, "a failed open returns a nil Engine, not a nil *DB inside one")
	_, err = logkv.Open("test-typed", "d", typedOpts{})
	require.EqualError(t, err, "logkv: engine test-typed takes nil or *logkv_test.typedOpts options, not logkv_test.typedOpts")
}
