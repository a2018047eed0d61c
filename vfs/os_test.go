package vfs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// What the OS filesystem creates is its owner's alone, whatever mode the
// caller asks for: data files 0600, directories 0700 (the umask may only
// tighten them).
func TestOSModesOwnerOnly(t *testing.T) {
	old := syscall.Umask(0) // the loosest umask: the modes are ours alone
	defer syscall.Umask(old)
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	require.NoError(t, Default.MkdirAll(dir, 0o755))
	for _, d := range []string{filepath.Join(root, "a"), dir} {
		st, err := os.Stat(d)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), st.Mode().Perm(), d)
	}
	f, err := Default.Create(filepath.Join(dir, "data"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	lock, err := Default.Lock(filepath.Join(dir, "LOCK"))
	require.NoError(t, err)
	require.NoError(t, lock.Close())
	for _, name := range []string{"data", "LOCK"} {
		st, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), name)
	}
}
