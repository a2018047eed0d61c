package powercut

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// mount serves a new backing directory seeded with files, or skips when
// this machine cannot mount FUSE (no /dev/fuse, not root and no fusermount):
// the skip is about the environment, never about what the test checks.
func mount(t *testing.T, files map[string]string) (fsys *FS, backing, mnt, shadow string) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	backing, mnt, shadow = filepath.Join(dir, "backing"), filepath.Join(dir, "mnt"), filepath.Join(dir, "shadow")
	require.NoError(t, os.MkdirAll(filepath.Join(backing, "sub"), 0o700))
	require.NoError(t, os.Mkdir(mnt, 0o700))
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(backing, name), []byte(content), 0o600))
	}
	fsys, err := Mount(backing, mnt, shadow)
	require.NoError(t, err)
	t.Cleanup(func() { _ = fsys.Unmount() })
	return fsys, backing, mnt, shadow
}

func syncPath(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

func write(t *testing.T, p, content string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	require.NoError(t, err)
	_, err = f.WriteString(content)
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
	require.NoError(t, f.Close())
}

// tree lists the files under dir with their content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = string(b)
		}
		return nil
	}))
	return out
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// A cut keeps each file's content as of its last fsync and each directory's
// entries as of its last directory fsync; what was there at Mount counts as
// synced.
func TestCutKeepsOnlyWhatWasSynced(t *testing.T) {
	fsys, backing, mnt, _ := mount(t, map[string]string{"old": "old content", "gone": "unlinked, not synced"})
	at := func(name string) string { return filepath.Join(mnt, name) }

	write(t, at("old"), "+synced", true)
	write(t, at("old"), "+unsynced", false)

	write(t, at("new-named"), "fsynced and named", true)
	write(t, at("named-empty"), "written, never fsynced", false)

	write(t, at("tmp"), "manifest", true)
	require.NoError(t, os.Rename(at("tmp"), at("MANIFEST")))

	require.NoError(t, os.Remove(at("gone")))
	write(t, at("sub/deep"), "in a subdirectory, synced both", true)
	syncPath(t, at("sub"))
	syncPath(t, mnt) // names: new-named, named-empty, MANIFEST, no tmp, no gone

	// After the directory fsync: neither synced, so both are undone.
	require.NoError(t, os.Rename(at("new-named"), at("renamed-late")))
	write(t, at("late"), "fsynced, its directory not since", true)

	// Reads through the mount see everything, synced or not.
	require.Equal(t, "old content+synced+unsynced", tree(t, mnt)["old"])

	stats, err := fsys.Cut()
	require.NoError(t, err)
	got := tree(t, backing)
	require.Equal(t, map[string]string{
		"old":         "old content+synced",
		"new-named":   "fsynced and named",
		"named-empty": "",
		"MANIFEST":    "manifest",
		"sub/deep":    "in a subdirectory, synced both",
	}, got, "files: %v", keys(got))
	require.Positive(t, stats.Files)

	// Mounted again, the cut tree is what is served, and all of it synced.
	fsys2, err := Mount(backing, mnt, filepath.Join(filepath.Dir(backing), "shadow2"))
	require.NoError(t, err)
	defer fsys2.Unmount()
	require.Equal(t, got, tree(t, mnt))
	write(t, at("old"), "+lost again", false)
	stats, err = fsys2.Cut()
	require.NoError(t, err)
	require.Equal(t, got, tree(t, backing))
	require.Equal(t, 1, stats.Files)
	require.Equal(t, int64(len("+lost again")), stats.Bytes)
}

// A truncate and an overwrite in the middle of a file, unsynced, are undone;
// synced, they stay. Writes at offsets (not appends) are tracked as ranges.
func TestCutUndoesTruncateAndOverwrite(t *testing.T) {
	fsys, backing, mnt, _ := mount(t, map[string]string{"f": "0123456789"})
	p := filepath.Join(mnt, "f")

	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("ab"), 2)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	_, err = f.WriteAt([]byte("XY"), 6)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(4))
	require.NoError(t, f.Close())

	g, err := os.OpenFile(filepath.Join(mnt, "g"), os.O_RDWR|os.O_CREATE, 0o600)
	require.NoError(t, err)
	_, err = g.WriteAt([]byte("tail"), 100)
	require.NoError(t, err)
	require.NoError(t, g.Sync())
	require.NoError(t, g.Truncate(50))
	require.NoError(t, g.Close())
	syncPath(t, mnt)

	_, err = fsys.Cut()
	require.NoError(t, err)
	got := tree(t, backing)
	require.Equal(t, "01ab456789", got["f"])
	require.Equal(t, string(make([]byte, 100))+"tail", got["g"])
}
