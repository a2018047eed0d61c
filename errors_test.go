package logkv_test

import (
	"fmt"
	"testing"

	"github.com/logkv/logkv"
	"github.com/stretchr/testify/require"
)

// A package's own format sentinel is logkv's ErrFormat and ErrCorrupt to
// errors.Is, bare or wrapped, and keeps its own text.
func TestNewFormatSentinel(t *testing.T) {
	errPkg := logkv.NewFormatSentinel("pkg: unsupported widget format")
	wrapped := fmt.Errorf("%w: widget.dat is in format 9", errPkg)
	for _, err := range []error{errPkg, wrapped} {
		require.ErrorIs(t, err, errPkg)
		require.ErrorIs(t, err, logkv.ErrFormat)
		require.ErrorIs(t, err, logkv.ErrCorrupt)
	}
	require.Equal(t, "pkg: unsupported widget format: widget.dat is in format 9", wrapped.Error())
	require.NotErrorIs(t, logkv.NewFormatSentinel("other"), errPkg)
}
